"""The report's plots (matplotlib, Agg, no global pyplot state): the headline metric per arm,
homogeneous vs heterogeneous students, and the dose-response. Deterministic: PNGs carry no
software or date metadata, so the same results give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentbench.experiments.report._files import write_atomic
from agentbench.experiments.report.checked import LABELS, Cell, Rate, arm_order
from agentbench.experiments.report.dose import dose_series, pooled_rate
from agentbench.experiments.results import Results

ARM_COLORS = {
    "base": "#9e9e9e",
    "teacher": "#c62828",
    "control-teacher": "#ef9a9a",
    "student": "#1565c0",
    "control-student": "#90caf9",
    "student-base": "#6d4c41",
    "null-student": "#616161",
}


def _bars(ax: Any, x: float, width: float, rate: Rate | None, color: str, label: str) -> None:
    """One bar with its Wilson interval; an empty rate is marked `n=0` (or `n/a` when the
    arm did not record the metric), never drawn as a zero."""
    if rate is None or not rate.n or rate.value is None:
        mark = "n/a" if rate is None else "n=0"
        ax.text(x, 0.02, mark, ha="center", va="bottom", fontsize=7, rotation=90)
        ax.bar([x], [0.0], width, color=color, label=label)
        return
    low, high = rate.low or 0.0, rate.high or 0.0
    yerr = [[max(rate.value - low, 0.0)], [max(high - rate.value, 0.0)]]
    ax.bar([x], [rate.value], width, color=color, label=label, yerr=yerr, capsize=3,
           ecolor="#333333")  # fmt: skip


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    data = buffer.getvalue()
    write_atomic(path, data)
    return data


def _short_label(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plot_trait(cells: Sequence[Cell], path: Path) -> bytes:
    """Bar chart of the headline metric per arm (Wilson 95 % error bars), a group per cell."""
    arms = arm_order({a for c in cells for a in c.arms})
    fig = _figure(max(5.0, 1.2 + 0.55 * len(arms) * len(cells)), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(arms)
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        for j, arm in enumerate(arms):
            x = i + (j - (len(arms) - 1) / 2) * width
            metrics = cell.arms.get(arm)
            if metrics is None:  # e.g. student-base exists in heterogeneous cells only
                continue
            label = arm if arm not in seen else "_"
            seen.add(arm)
            _bars(ax, x, width, metrics.rates.get(cell.metric), ARM_COLORS.get(arm, "#555"), label)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(
        [f"{_short_label(c.student_init)}\n{_short_label(c.label)}" for c in cells], fontsize=8
    )
    metrics_named = sorted({LABELS.get(c.metric, c.metric) for c in cells})
    ax.set_ylabel(", ".join(metrics_named) + " (95 % CI)")
    ax.set_ylim(0, 1.05)
    ax.set_title(_short_label(cells[0].trait, 60) + ": headline metric per arm", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def plot_homo_hetero(groups: dict[str, list[Cell]], path: Path) -> bytes:
    """Per trait: student and control-student headline rates, homogeneous then heterogeneous."""
    width = sum(max(3.0, 1.5 * len(cells) + 0.8) for cells in groups.values())
    fig = _figure(max(5.0, width), 3.8)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (trait, cells) in zip(axes, groups.items(), strict=True):
        ordered = sorted(cells, key=lambda c: (c.student_init != "homogeneous", c.index))
        for i, cell in enumerate(ordered):
            for j, arm in enumerate(("student", "control-student")):
                metrics = cell.arms.get(arm)
                rate = metrics.rates.get(cell.metric) if metrics else None
                _bars(ax, i + (j - 0.5) * 0.38, 0.38, rate, ARM_COLORS[arm], arm if i == 0 else "_")
        ax.set_xticks(range(len(ordered)))
        ax.set_xticklabels(
            [f"{_short_label(c.student_init)}\n{_short_label(c.label)}" for c in ordered],
            fontsize=8,
        )
        ax.set_ylim(0, 1.05)
        ax.set_title(_short_label(trait, 40), fontsize=10)
        ax.set_ylabel(LABELS.get(ordered[0].metric, ordered[0].metric) + " (95 % CI)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


_DOSE_STYLE = {"homogeneous": "-", "heterogeneous": "--"}
_DOSE_NUDGE = {"homogeneous": 0.97, "heterogeneous": 1.03}
"""Each init's points drawn a little apart on the log axis, so equal rates do not hide."""


def plot_dose(results: Results, cells: Sequence[Cell], path: Path) -> bytes:
    """One trait's headline rate against the dose (teacher trajectories, log axis): a line per
    student init and arm (seeds pooled, Wilson 95 % bars), each seed a dot."""
    fig = _figure(6.4, 4.0)
    ax = fig.subplots()
    series = dose_series(results, list(cells))
    for (init, arm), by_dose in sorted(series.items()):
        doses = sorted(by_dose)
        pooled = [pooled_rate(by_dose[d]) for d in doses]
        values = [r.value or 0.0 for r in pooled]
        err = [
            [max(v - (r.low or 0.0), 0.0) for v, r in zip(values, pooled, strict=True)],
            [max((r.high or 0.0) - v, 0.0) for v, r in zip(values, pooled, strict=True)],
        ]
        color = ARM_COLORS.get(arm, "#555")
        nudge = _DOSE_NUDGE.get(init, 1.0)
        xs = [d * nudge for d in doses]
        ax.errorbar(xs, values, yerr=err, color=color, linestyle=_DOSE_STYLE.get(init, ":"),
                    marker="o", capsize=3, label=f"{arm} ({init})")  # fmt: skip
        for d in doses:
            points = [r.value for r in by_dose[d] if r.value is not None]
            ax.scatter([d * nudge] * len(points), points, s=10, color=color, alpha=0.5, zorder=3)
    ax.set_xscale("log")
    xs = sorted({d for s in series.values() for d in s})
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("dose: teacher trajectories (teacher_rollouts.n)")
    ax.set_ylabel(LABELS.get(cells[0].metric, cells[0].metric) + " (95 % CI; dots: seeds)")
    ax.set_ylim(0, 1.05)
    ax.set_title(_short_label(cells[0].trait, 60) + ": dose-response", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)
