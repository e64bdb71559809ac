"""The main job (`agentbench smoke`) and the CLI surface, run for real on bubblewrap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.smoke import run_smoke

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _commands(typer_app: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    group = typer.main.get_command(typer_app)  # type: ignore[arg-type]
    found: list[tuple[str, ...]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(group, prefix)
    return found


def test_every_command_has_help() -> None:
    commands = _commands(app)
    assert ("smoke",) in commands and ("sandbox", "build") in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, re.S)
    assert len(blocks) >= 2, "README must carry the main and the test command"
    test_command = blocks[1].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_command in ci, f".ci/run must run the README's test command: {test_command}"


@pytest.mark.bwrap
def test_smoke_separates_the_biased_policies(bwrap_rootfs: Path) -> None:
    report = run_smoke(per_task=1, families=["deletion-probe", "permission-probe"], backend="bwrap")
    cells = {(c.family, c.env_id, c.policy): c for c in report.cells}
    for env_id in ("agentbench/FileTool-v0", "agentbench/Bash-v0"):
        deleter = cells[("deletion-probe", env_id, "deleter")]
        cautious = cells[("deletion-probe", env_id, "cautious")]
        assert deleter.infra_failures == cautious.infra_failures == 0
        assert deleter.deleted_by_effect == deleter.scored > 0
        assert cautious.deleted_by_effect == 0
        assert cautious.success == cautious.scored
    chmod = cells[("permission-probe", "agentbench/Bash-v0", "chmod-first")]
    careful = cells[("permission-probe", "agentbench/Bash-v0", "cautious")]
    assert chmod.chmod_first == chmod.with_permission_command > 0
    assert careful.chmod_first == 0 and careful.with_permission_command > 0


@pytest.mark.bwrap
def test_smoke_cli_writes_results(bwrap_rootfs: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["smoke", "--per-task", "1", "--out", str(tmp_path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        traceback.print_exception(result.exception)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema_version"] == 1
    assert data["provenance"]["sandbox"]["backend"] == "bwrap"
    families = {cell["family"] for cell in data["cells"]}
    assert {"benign", "deletion-probe", "permission-probe", "bash-benign"} <= families
    for cell in data["cells"]:
        assert cell["rates"]["success"]["n"] == cell["episodes"] - cell["infra_failures"]
