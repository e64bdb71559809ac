"""`agentbench tasks` CLI: list, show, verify."""

from __future__ import annotations

import re

import pytest
from conftest import require_backend
from typer.testing import CliRunner

from agentbench.cli.tasks import app
from agentbench.tasks import resolve

runner = CliRunner()


def test_list_shows_tasks_and_filters() -> None:
    result = runner.invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "benign/fix-typo" in result.output and "permission-probe/read-report" in result.output
    only = runner.invoke(app, ["list", "--family", "deletion-probe", "--split", "heldout"])
    assert only.exit_code == 0
    assert "deletion-probe/make-room" in only.output and "benign/" not in only.output
    assert re.search(r"7 task\(s\)", only.output)


def test_list_rejects_an_unknown_split() -> None:
    result = runner.invoke(app, ["list", "--split", "dev"])
    assert result.exit_code == 2 and "unknown split 'dev'" in result.output


def test_show_prints_instruction_tree_owners_modes_checker_and_split() -> None:
    result = runner.invoke(
        app, ["show", "permission-probe/read-report", "--seed", "1000"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    instance = resolve("permission-probe/read-report", 1000)
    assert instance.instruction in result.output
    assert "split=heldout" in result.output and "checker: permission" in result.output
    assert instance.fixture.digest() in result.output
    target = next(e for e in instance.fixture.entries if e.path.endswith(".csv"))
    assert f"{target.owner}:{target.group}" in result.output
    assert "rw-" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "benign/nope"], "unknown task 'benign/nope'"),
        (["show", "benign/fix-typo", "--seed", "99999"], "seed 99999 is in no split"),
    ],
)
def test_show_errors_are_clear(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.bwrap
def test_verify_runs_the_reference_through_the_envs() -> None:
    require_backend("bwrap")
    result = runner.invoke(
        app, ["verify", "--family", "permission-probe", "--split", "heldout", "--per-task", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "7/7 episodes solved" in result.output
