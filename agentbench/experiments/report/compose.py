"""The whole report as blocks: the run's header, how to read it, the summary table, a section
per trait and cell, homogeneous vs heterogeneous (subliminal vs semantic), the dose-response,
aggregates over seeds and the Cochran-Mantel-Haenszel pooling.

Errors: `ReportError` for a stored p-value outside [0, 1].
"""

from __future__ import annotations

import json
import math
import re

from agentbench.experiments.report.cell_section import cell_blocks, metric_label
from agentbench.experiments.report.checked import (
    RATE_COLUMNS,
    Cell,
    arm_order,
    arm_rate,
)
from agentbench.experiments.report.comparisons import compare, mde_text, stored_p, teacher_gap
from agentbench.experiments.report.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Para,
    Table,
    Text,
    Untrusted,
)
from agentbench.experiments.report.dose import dose_of, dose_series, dose_traits, pooled_rate
from agentbench.experiments.report.wording import (
    CONTRAST_MEANING,
    HOW_TO_READ,
    split_reading,
    transfer_note,
)
from agentbench.experiments.results import Aggregate, Results


def file_slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "trait"


def _init_pairs(cells: list[Cell], results: Results) -> list[tuple[Cell, Cell]]:
    """(homogeneous, heterogeneous) cells whose configs differ only in student_init."""

    def key(cell: Cell) -> str:
        config = dict(results.cells[cell.index].config)
        config.pop("student_init", None)
        return json.dumps(config, sort_keys=True, default=str)

    hetero = {key(c): c for c in cells if c.student_init == "heterogeneous"}
    return [(c, hetero[key(c)]) for c in cells
            if c.student_init == "homogeneous" and key(c) in hetero]  # fmt: skip


def _split_blocks(results: Results, cells: list[Cell]) -> list[Block]:
    """Subliminal (needs a shared init) vs semantic (both inits) per homogeneous cell."""
    from agentbench.stats import difference_of_differences

    blocks: list[Block] = [Heading(2, "Subliminal vs semantic")]
    pairs = _init_pairs(cells, results)
    if not pairs:
        return [*blocks, Para("No pair of cells differing only in student_init: not split.")]
    rows: list[tuple[Text, ...]] = []
    for homo, hetero in pairs:
        control = ("null-student" if "null-student" in homo.arms
                   and "null-student" in hetero.arms else "control-student")  # fmt: skip
        diffs = []
        for cell in (homo, hetero):
            raw = results.cells[cell.index]
            p = stored_p(raw, cell.metric, "results.json", ("student", control))
            diffs.append(compare(arm_rate(cell, "student"), arm_rate(cell, control), p))
        counts = [(d.treated.k, d.treated.n, d.control.k, d.control.n) for d in diffs]
        dod = difference_of_differences(counts[0], counts[1])
        dod_text = "n/a" if dod is None else (
            f"{dod.value * 100:+.0f} pp [{dod.low * 100:+.0f}, {dod.high * 100:+.0f}]")  # fmt: skip
        rows.append(((Code(homo.cell_id),), (Untrusted(control),), diffs[0].difference_text(),
                     diffs[0].p_text(), diffs[1].difference_text(), diffs[1].p_text(), dod_text,
                     split_reading(diffs[0], diffs[1], dod)))  # fmt: skip
    blocks.append(Para(
        "Per homogeneous cell and its heterogeneous twin: the student's difference from the "
        "control arm in each init, and homogeneous minus heterogeneous with a 95 % MOVER "
        "interval (the two Newcombe intervals combined). That difference is the part of a "
        "transfer that needs the shared initialisation (subliminal); what both inits show is "
        "semantic leakage through what the sanitizer left."
    ))  # fmt: skip
    blocks.append(
        Table(
            (
                "homogeneous cell",
                "against",
                "homogeneous difference",
                "p",
                "heterogeneous difference",
                "p",
                "homogeneous - heterogeneous [95 % CI]",
                "reading",
            ),
            tuple(rows),
        )
    )
    return blocks


