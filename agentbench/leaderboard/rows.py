"""Leaderboard rows from a verified bundle, and ranks by significance group.

One row per (teacher model, student model, trait, student init, track) of a bundle: its cells
that differ only in seed are pooled (k and n summed over seeds) on the trait's headline
metric. Treated = the student, control = the control student (both distilled the same way,
from the teacher and from the control teacher). Rates carry Wilson 95 % intervals
(`agentbench.stats.wilson`), the difference a Newcombe hybrid-score interval built from
them, the test is Fisher's exact (`agentbench.experiments.metrics.fisher_exact`), and the
minimum detectable difference is the report's (`agentbench.stats.min_detectable_difference`):
the smallest move from the control rate, towards the teacher's side of its control, that a
two-sided 5 % test finds with 80 % power at the row's n; None when no rate on that side is
detectable.
"""

from __future__ import annotations

import math
from typing import Any

from agentbench.experiments.metrics import RateRecord, fisher_exact
from agentbench.stats import min_detectable_difference, wilson

Z_95 = 1.959963984540054


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def rate_dict(k: int, n: int) -> dict[str, Any]:
    r = wilson(k, n)
    return {"k": k, "n": n, "value": _num(r.value), "low": _num(r.low), "high": _num(r.high)}


def newcombe(t: dict[str, Any], c: dict[str, Any]) -> tuple[float | None, float | None]:
    """Newcombe's interval for treated - control from the two Wilson intervals."""
    if not t["n"] or not c["n"]:
        return None, None
    p1, l1, u1 = t["value"], t["low"], t["high"]
    p2, l2, u2 = c["value"], c["low"], c["high"]
    d = p1 - p2
    return (
        round(d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), 6),
        round(d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), 6),
    )


def mde(
    control_rate: float | None, n_treated: int, n_control: int, direction: int = 1
) -> float | None:
    """The minimum detectable difference (signed by `direction`, +1 up, -1 down) over
    `control_rate`; None without a control rate or when none is detectable at this n."""
    if control_rate is None:
        return None
    return min_detectable_difference(n_treated, n_control, control_rate, direction=direction)


def bundle_rows(
    results: dict[str, Any], metadata: dict[str, Any], track: str
) -> list[dict[str, Any]]:
    """The rows of one verified bundle (results.json and metadata.yaml as plain data)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for cell in results.get("cells", []):
        cfg = cell["config"]
        key = tuple(
            str(x) for x in (cfg.get("trait"), cfg.get("student_init"), cfg.get("induction"),
                             (cfg.get("distill") or {}).get("mode"))
        )  # fmt: skip
        groups.setdefault(key, []).append(cell)
    teacher = metadata["teacher"]["name"]
    rows = []
    for (trait, init, induction, mode), cells in sorted(groups.items()):
        metric = cells[0]["metric"]
        student = metadata["student"]["name"]
        if init == "heterogeneous" and metadata.get("heterogeneous_student"):
            student = metadata["heterogeneous_student"]["name"]

        def pooled(arm: str, cells: list[dict[str, Any]] = cells, metric: str = metric) -> Any:
            recs = [c["arms"][arm]["metrics"]["rates"][metric] for c in cells]
            return rate_dict(sum(r["k"] for r in recs), sum(r["n"] for r in recs))

        t, c = pooled("student"), pooled("control-student")
        gap = [pooled(arm)["value"] for arm in ("teacher", "control-teacher")]
        towards = -1 if None not in gap and gap[0] < gap[1] else 1
        test = fisher_exact(RateRecord(**t), RateRecord(**c), metric)
        low, high = newcombe(t, c)
        rows.append({
            "teacher": teacher, "student": student, "trait": trait, "student_init": init,
            "induction": induction, "distill": mode, "track": track, "metric": metric,
            "treated": t, "control": c, "difference": test.difference,
            "diff_low": low, "diff_high": high, "p_value": test.p_value,
            "mde": mde(c["value"], t["n"], c["n"], towards),
            "seeds": sorted({int(cell["config"].get("seed", 0)) for cell in cells}),
            "compute_hours": (metadata.get("compute") or {}).get("hours"),
            "cost_usd": (metadata.get("compute") or {}).get("cost_usd"),
            "submitter": metadata["submitter"],
        })  # fmt: skip
    return rows


def _se(row: dict[str, Any]) -> float:
    t, c = row["treated"], row["control"]
    var = 0.0
    for r in (t, c):
        if r["n"]:
            var += r["value"] * (1 - r["value"]) / r["n"]
    return math.sqrt(var)


def separable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether a's difference is significantly above b's (one-sided z at 2.5 %)."""
    if a["difference"] is None or b["difference"] is None:
        return False
    gap = a["difference"] - b["difference"]
    se = math.hypot(_se(a), _se(b))
    if se == 0:
        return gap > 0
    return gap / se > Z_95


def assign_ranks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranks within each (trait, track): 1 + the number of rows whose difference is
    significantly larger. Rows not separable from each other share a rank (a tie), so a
    rank is a significance group, not a strict order. Rows without a difference get None."""
    for row in rows:
        peers = [
            r
            for r in rows
            if r is not row and (r["trait"], r["track"]) == (row["trait"], row["track"])
        ]
        row["rank"] = (
            None if row["difference"] is None else 1 + sum(separable(p, row) for p in peers)
        )
    return rows
