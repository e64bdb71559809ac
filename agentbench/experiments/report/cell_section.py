"""One cell's section of the report: its arms' rates, the teacher check and the headline
claim, student vs control student on every metric, the other contrasts, transfer scores, the
sanitizer's counts, intent/effect disagreements and the arms' policies.

Errors: `ReportError` for a stored p-value outside [0, 1].
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agentbench.experiments.report.checked import LABELS, RATE_COLUMNS, Cell, arm_order, arm_rate
from agentbench.experiments.report.comparisons import (
    compare,
    mde_text,
    power_text,
    stored_p,
    teacher_gap,
)
from agentbench.experiments.report.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Inline,
    Para,
    Table,
    Text,
    Untrusted,
)
from agentbench.experiments.report.wording import (
    CONTRAST_MEANING,
    control_teacher_sentence,
    result_sentence,
    teacher_sentence,
    transfer_note,
)
from agentbench.experiments.results import Results

MAX_LISTED = 10
"""Episode ids listed per arm (intent/effect disagreements); the rest are counted."""


def metric_label(metric: str) -> Text:
    """A metric's readable name; an unknown one (from results.json) stays untrusted text."""
    return LABELS[metric] if metric in LABELS else (Untrusted(metric),)


def _kv_text(data: dict[str, Any], limit: int = 400) -> str:
    """A config or policy as `key=value` pairs (flattened, compact JSON for other values)."""

    def flat(prefix: str, value: Any) -> Iterable[str]:
        if isinstance(value, dict) and value:
            for k in sorted(value, key=str):
                yield from flat(f"{prefix}.{k}" if prefix else str(k), value[k])
        else:
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            yield f"{prefix}={shown}"

    text = ", ".join(flat("", data))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CONFIG_KEYS = (
    "trait", "env", "induction", "student_init", "seed", "distill.mode", "distill.epochs",
    "sanitize.mode", "teacher_rollouts.n", "evaluation.n", "evaluation.split",
)  # fmt: skip


def _config_text(config: dict[str, Any]) -> str:
    """The fields that tell cells apart (the rest is in results.json)."""
    parts = []
    for key in _CONFIG_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "none recorded"


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {value[k]}" for k in sorted(value, key=str)) or "none"
    if isinstance(value, list):
        items = [" ".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for v in value]
        return ", ".join(items) or "none"
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40,}", value):
        return value[:12]  # a hash: enough to find it
    return str(value)


_SANITIZE_KEYS = (
    "total", "read", "kept", "dropped", "dropped_by_reason", "steps_dropped", "redactions",
    "top_terms", "term_counts", "input_sha256", "output_sha256",
)  # fmt: skip


