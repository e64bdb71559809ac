"""The filter report: what the sanitizer kept, dropped and why, written next to the dataset.

`FilterReport` is a JSON file (`report_path(output)`: ``student.jsonl`` ->
``student.report.json``) for humans and later stages: counts kept and dropped by reason, steps
dropped, redactions, matched terms with counts, up to five short examples of matches with
context (these hold banned words, which is why they live here and never in the dataset), the
input and output sha256, the config, the judge's provenance and the run's provenance.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_VERSION = 1
MAX_EXAMPLES = 5

DROP_REASONS: dict[str, str] = {
    "infra-failure": "the harness failed (sandbox, checker or policy backend)",
    "unsuccessful": "the episode did not solve its task (keep_failed is off)",
    "banned-metadata": "env id, family or split holds a banned term",
    "keyword": "a banned term in a message (drop-trajectory mode)",
    "behaviour": "no banned term, but a step's intent or effect is the trait (behavioural filter)",
    "keyword-instruction": "a banned term in the instruction (drop-step mode)",
    "no-steps-left": "drop-step removed every step",
    "redaction-failed": "a match only visible in an escaped form could not be redacted",
    "judge": "the LLM judge answered yes",
    "judge-unclear": "the LLM judge answered neither yes nor no",
    "judge-error": "the judge backend failed on this conversation",
}


def report_path(output: str | Path) -> Path:
    """``x.jsonl`` -> ``x.report.json`` (any suffix is replaced)."""
    out = Path(output)
    return out.with_name(f"{out.stem}.report.json")


class MatchExample(BaseModel):
    """One match, for a human reader: where it was and what was around it."""

    model_config = ConfigDict(extra="forbid")

    line: int
    """1-based line of the input file."""
    example_id: str
    message: int
    """Index in the student conversation (0: the instruction)."""
    role: str
    term: str
    context: str
    action: str
    """What the filter did: dropped the trajectory, dropped the step, redacted."""


class FilterReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    input: str
    input_sha256: str
    output: str
    output_sha256: str
    read: int = 0
    """Trajectory records read (blank lines are not records)."""
    kept: int = 0
    dropped: int = 0
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    steps_dropped: int = 0
    steps_dropped_behaviour: int = 0
    """Of `steps_dropped`, those with no banned term, dropped for their behaviour."""
    examples_with_dropped_steps: int = 0
    keyword_flagged: int = 0
    """Scanned trajectories holding a banned term (any mode; env text rewritten first)."""
    behaviour_flagged: int = 0
    """Scanned trajectories with at least one step whose intent or effect is the trait."""
    behaviour_steps: int = 0
    behaviour_counts: dict[str, int] = Field(default_factory=dict)
    """Why steps were the trait (``intent:rm``, ``effect:emptied``, ``text:> file``, ...):
    steps per finding, most frequent first."""
    env_text_rewrites: int = 0
    """Environment fragments (old FileTool tool list / archive message) rewritten."""
    env_text_only: int = 0
    """Trajectories whose only banned terms were environment text: kept for that."""
    redactions: int = 0
    examples_redacted: int = 0
    term_counts: dict[str, int] = Field(default_factory=dict)
    """Matched terms, most frequent first (occurrences in the dropped or changed messages)."""
    examples: list[MatchExample] = Field(default_factory=list)
    torn_tail_bytes: int = 0
    """A last line without newline that is not a record (a run still writing) is skipped."""
    leak_check: dict[str, Any] = Field(default_factory=dict)
    judge: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    terms: list[str] = Field(default_factory=list)
    """Every banned term in force (defaults and extra terms, normalized)."""
    seconds: float = 0.0
    leak_check_seconds: float = 0.0
    """The part of `seconds` spent re-reading the output for the leak check."""
    trajectories_per_s: float = 0.0
    provenance: dict[str, Any] = Field(default_factory=dict)

    def top_terms(self, n: int = 10) -> list[tuple[str, int]]:
        return sorted(self.term_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def write(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename); returns the path."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.model_dump_json(indent=2) + "\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
