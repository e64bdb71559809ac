"""`agentbench bench executor` prints its two figures (a small run: the figures themselves
are measured by hand, see docs/scale-out.md)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from agentbench.cli import app

pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")


def test_bench_executor_prints_the_overhead_and_the_speed_up() -> None:
    result = CliRunner().invoke(
        app, ["bench", "executor", "--n", "3", "--cells", "2", "--work-s", "0.05"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    overhead = re.search(r"Ray's overhead (-?[\d.]+) ms a stage", out)
    speedup = re.search(r"speed-up x([\d.]+) \(ideal x2.00\)", out)
    assert overhead and speedup, out
    assert "2-cell suite (2 chains of 4 stages" in out
    assert float(speedup[1]) > 0
