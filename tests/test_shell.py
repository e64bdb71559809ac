"""PersistentShell on a plain host bash: framing, restarts, odd commands and odd directories."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentbench.sandbox import SandboxStartError
from agentbench.sandbox.shell import PersistentShell, _unquote_dir

BASH = ["bash", "--noprofile", "--norc"]
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[PersistentShell]:
    sh = PersistentShell(BASH, env=ENV, cwd=str(tmp_path), initial_dir=str(tmp_path))
    sh.start()
    yield sh
    sh.stop()


def run(sh: PersistentShell, command: str, timeout: float = 5, limit: int = 4096):  # type: ignore[no-untyped-def]
    return sh.run(command, timeout=timeout, output_limit=limit)


def test_basic_roundtrip(shell: PersistentShell) -> None:
    result = run(shell, "echo a; echo b >&2; exit_code=7; (exit $exit_code)")
    assert (result.stdout, result.stderr, result.exit_code) == ("a\n", "b\n", 7)


def test_fake_sentinels_do_not_confuse_the_framing(shell: PersistentShell) -> None:
    fake = "printf '\\n%s 0 /etc\\n' 0123456789abcdef0123456789abcdef; echo after"
    result = run(shell, fake)
    assert result.stdout.endswith("after\n") and result.exit_code == 0
    assert run(shell, "pwd").exit_code == 0 and shell.last_dir != "/etc"


@pytest.mark.parametrize(
    "broken", ["'", '"', "`", "$(", "{", "(", "if", "case x in", "for", "fi", "done", "}", ")"]
)
def test_syntax_errors_leave_the_shell_usable(shell: PersistentShell, broken: str) -> None:
    result = run(shell, broken)
    assert result.exit_code == 2 and not result.shell_restarted
    after = run(shell, "{ echo alive; }")
    assert after.stdout == "alive\n" and not after.shell_restarted


@pytest.mark.parametrize("name", ["with space", "new\nline", "qu'o\"te", "ünï $x `y`", "-dash"])
def test_odd_directories_survive_a_restart(shell: PersistentShell, name: str) -> None:
    q = shlex.quote(name)
    assert run(shell, f"mkdir -- {q} && cd -- {q}").exit_code == 0
    assert shell.last_dir is not None and shell.last_dir.endswith("/" + name)
    timed_out = run(shell, "sleep 30", timeout=0.3)
    assert timed_out.timed_out and timed_out.shell_restarted
    assert run(shell, "pwd").stdout == shell.last_dir + "\n"
    assert Path(shell.last_dir).name == name


def test_exit_and_exec_restart(shell: PersistentShell) -> None:
    assert run(shell, "exit 9").exit_code == 9
    assert run(shell, "exec true").shell_restarted
    killed = run(shell, "sh -c 'kill -9 $$'")
    assert killed.exit_code == 137 and not killed.shell_restarted
    assert run(shell, "echo ok").stdout == "ok\n"


def test_output_limits(shell: PersistentShell) -> None:
    capped = run(shell, "seq 1 100000", limit=10)
    assert capped.stdout == "1\n2\n3\n4\n5\n" and capped.stdout_truncated
    flood = shell.run("yes", timeout=20, output_limit=100, output_kill=1 << 20)
    assert flood.output_flooded and flood.exit_code is None and flood.shell_restarted
    assert run(shell, "echo ok").stdout == "ok\n"


def test_large_command_and_binary_output(shell: PersistentShell) -> None:
    payload = "x" * 1_000_000
    # bash parses a 1 MB word in ~0.5 s idle, over 5 s on loaded cores: this checks framing.
    result = run(shell, f"printf %s {payload} | wc -c", timeout=60)
    assert (result.stdout.strip(), result.exit_code) == ("1000000", 0), result
    raw = run(shell, "printf '\\xff\\xfe\\x00ok'")
    assert raw.stdout == "\ufffd\ufffd\x00ok"


def test_nul_bytes_are_stripped(shell: PersistentShell) -> None:
    assert run(shell, "echo a\0b").stdout == "ab\n"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        max_size=200,
    )
)
def test_any_text_round_trips(shell: PersistentShell, text: str) -> None:
    result = run(shell, f"printf %s {shlex.quote(text)}")
    assert result.stdout == text and result.exit_code == 0


def test_lone_surrogates_do_not_crash(shell: PersistentShell) -> None:
    result = run(shell, "echo '\ud800x'")
    assert result.stdout == "?x\n" and result.exit_code == 0


def test_start_failures_are_infrastructure_errors(tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="cannot start"):
        PersistentShell([str(tmp_path / "no-such-shell")]).start()
    with pytest.raises(SandboxStartError, match="did not start"):
        PersistentShell(["false"]).start()


def test_stop_twice_and_run_when_stopped(tmp_path: Path) -> None:
    sh = PersistentShell(BASH, env=ENV)
    sh.start()
    sh.stop()
    sh.stop()
    assert not sh.alive
    assert sh.run("true", timeout=1, output_limit=10, _restart=False).exit_code is None
    assert sh.run("echo back", timeout=5, output_limit=10).stdout == "back\n"  # restarts
    sh.stop()


@pytest.mark.parametrize(
    ("quoted", "expected"),
    [
        ("'/a b'", "/a b"),
        ("$'/a\\nb'", "/a\nb"),
        ("'/it'\\''s'", "/it's"),
        ("'/unclosed", None),
        ("'/a' '/b'", None),
    ],
)
def test_unquote_dir(quoted: str, expected: str | None) -> None:
    assert _unquote_dir(quoted) == expected