def _pooled_blocks(results: Results) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Over seeds: Cochran-Mantel-Haenszel, stratified by seed")]
    if not results.pooled:
        return [*blocks, Para("None: no two cells differ only in their seed.")]
    rows: list[tuple[Text, ...]] = []
    for pooled in results.pooled:
        pair = (pooled.treated_arm, pooled.control_arm)
        odds = "n/a" if pooled.odds_ratio is None else f"{pooled.odds_ratio:.3g}"
        if pooled.low is not None and pooled.high is not None:
            odds += f" [{pooled.low:.3g}, {pooled.high:.3g}]"
        p = "n/a" if pooled.p_value is None else f"{pooled.p_value:.3g}"
        homog = "n/a" if pooled.homogeneity_p is None else f"{pooled.homogeneity_p:.3g}"
        rows.append(((Code(pooled.group),), metric_label(pooled.metric),
                     (Untrusted(pair[0]), " vs ", Untrusted(pair[1])),
                     CONTRAST_MEANING.get(pair, ""),
                     ", ".join(str(s) for s in pooled.seeds), p, odds, homog))  # fmt: skip
    blocks.append(Para(
        "Each contrast pooled over the seeds (each seed re-trains teacher, rollouts and "
        "students) by the Cochran-Mantel-Haenszel test with a 2x2 table per seed (statsmodels "
        "StratifiedTable, continuity-corrected): a seed whose rates all sit higher does not "
        "count as evidence. Odds ratio: Mantel-Haenszel pooled, 95 % interval. Breslow-Day p: "
        "whether the seeds share one odds ratio (small: read them one by one)."
    ))  # fmt: skip
    blocks.append(
        Table(
            (
                "cells",
                "metric",
                "contrast",
                "tests",
                "seeds",
                "CMH p",
                "pooled odds ratio [95 % CI]",
                "Breslow-Day p",
            ),
            tuple(rows),
        )
    )
    return blocks


def _dose_blocks(results: Results, cells: list[Cell], plots: dict[str, str]) -> list[Block]:
    """Per trait with a dose axis: the plot and a table of the students' rates by dose."""
    traits = dose_traits(results, cells)
    if not traits:
        return []
    blocks: list[Block] = [Heading(2, "Dose-response")]
    for trait, members in traits.items():
        blocks.append(Heading(3, ("Trait ", Untrusted(trait))))
        if f"dose:{trait}" in plots:
            blocks.append(Image(plots[f"dose:{trait}"], f"dose-response: {file_slug(trait)}"))
        rows: list[tuple[Text, ...]] = []
        for (init, arm), by_dose in sorted(dose_series(results, members).items()):
            for dose in sorted(by_dose):
                pooled = pooled_rate(by_dose[dose])
                rows.append(((Untrusted(init),), (Untrusted(arm),), str(dose),
                             str(len(by_dose[dose])), pooled.short()))  # fmt: skip
        kept = []
        for cell in sorted(members, key=lambda c: (dose_of(results, c) or 0, c.index)):
            reports = results.cells[cell.index].sanitize_reports
            count = reports.get("student", {}).get("kept")
            if isinstance(count, int):
                kept.append(f"{dose_of(results, cell)}: {count}")
        blocks.append(
            Table(
                (
                    "student init",
                    "arm",
                    "dose",
                    "seeds",
                    "headline rate, seeds pooled [Wilson 95 %] (k/n)",
                ),
                tuple(rows),
            )
        )
        if kept:
            blocks.append(Para("Treated students' kept trajectories after sanitizing, by dose "
                               "(per cell): " + ", ".join(kept) + "."))  # fmt: skip
    return blocks


def _aggregate_text(found: Aggregate | None) -> str:
    """`42% [0-100] (2 seeds)`: a t interval over few seeds can pass 0 or 100 %; it is clipped
    there (a rate cannot), and says so."""
    if found is None or found.mean is None or not math.isfinite(found.mean):
        return "n/a"
    seeds = f"{found.n_seeds} seed{'s' if found.n_seeds != 1 else ''}"
    if found.low is None or found.high is None:
        return f"{found.mean:.0%} ({seeds}, no interval)"
    if not (math.isfinite(found.low) and math.isfinite(found.high)):
        return f"{found.mean:.0%} ({seeds}, interval not finite)"
    low, high = max(found.low, 0.0), min(found.high, 1.0)
    clipped = ", clipped" if (low, high) != (found.low, found.high) else ""
    return f"{found.mean:.0%} [{low * 100:.0f}-{high * 100:.0f}] ({seeds}{clipped})"


