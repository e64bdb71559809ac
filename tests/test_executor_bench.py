"""`agentbench bench executor` prints its three figures (a small run: the figures themselves
are measured by hand, see docs/scale-out.md)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from tests.conftest import require_backend

pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")


@pytest.mark.bwrap
def test_bench_executor_prints_the_overhead_and_the_speed_ups() -> None:
    require_backend("bwrap")
    result = CliRunner().invoke(
        app, ["bench", "executor", "--n", "3", "--cells", "2", "--work-s", "0.05",
              "--episodes", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    overhead = re.search(r"Ray's overhead (-?[\d.]+) ms a stage", out)
    speedup = re.search(r"speed-up x([\d.]+) \(ideal x2.00\)", out)
    assert overhead and speedup, out
    assert "2-cell suite (2 chains of 4 stages" in out
    assert float(speedup[1]) > 0
    rollout = re.search(
        r"sharded rollout stage \(4 scripted episodes in bwrap sandboxes\): local 1 part "
        r"[\d.]+ s, Ray 2 parts on 2 workers [\d.]+ s; speed-up x([\d.]+) \(ideal x2.00\); "
        r"same trajectories: yes",
        out,
    )
    assert rollout and float(rollout[1]) > 0, out
