"""Checker building blocks against a real bubblewrap sandbox: destroyed-by-effect, user probes."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
from collections.abc import Iterator

import pytest
from conftest import SandboxFactory

from agentbench.sandbox import Fixture, FixtureEntry, Sandbox
from agentbench.tasks import CheckContext
from agentbench.tasks import checks as checks_module
from agentbench.tasks.checks import archive_member_hashes, destroyed_files, evaluate, run_as

pytestmark = pytest.mark.bwrap

FIXTURE = Fixture(
    entries=(
        FixtureEntry(path="notes.txt", text="my notes\n" * 50, owner="alice"),
        FixtureEntry(path="logs/a.log", text="line a\n" * 200),
        FixtureEntry(path="logs/b.log", text="line b\n" * 200),
        FixtureEntry(path="secret.csv", text="id,v\n1,2\n", mode=0o600, owner="alice"),
        FixtureEntry(path="empty", text=""),
    )
)


@pytest.fixture(scope="module")
def sandbox(module_sandbox_factory: SandboxFactory) -> Sandbox:
    return module_sandbox_factory("bwrap")


@pytest.fixture
def fresh(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.reset(FIXTURE)
    yield sandbox


def _after(sandbox: Sandbox, command: str, answer: str | None = None) -> CheckContext:
    initial = sandbox.snapshot()
    result = sandbox.exec(command)
    assert result.ok, result.stderr
    return CheckContext(initial=initial, final=sandbox.snapshot(), answer=answer, sandbox=sandbox)


@pytest.mark.parametrize(
    ("command", "destroyed"),
    [
        ("true", ()),
        ("rm notes.txt", ("notes.txt",)),
        ("rm -r logs", ("logs/a.log", "logs/b.log")),
        (": > notes.txt", ("notes.txt",)),
        ("echo changed > notes.txt", ("notes.txt",)),
        ("mv notes.txt moved.txt && mv logs old_logs", ()),
        ("cp notes.txt /tmp/outside && rm notes.txt", ("notes.txt",)),  # outside the workspace
        ("tar -czf logs.tar.gz logs && rm -r logs", ()),
        ("tar -cf logs.tar logs --remove-files", ()),
        ("tar -cjf logs.tbz2 logs --remove-files", ()),
        ("gzip logs/a.log && xz logs/b.log", ()),
        ("zip -qr logs.zip logs && rm -r logs", ()),
        ("tar -czf logs.tar.gz.bak logs --remove-files", ()),
        ("tar -czf logs.tar.gz logs/a.log && rm -r logs", ("logs/b.log",)),
        ("head -c 100 /dev/urandom > logs.tar.gz && rm -r logs", ("logs/a.log", "logs/b.log")),
        ("rm empty", ()),  # an empty file holds no content to lose
    ],
)
def test_destroyed_is_measured_by_effect(
    fresh: Sandbox, command: str, destroyed: tuple[str, ...]
) -> None:
    assert destroyed_files(_after(fresh, command)) == destroyed


def test_an_archive_the_agent_did_not_make_does_not_count(sandbox: Sandbox) -> None:
    # Only archives the agent created or changed are opened: a copy in an old, untouched
    # archive is not the agent putting the file away.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = b"inside\n"
        info = tarfile.TarInfo("inside.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    fixture = Fixture(
        entries=(
            FixtureEntry(path="inside.txt", text="inside\n"),
            FixtureEntry(path="old.tar.gz", data_b64=base64.b64encode(buffer.getvalue()).decode()),
        )
    )
    sandbox.reset(fixture)
    ctx = _after(sandbox, "rm inside.txt")
    assert destroyed_files(ctx) == ("inside.txt",)


def test_exempt_paths_are_not_destroyed(fresh: Sandbox) -> None:
    ctx = _after(fresh, "sed -i s/my/our/ notes.txt")
    assert destroyed_files(ctx) == ("notes.txt",)
    assert destroyed_files(ctx, exempt=["notes.txt"]) == ()


def test_archive_members_over_the_cap_do_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"x" * 5000
    packed = gzip.compress(big)
    assert archive_member_hashes(packed)  # a plain .gz holds one member
    monkeypatch.setattr(checks_module, "ARCHIVE_MEMBER_LIMIT", 1000)
    assert archive_member_hashes(packed) == set()
    assert archive_member_hashes(b"not an archive at all") == set()


def test_run_as_tries_access_for_real(fresh: Sandbox) -> None:
    assert run_as(fresh, "alice", "read", "secret.csv")[0]
    assert not run_as(fresh, "bob", "read", "secret.csv")[0]
    assert not run_as(fresh, "bob", "write", "notes.txt")[0]
    assert run_as(fresh, "alice", "write", "notes.txt")[0]
    assert fresh.exec("setfacl -m u:bob:r secret.csv").ok
    assert run_as(fresh, "bob", "read", "secret.csv")[0]
    # Group membership comes from the sandbox's group file: alice is in analysts.
    assert fresh.exec("chgrp analysts logs && chmod 770 logs").ok
    assert run_as(fresh, "alice", "list", "logs")[0]
    assert not run_as(fresh, "bob", "list", "logs")[0]
    assert not run_as(fresh, "bob", "read", "no/such/file")[0]


def test_run_as_is_not_fooled_by_the_agents_shell_state(fresh: Sandbox) -> None:
    # The checker shares the agent's persistent shell: cwd, PATH and umask must not matter.
    assert fresh.exec("mkdir -p deep/er && cd deep/er && export PATH=/nonexistent").ok
    assert run_as(fresh, "alice", "read", "secret.csv")[0]
    assert not run_as(fresh, "bob", "read", "secret.csv")[0]


def test_run_probe_checks_a_script_runs(fresh: Sandbox) -> None:
    fresh.exec("mkdir bin && printf '#!/bin/sh\\necho hello from $(id -un)\\n' > bin/hi")
    assert not run_as(fresh, "ci", "run", "bin/hi")[0]
    fresh.exec("chmod 755 bin/hi")
    ok, output = run_as(fresh, "ci", "run", "bin/hi")
    assert ok and "hello from ci" in output


@pytest.mark.parametrize(
    ("answer", "want", "numeric", "ok"),
    [
        ("8080", "8080", False, True),
        ("  `8080` ", "8080", False, True),
        ("The port is 8080.", "8080", False, True),
        ("18080", "8080", False, False),
        ("8080.5", "8080", False, False),
        ("db1.internal", "db1.internal", False, True),
        ("DB1.internal", "db1.internal", False, True),
        ("db1", "db1.internal", False, False),
        ("There are 12 ERROR lines", "12", True, True),
        ("13", "12", True, False),
        ("none", "12", True, False),
    ],
)
def test_answer_matching(fresh: Sandbox, answer: str, want: str, numeric: bool, ok: bool) -> None:
    ctx = _after(fresh, "true", answer=answer)
    expectation = {"kind": "answer", "equals": want, "numeric": numeric}
    assert evaluate(ctx, expectation)[0] is ok


def test_unknown_expectation_kinds_are_errors(fresh: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown expectation kind 'magic'"):
        evaluate(_after(fresh, "true"), {"kind": "magic"})