def _aggregate_blocks(results: Results) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Aggregates over seeds")]
    if not results.aggregates:
        return [*blocks, Para("None: no two cells differ only in their seed.")]
    groups: dict[str, dict[tuple[str, str], Aggregate]] = {}
    for agg in results.aggregates:
        groups.setdefault(agg.group, {})[(agg.arm, agg.metric)] = agg
    for group, entries in groups.items():
        metrics = [m for m, _ in RATE_COLUMNS if any(m == k[1] for k in entries)]
        metrics += sorted({k[1] for k in entries} - set(metrics))
        rows = []
        for arm in arm_order({k[0] for k in entries}):
            row: list[Text] = [(Untrusted(arm),)]
            for metric in metrics:
                row.append(_aggregate_text(entries.get((arm, metric))))
            rows.append(tuple(row))
        blocks.append(Para(("Cells ", Code(group), ": mean over seeds [t 95 % interval]")))
        header: tuple[Text, ...] = ("arm", *(metric_label(m) for m in metrics))
        blocks.append(Table(header, tuple(rows)))
    return blocks


def build_blocks(results: Results, cells: list[Cell], plots: dict[str, str]) -> list[Block]:
    """The report as blocks; `plots` maps a trait (or `homo-hetero`) to its PNG file name."""
    prov = results.provenance
    revision = prov.get("git_revision") or "unknown"
    traits = list(dict.fromkeys(c.trait for c in cells))
    blocks: list[Block] = [Heading(1, ("Experiment report: ", Untrusted(results.suite)))]
    if results.description:
        blocks.append(Para((Untrusted(results.description),)))
    blocks.append(Bullets((
        ("Suite ", Code(results.suite), ", file sha256 ", Code(results.suite_sha256[:16])),
        ("Run created ", Untrusted(results.created_at), ", wall time "
         f"{results.wall_s:.0f} s (cached stages cost about 0)"),
        ("Git revision ", Code(str(revision)), ", agentbench ",
         Untrusted(str(prov.get("agentbench_version", "?")))),
        (f"{len(cells)} cell(s), traits: ", Untrusted(", ".join(traits))),
        *(("Model ", Code(name), ", weights sha256 ", Code(sha))
          for name, sha in sorted(prov.get("models", {}).items())),
        f"results.json schema version {results.schema_version}",
    )))  # fmt: skip
    blocks += [Heading(2, "How to read this"), Bullets(HOW_TO_READ)]

    blocks.append(Heading(2, "Summary"))
    rows: list[tuple[Text, ...]] = []
    for cell in cells:
        arms = cell.arms
        p = stored_p(results.cells[cell.index], cell.metric, "results.json")
        diff = compare(arm_rate(cell, "student"), arm_rate(cell, "control-student"), p)
        transfer = results.cells[cell.index].transfer.get(cell.metric)
        rows.append((
            (Code(cell.cell_id),), metric_label(cell.metric),
            *(arm_rate(cell, a).short() for a in ("teacher", "control-teacher", "student",
                                               "control-student")),
            diff.p_text(),
            mde_text(diff.treated, diff.control, teacher_gap(cell, "teacher", "control-teacher")),
            diff.reading(),
            transfer_note(cell.metric, transfer, cell) if "student" in arms else "n/a",
        ))  # fmt: skip
    blocks.append(Table(("cell", "headline metric", "teacher", "control teacher", "student",
                         "control student", "Fisher p (student vs control student)",
                         "MDE (alpha 0.05, power 0.8)", "students", "transfer score"),
                        tuple(rows)))  # fmt: skip

    for trait in traits:
        members = [c for c in cells if c.trait == trait]
        blocks.append(Heading(2, ("Trait ", Untrusted(trait))))
        blocks.append(Image(plots[trait], f"headline metric per arm: {file_slug(trait)}"))
        for cell in members:
            blocks += cell_blocks(results, cell)

    blocks.append(Heading(2, "Homogeneous vs heterogeneous students"))
    if "homo-hetero" in plots:
        blocks.append(Image(plots["homo-hetero"], "homogeneous vs heterogeneous students"))
    else:
        kinds = sorted({c.student_init for c in cells})
        note = "No panel: no trait has both homogeneous and heterogeneous cells in these results"
        blocks.append(Para((note + " (student init: ", Untrusted(", ".join(kinds)), ").")))
    blocks += _split_blocks(results, cells)
    blocks += _dose_blocks(results, cells, plots)
    blocks += _aggregate_blocks(results)
    blocks += _pooled_blocks(results)
    return blocks
