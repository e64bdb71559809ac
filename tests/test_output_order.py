"""The canonical order of racing writers' stderr (agentbench.sandbox.output_order), on text
and through a real bash (PersistentShell) whose pipeline is timed to write out of order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentbench.sandbox.output_order import LIBSTDBUF, canonical_order, may_run_concurrently
from agentbench.sandbox.shell import PersistentShell

BASH = ["bash", "--noprofile", "--norc"]
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@pytest.mark.parametrize(
    "command",
    [
        "chmod -R 755 d | wcargs",
        "ls |& head",
        "sleep 1 & echo hi",
        "diff <(ls a) <(ls b)",
        "tee >(wc -l) < f",
        "coproc cat",
        "a; coproc b",
        "echo 'x' | cat",
    ],
)
def test_concurrent_commands_are_recognised(command: str) -> None:
    assert may_run_concurrently(command)


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "true && false || echo no",
        "echo hi > f 2>&1",
        "cmd &> log",
        "cat <&3",
        "echo 'a | b & c'",
        'echo "a | b & c"',
        r"echo a \| b \& c",
        "grep -c 'x|y' f",
        "mycoproc x",
        "echo $(ls)",
    ],
)
def test_sequential_commands_are_not(command: str) -> None:
    assert not may_run_concurrently(command)


def test_records_keep_their_indented_lines() -> None:
    text = "zeta: oops\n  at line 3\nalpha: bad\n"
    assert canonical_order(text) == "alpha: bad\nzeta: oops\n  at line 3\n"
    assert canonical_order("b\na") == "a\nb"
    assert canonical_order("") == ""


@given(st.lists(st.text(alphabet="ab: \n", max_size=12), max_size=6), st.randoms())
def test_any_interleaving_of_records_gives_one_order(lines: list[str], rnd) -> None:  # type: ignore[no-untyped-def]
    records = [r.replace("\n", "") for r in lines if r.strip() and not r[0].isspace()]
    shuffled = records[:]
    rnd.shuffle(shuffled)
    as_written = "".join(r + "\n" for r in records)
    assert canonical_order(as_written) == canonical_order("".join(r + "\n" for r in shuffled))


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[PersistentShell]:
    sh = PersistentShell(BASH, env=ENV, cwd=str(tmp_path), initial_dir=str(tmp_path))
    sh.start()
    yield sh
    sh.stop()


def test_a_pipelines_stderr_comes_back_sorted(shell: PersistentShell) -> None:
    # The left side writes 0.2 s after the right one: as written, "b-early" comes first.
    result = shell.run("{ sleep 0.2; echo a-late >&2; } | { echo b-early >&2; }",
                       timeout=5, output_limit=4096)  # fmt: skip
    assert result.stderr == "a-late\nb-early\n"


def test_one_processes_stderr_stays_as_written(shell: PersistentShell) -> None:
    result = shell.run("echo b >&2; sleep 0.05; echo a >&2", timeout=5, output_limit=4096)
    assert result.stderr == "b\na\n"
    # stdout is never reordered, even in a pipeline
    piped = shell.run("printf 'b\\na\\n' | cat", timeout=5, output_limit=4096)
    assert piped.stdout == "b\na\n"


def test_racing_processes_cannot_splice_their_lines(shell: PersistentShell) -> None:
    # chmod writes "chmod: " and "missing operand" in two writes; the missing command's
    # message comes from another process at the same moment. Every run gives whole lines, in
    # one order.
    seen = set()
    for _ in range(12):
        result = shell.run("chmod | wcargs-xyz; chmod | wcargs-xyz", timeout=5, output_limit=4096)
        seen.add(re.sub(r"line \d+", "line N", result.stderr))  # bash counts its lines
        assert all(
            line.startswith(("chmod: missing operand", "Try 'chmod", "bash: line"))
            for line in result.stderr.splitlines()
        ), result.stderr
    assert len(seen) == 1


def test_a_concurrent_commands_processes_write_stderr_by_lines(shell: PersistentShell) -> None:
    # What makes whole lines: libstdbuf preloaded with _STDBUF_E=L in the pipeline's processes.
    result = shell.run("env | grep -E '^(_STDBUF_E|LD_PRELOAD)=' | sort", timeout=5,
                       output_limit=4096)  # fmt: skip
    assert result.stdout == f"LD_PRELOAD={LIBSTDBUF}\n_STDBUF_E=L\n"


def test_the_shells_environment_is_left_as_it_was(shell: PersistentShell) -> None:
    shell.run("cd /tmp | cat; X=1", timeout=5, output_limit=4096)
    after = shell.run('echo "${LD_PRELOAD-unset} ${_STDBUF_E-unset} $X"', timeout=5,
                      output_limit=4096)  # fmt: skip
    assert after.stdout == "unset unset 1\n"
