"""The docs cannot rot: the site builds strictly, and every `agentbench` command they show exists.

Each shell line in a fenced block of README.md or docs/ that calls `agentbench` is resolved
against the real CLI (typer's click tree): the command path must exist and every `--option`
it passes must be one that command takes. Lines that end in `--dry-run` or `--help` are also
run for real, since they are cheap; the rest (suite runs, model builds) are too long for the
default tests, and the README's two commands run in CI anyway.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from agentbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_LANGS = {"bash", "sh", "console", "shell"}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `agentbench`) for every agentbench call in a shell block."""
    found: list[tuple[str, list[str]]] = []
    for path in doc_files():
        for lang, body in FENCE.findall(path.read_text(encoding="utf-8")):
            if lang not in SHELL_LANGS:
                continue
            for line in body.replace("\\\n", " ").splitlines():
                for part in re.split(r"&&|\|\||;|\|", line):
                    words = shlex.split(part.strip().removeprefix("$ "), comments=True)
                    if words and Path(words[0]).name == "agentbench":
                        found.append((f"{path.relative_to(ROOT)}: {part.strip()}", words[1:]))
    return found


COMMANDS = shown_commands()


def is_group(command: Any) -> bool:
    # typer vendors its own click, so duck-type rather than isinstance(click.Group).
    return hasattr(command, "list_commands")


def resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command that argv names, and the arguments left after its path."""
    command: Any = typer.main.get_command(app)
    rest = list(argv)
    while is_group(command) and rest and not rest[0].startswith("-"):
        context = command.context_class(command)
        sub = command.get_command(context, rest[0])
        if sub is None:
            known = ", ".join(sorted(command.list_commands(context)))
            raise AssertionError(f"no command {rest[0]!r} (known: {known})")
        command, rest = sub, rest[1:]
    return command, rest


def test_docs_show_agentbench_commands() -> None:
    assert len(COMMANDS) >= 3, COMMANDS


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shown_command_exists_with_its_options(where: str, argv: list[str]) -> None:
    command, rest = resolve(argv)
    assert not is_group(command) or "--help" in rest, f"{where}: names a group"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    known.add("--help")
    for word in rest:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"{where}: {command.name} has no {word}"
    if rest and rest[-1] in {"--dry-run", "--help"}:
        done = subprocess.run(
            [sys.executable, "-m", "agentbench.cli", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stderr[-2000:]}"


def test_resolve_rejects_a_command_that_does_not_exist() -> None:
    with pytest.raises(AssertionError, match="no command 'nonsense'"):
        resolve(["models", "nonsense"])


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
