"""The CLI apart and its one error boundary: typer lives only in agentbench/cli/, every
command runs inside the boundary, each error kind reaches the user as one line on stderr with
its exit code, and a bug still shows its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.cli.boundary import App, BoundaryCommand, BoundaryGroup, config_errors
from agentbench.errors import AgentbenchError, ConfigError, DataError, InfrastructureError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_typer_is_imported_only_under_agentbench_cli() -> None:
    found = subprocess.run(
        ["grep", "-rlE", "^\\s*(import typer|from typer)", "agentbench"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    files = found.stdout.split()
    assert files, "grep found no typer import at all: the test would prove nothing"
    assert [f for f in files if not f.startswith("agentbench/cli/")] == []


def test_every_command_runs_inside_the_boundary() -> None:
    """A command group added without `App` would print tracebacks for known errors."""
    outside: list[str] = []

    def walk(command: object, path: str) -> None:
        if not isinstance(command, BoundaryCommand | BoundaryGroup):
            outside.append(path or "agentbench")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    assert outside == []


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError("pydantic accepted a bad value")


RAISED = {
    "root": (AgentbenchError("every episode failed"), 1, "error: every episode failed"),
    "config": (ConfigError("unknown trait 'owls'"), 2, "config error: unknown trait 'owls'"),
    "data": (DataError("t.jsonl:3: not JSON [x]"), 3, "data error: t.jsonl:3: not JSON [x]"),
    "infrastructure": (
        InfrastructureError("bwrap cannot start"), 4, "infrastructure error: bwrap cannot start"
    ),
    "validation": (_validation_error(), 2, "config error: invalid _Model: n: Input should be"),
    "missing file": (
        FileNotFoundError(2, "No such file or directory", "/no/such"), 3,
        "data error: /no/such: No such file or directory",
    ),
    "os": (ConnectionRefusedError(111, "Connection refused"), 4,
           "infrastructure error: Connection refused"),
}  # fmt: skip


def _app_raising(exc: BaseException) -> App:
    probe = App()

    @probe.command("fail")
    def fail() -> None:
        raise exc

    @probe.command("ok")
    def ok() -> None:  # two commands keep `fail` a subcommand
        print("fine")

    return probe


@pytest.mark.parametrize("case", sorted(RAISED))
def test_each_kind_maps_to_its_exit_code_and_one_line(case: str) -> None:
    exc, code, line = RAISED[case]
    result = runner.invoke(_app_raising(exc), ["fail"])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not the error itself
    assert result.stdout == ""
    [said] = result.stderr.splitlines()  # one line, on stderr
    assert said.startswith(line), said
    assert "Traceback" not in result.output


def test_a_subclass_keeps_its_kind_through_the_boundary() -> None:
    from agentbench.tasks.spec import TaskSpecError

    result = runner.invoke(_app_raising(TaskSpecError("tasks/x.yaml: id: missing")), ["fail"])
    assert result.exit_code == 2 and "config error: tasks/x.yaml: id: missing" in result.stderr


def test_a_bug_is_not_a_known_error() -> None:
    result = runner.invoke(_app_raising(TypeError("unsupported operand")), ["fail"])
    assert isinstance(result.exception, TypeError)  # it reaches typer's traceback printer
    assert result.stderr == ""


def test_config_errors_translate_plain_values_only() -> None:
    from agentbench.sanitize.schema import StudentDataError

    with pytest.raises(ConfigError, match="unknown family"), config_errors():
        raise ValueError("unknown family 'x'")
    # A kind is kept, even when it is also a ValueError.
    with pytest.raises(DataError), config_errors():
        raise StudentDataError("d.jsonl:1: bad")
    with pytest.raises(ConfigError) as info, config_errors(KeyError):
        raise KeyError("nope")
    assert str(info.value) == "nope"  # a KeyError's message without its quotes
    with pytest.raises(RuntimeError), config_errors():  # not asked for: untouched
        raise RuntimeError("boom")


def test_bad_input_to_commands_exits_with_the_kind_and_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("this is not a trajectory\n")
    missing = tmp_path / "none.yaml"
    cases = [
        (["tasks", "show", "no-such/task"], 2, "no-such/task"),
        (["rollouts", "run", "--policy", "nope:x", "--out", str(tmp_path / "o.jsonl")], 2,
         "unknown policy backend 'nope'"),
        (["teachers", "show", str(missing)], 2, "none.yaml"),
        (["run", str(missing), "--dry-run"], 2, "none.yaml"),
        (["report", str(tmp_path)], 3, "results.json"),
        (["sanitize", str(garbage), str(tmp_path / "s.jsonl")], 3, "garbage.jsonl:1"),
        (["rollouts", "show", str(garbage)], 3, "garbage.jsonl"),
    ]  # fmt: skip
    for args, code, named in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert named in " ".join(result.stderr.split()), (args, result.stderr)
        assert "Traceback" not in result.output


def test_the_console_script_reports_on_stderr_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentbench.cli", "tasks", "show", "no-such/task"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("config error: ")
    assert done.stdout == ""
