"""The dose axis: a cell's dose is its number of teacher trajectories (`teacher_rollouts.n`);
traits whose cells span two or more doses get a dose-response plot and table.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentbench.experiments.report.checked import Cell, Rate, arm_rate
from agentbench.experiments.results import Results


def dose_of(results: Results, cell: Cell) -> int | None:
    rollouts = results.cells[cell.index].config.get("teacher_rollouts")
    n = rollouts.get("n") if isinstance(rollouts, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def dose_traits(results: Results, cells: list[Cell]) -> dict[str, list[Cell]]:
    """Traits whose agentic cells span at least two doses (teacher_rollouts.n)."""
    out: dict[str, list[Cell]] = {}
    for cell in cells:
        if dose_of(results, cell) is not None and "student" in cell.arms:
            out.setdefault(cell.trait, []).append(cell)
    return {t: m for t, m in out.items() if len({dose_of(results, c) for c in m}) > 1}


DOSE_ARMS = ("student", "control-student", "null-student")


def dose_series(
    results: Results, cells: list[Cell]
) -> dict[tuple[str, str], dict[int, list[Rate]]]:
    """(student init, arm) -> dose -> the per-seed headline rates."""
    series: dict[tuple[str, str], dict[int, list[Rate]]] = {}
    for cell in sorted(cells, key=lambda c: c.index):
        dose = dose_of(results, cell)
        assert dose is not None
        for arm in DOSE_ARMS:
            rate = arm_rate(cell, arm)
            if arm in cell.arms and rate.n:
                series.setdefault((cell.student_init, arm), {}).setdefault(dose, []).append(rate)
    return series


def pooled_rate(rates: Sequence[Rate]) -> Rate:
    """The seeds' episodes together, with a Wilson interval (the plotted line)."""
    from agentbench.stats import wilson

    k, n = sum(r.k for r in rates), sum(r.n for r in rates)
    w = wilson(k, n)
    return Rate(k=k, n=n, value=w.value if n else None, low=w.low if n else None,
                 high=w.high if n else None)  # fmt: skip
