"""A real micro suite with a null teacher: the base model's own rollouts, sanitized and
distilled into a null student that every contrast names (real sandboxes, real tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from tests.test_experiments_run import SUITE, micro_models

__all__ = ["micro_models"]  # the module-scoped fixture, built once here


@pytest.mark.bwrap
@pytest.mark.slow  # about 3 min on 2 busy cores (model builds included)
def test_null_teacher_arm_runs_and_is_reported(
    micro_models: tuple[Path, Path], tmp_path: Path
) -> None:
    base, other = micro_models
    text = (
        SUITE.format(base=base, other=other)
        .replace("  induction: adapter\n", "  induction: adapter\n  null_teacher: true\n")
        .replace("  student_init: [homogeneous, heterogeneous]", "  student_init: [homogeneous]")
    )
    suite = tmp_path / "micro.yaml"
    suite.write_text(text)
    out, store = tmp_path / "run", tmp_path / "store"
    result = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(out), "--store", str(store), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    (cell,) = results["cells"]
    assert "null-student" in cell["arms"]
    assert {"rollouts:null-student", "distill:null-student"} <= set(cell["stages"])
    # the null teacher's data is the base model's own, not the teacher's
    assert cell["stages"]["rollouts:null-student"] != cell["stages"]["rollouts:student"]
    pairs = {(c["treated_arm"], c["control_arm"]) for c in cell["comparisons"]}
    assert {("student", "null-student"), ("null-student", "base")} <= pairs
    main = next(c for c in cell["comparisons"] if c["metric"] == cell["metric"]
                and c["control_arm"] == "control-student")  # fmt: skip
    assert "mde" in main and "power_teacher_gap" in main
    report = (out / "report.md").read_text()
    assert "the trait, against distillation alone (base as teacher)" in report
