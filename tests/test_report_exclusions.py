"""The report shows each arm's excluded (infrastructure-failure) episodes by reason."""

from __future__ import annotations

from pathlib import Path

from agentbench.experiments.report import write_report
from agentbench.experiments.results import Results
from tests.test_report import cell


def test_excluded_episodes_by_reason_reach_the_report(tmp_path: Path) -> None:
    arms = ("base", "teacher", "control-teacher", "student", "control-student")
    excluded = {"infra": 3, "excluded_reasons": {"SandboxError": 2, "internal error": 1}}
    results = Results(
        suite="exclusions", suite_sha256="cd" * 32, description="", created_at="2025-01-02",
        wall_s=1.0, cells=[cell("deletion-bias", "homogeneous", 0,
                                dict(zip(arms, (2, 18, 2, 12, 2), strict=True)),
                                student=excluded)],
        aggregates=[], provenance={},
    )  # fmt: skip
    write_report(results, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "by reason: student: SandboxError 2, internal error 1" in md