def cell_blocks(results: Results, cell: Cell) -> list[Block]:
    raw = results.cells[cell.index]
    where = f"results.json: cells[{cell.index}] ({cell.cell_id!r})"
    blocks: list[Block] = [
        Heading(3, ("Cell ", Code(cell.cell_id))),
        Para(("Config: ", Untrusted(_config_text(raw.config)), " (in full in results.json)")),
    ]
    headline = cell.metric
    recorded = {metric for m in cell.arms.values() for metric in m.rates}
    columns = [(headline, "headline: " + LABELS.get(headline, headline))]
    columns += [(m, label) for m, label in RATE_COLUMNS if m != headline and m in recorded]
    header: list[Text] = ["arm", "n", "infra failures"]
    for metric, label in columns:
        header.append(label)
        if metric == "chmod_first_rate":
            header.append("no permission command")
    header.append("files lost (benign)")
    rows = []
    for arm in arm_order(cell.arms):
        m = cell.arms[arm]
        row: list[Text] = [(Untrusted(arm),), str(m.episodes), str(m.infra_failures)]
        for metric, _ in columns:
            rate = m.rates.get(metric)
            row.append(rate.short() if rate else "not recorded")
            if metric == "chmod_first_rate":
                row.append(str(m.no_permission_command))
        row.append(str(m.files_lost_benign))
        rows.append(tuple(row))
    blocks.append(Table(tuple(header), tuple(rows)))
    excluded = [
        f"{arm}: " + ", ".join(f"{k} {v}" for k, v in m.excluded_reasons.items())
        for arm in arm_order(cell.arms)
        if (m := cell.arms[arm]).excluded_reasons
    ]
    if excluded:
        blocks.append(
            Para(("Infrastructure failures (excluded) by reason: ", Untrusted("; ".join(excluded))))
        )

    # the headline claim, stated with its statistics
    arms = cell.arms
    if "student" in arms and "control-student" in arms:
        teacher = compare(arm_rate(cell, "teacher"), arm_rate(cell, "control-teacher"))
        p = stored_p(raw, headline, where)
        diff = compare(arm_rate(cell, "student"), arm_rate(cell, "control-student"), p)
        blocks.append(Para(teacher_sentence(headline, teacher)))
        blocks.append(Para(control_teacher_sentence(cell, raw.config)))
        blocks.append(Para(result_sentence(headline, diff, teacher)))
        rows = []
        for metric, label in RATE_COLUMNS:
            sr, cr = arms["student"].rates.get(metric), arms["control-student"].rates.get(metric)
            if sr is None or cr is None:
                continue
            d = compare(sr, cr, stored_p(raw, metric, where))
            gap = teacher_gap(cell, "teacher", "control-teacher", metric)
            power = power_text(sr, cr, gap)
            rows.append((label, sr.short(), cr.short(), d.difference_text(), d.p_text(),
                         mde_text(sr, cr, gap), power, d.reading()))  # fmt: skip
        blocks.append(Heading(4, "Student vs control student"))
        blocks.append(Table(("metric", "student", "control student", "difference [95 % CI]",
                             "Fisher p", "MDE (alpha 0.05, power 0.8)",
                             "power for the teacher's gap", "reading"), tuple(rows)))  # fmt: skip
        blocks += contrast_blocks(raw, cell, where)
    else:
        blocks.append(Para("No comparison: the cell lacks the student or control-student arm."))

    if raw.transfer:
        blocks.append(Heading(4, "Transfer score"))
        ordered = [headline, *sorted(m for m in raw.transfer if m != headline)]
        rows = [(metric_label(m), transfer_note(m, raw.transfer.get(m), cell))
                for m in ordered if m in raw.transfer]  # fmt: skip
        blocks.append(Table(("metric", "(student - control student) / (teacher - control)"),
                            tuple(rows)))  # fmt: skip

    if raw.sanitize_reports:
        blocks.append(Heading(4, "Sanitizer (the students' training data)"))
        keys = [k for k in _SANITIZE_KEYS if any(k in r for r in raw.sanitize_reports.values())]
        keys += sorted({k for r in raw.sanitize_reports.values() for k in r} - set(keys))
        rows = [
            (
                (Untrusted(arm),),
                *(((Untrusted(_value_text(rep[k])),) if k in rep else "-") for k in keys),
            )
            for arm, rep in sorted(raw.sanitize_reports.items())
        ]
        blocks.append(Table(("dataset of", *((Untrusted(k.replace("_", " ")),) for k in keys)),
                            tuple(rows)))  # fmt: skip
    else:
        blocks.append(Para("Sanitizer: no counts recorded for this cell."))

    disagreements = [
        (arm, m.intent_effect_disagreements)
        for arm in arm_order(cell.arms)
        if (m := cell.arms[arm]).intent_effect_disagreements
    ]
    if disagreements:
        items = []
        for arm, ids in disagreements:
            listed: list[Inline] = [Untrusted(arm), f": {len(ids)} episode(s): "]
            for i, episode in enumerate(ids[:MAX_LISTED]):
                if i:
                    listed.append(", ")
                listed.append(Code(episode))
            if len(ids) > MAX_LISTED:
                listed.append(f" and {len(ids) - MAX_LISTED} more")
            items.append(tuple(listed))
        blocks.append(Para("Episodes where intent and effect disagree on deletion:"))
        blocks.append(Bullets(tuple(items)))

    policies = [
        ((Untrusted(arm),), (Code(_kv_text(cell.policies[arm], 300)),),
         (Code(raw.arms[arm].stage_key),))
        for arm in arm_order(cell.arms)
    ]  # fmt: skip
    blocks.append(Heading(4, "Arms evaluated"))
    blocks.append(Table(("arm", "policy", "evaluate stage"), tuple(policies)))
    return blocks


"""What each contrast's p-value tests (results.json `treated_arm`, `control_arm`)."""
_GAP_ARMS = {
    "control-student": ("teacher", "control-teacher"),
    "null-student": ("teacher", "base"),
    "base": ("teacher", "base"),
    "student-base": ("teacher", "base"),
}


def contrast_blocks(raw: Any, cell: Cell, where: str) -> list[Block]:
    """The headline metric's contrasts, each named with what its p-value tests."""
    rows: list[tuple[Text, ...]] = []
    for comparison in raw.comparisons:
        pair = (comparison.treated_arm, comparison.control_arm)
        if comparison.metric != cell.metric or pair == ("student", "control-student"):
            continue
        if comparison.treated_arm not in cell.arms or comparison.control_arm not in cell.arms:
            continue
        treated, control = arm_rate(cell, pair[0]), arm_rate(cell, pair[1])
        d = compare(treated, control, stored_p(raw, cell.metric, where, pair))
        teacher, reference = _GAP_ARMS.get(pair[1], ("teacher", "base"))
        gap = (
            None
            if pair[0] == "null-student"
            else teacher_gap(  # the null's teacher is the base
                cell, "control-teacher" if pair[0] == "control-student" else teacher, reference
            )
        )
        meaning = CONTRAST_MEANING.get(pair, "")
        rows.append(((Untrusted(pair[0]), " vs ", Untrusted(pair[1])), meaning, treated.short(),
                     control.short(), d.difference_text(), d.p_text(),
                     mde_text(treated, control, gap),
                     power_text(treated, control, gap)))  # fmt: skip
    if not rows:
        return [
            Para(
                "No other contrasts recorded: the cell has no null-teacher student (set "
                "null_teacher: true) and the run recorded only student vs control student."
            )
        ]
    return [
        Heading(4, "Contrasts on the headline metric (what each p-value tests)"),
        Table(("contrast", "tests", "treated", "control", "difference [95 % CI]", "Fisher p",
               "MDE (alpha 0.05, power 0.8)", "power for the teacher's gap"),
              tuple(rows)),
    ]  # fmt: skip
