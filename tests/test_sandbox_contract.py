"""The `Sandbox` contract, run against every backend (bwrap, docker, local)."""

from __future__ import annotations

import pytest
from conftest import ALL_BACKENDS, SandboxFactory, backend_params

from agentbench.sandbox import (
    DirEntry,
    Fixture,
    FixtureEntry,
    Sandbox,
    SandboxConfig,
    SandboxFileError,
    diff,
)

EMPTY = Fixture()
FIXTURE = Fixture(
    entries=(
        FixtureEntry(path="README.md", text="hello\n"),
        FixtureEntry(path="src/app.py", text="print('hi')\n", owner="bob", group="developers"),
        FixtureEntry(path="src/run.sh", text="#!/bin/sh\necho run\n", mode=0o750, owner="ci"),
        FixtureEntry(path="secret", kind="dir", mode=0o700, owner="alice", group="analysts"),
        FixtureEntry(path="secret/key", text="k", mode=0o600, owner="alice"),
        FixtureEntry(path="bin.dat", data_b64="AAEC/w=="),
        FixtureEntry(path="link", kind="symlink", target="src/app.py"),
        FixtureEntry(path="dangling", kind="symlink", target="/nowhere"),
    )
)


@pytest.fixture(scope="module", params=backend_params(ALL_BACKENDS))
def sandbox(request: pytest.FixtureRequest, module_sandbox_factory: SandboxFactory) -> Sandbox:
    config = SandboxConfig(command_timeout_s=10, output_limit_bytes=4096)
    return module_sandbox_factory(request.param, config)


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """The module's sandbox, reset to an empty workspace for each test."""
    sandbox.reset(EMPTY)
    return sandbox


def test_exit_codes_and_streams(sb: Sandbox) -> None:
    result = sb.exec("echo out; echo err >&2; false")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "out\n", "err\n")
    assert not result.ok and not result.timed_out
    assert sb.exec("true").ok
    assert sb.exec("(exit 42)").exit_code == 42
    assert sb.exec("no-such-command-xyz").exit_code == 127


def test_output_without_newline_and_unicode(sb: Sandbox) -> None:
    result = sb.exec("printf 'a\\tb'; printf 'é ✓' >&2")
    assert result.stdout == "a\tb" and result.stderr == "é ✓"


def test_cwd_and_variables_persist(sb: Sandbox) -> None:
    assert sb.exec("mkdir -p 'sub dir/x' && cd 'sub dir/x' && export FOO=bar && BAZ=1").ok
    result = sb.exec('pwd; echo "$FOO $BAZ"')
    assert result.stdout == f"{sb.workspace_path}/sub dir/x\nbar 1\n"


def test_stdin_is_empty(sb: Sandbox) -> None:
    result = sb.exec("cat; read -r line; echo rc=$?", timeout=5)
    assert result.stdout == "rc=1\n" and not result.timed_out


def test_timeout_kills_and_restores_cwd(sb: Sandbox) -> None:
    assert sb.exec("mkdir -p deep/er && cd deep/er").ok
    result = sb.exec("echo started; sleep 60", timeout=1)
    assert result.timed_out and result.exit_code is None and result.shell_restarted
    assert result.stdout == "started\n"
    after = sb.exec("pwd; echo ok")
    assert after.stdout == f"{sb.workspace_path}/deep/er\nok\n"


def test_output_cap_sets_truncation_flags(sb: Sandbox) -> None:
    result = sb.exec(
        "head -c 10000 /dev/zero | tr '\\0' a; head -c 9000 /dev/zero | tr '\\0' b >&2"
    )
    assert result.stdout == "a" * 4096 and result.stdout_truncated
    assert result.stderr == "b" * 4096 and result.stderr_truncated
    assert result.exit_code == 0
    small = sb.exec("echo x", output_limit=1)
    assert small.stdout == "x" and small.stdout_truncated


def test_exit_in_command_restarts_shell(sb: Sandbox) -> None:
    assert sb.exec("mkdir -p d && cd d").ok
    result = sb.exec("echo bye; exit 3")
    assert result.exit_code == 3 and result.stdout == "bye\n" and result.shell_restarted
    assert sb.exec("pwd").stdout == f"{sb.workspace_path}/d\n"
    assert sb.exec("exec true").shell_restarted
    assert sb.exec("echo alive").stdout == "alive\n"


def test_file_helpers_are_relative_to_the_workspace(sb: Sandbox) -> None:
    assert sb.exec("mkdir -p a/b && cd /").ok
    sb.write_file("a/b/f.txt", b"one\n")
    sb.write_file("a/b/f.txt", b"two\0\xff", append=True)
    assert sb.read_file("a/b/f.txt") == b"one\ntwo\0\xff"
    assert sb.read_file(f"{sb.workspace_path}/a/b/f.txt") == b"one\ntwo\0\xff"
    assert sb.exec("pwd").stdout == "/\n"  # the helpers did not move the agent
    sb.write_file("empty", b"")
    assert sb.read_file("empty") == b""
    assert sb.list_dir("a") == [DirEntry(name="b", kind="dir", size=sb.list_dir("a")[0].size)]
    names = [(e.name, e.kind) for e in sb.list_dir()]
    assert names == [("a", "dir"), ("empty", "file")]
    assert sb.list_dir("a/b") == [DirEntry(name="f.txt", kind="file", size=9)]


def test_file_helper_errors(sb: Sandbox) -> None:
    sb.exec("mkdir dir; ln -s dir dirlink")
    with pytest.raises(SandboxFileError, match="no such file"):
        sb.read_file("missing")
    with pytest.raises(SandboxFileError, match="is a directory"):
        sb.read_file("dir")
    with pytest.raises(SandboxFileError, match="is a directory"):
        sb.write_file("dirlink", b"x")
    with pytest.raises(SandboxFileError):
        sb.write_file("nodir/f", b"x")
    with pytest.raises(SandboxFileError, match="not a directory"):
        sb.list_dir("missing")
    with pytest.raises(SandboxFileError, match="cap"):
        sb.write_file("big", b"x" * (sb.config.file_write_limit_bytes + 1))
    sb.exec(f"head -c {sb.config.file_read_limit_bytes + 1} /dev/zero > big")
    with pytest.raises(SandboxFileError, match="cap"):
        sb.read_file("big")
    assert sb.exec("echo still-fine").stdout == "still-fine\n"


def test_reset_builds_the_fixture(sb: Sandbox) -> None:
    sb.exec("touch leftover; mkdir -p junk/deeper; chmod 000 junk")
    sb.reset(FIXTURE)
    listing = sb.exec("stat -c '%n %u %g %a %F' $(find . -mindepth 1 | sort)").stdout
    assert listing.splitlines() == [
        "./README.md 0 0 644 regular file",
        "./bin.dat 0 0 644 regular file",
        "./dangling 0 0 777 symbolic link",
        "./link 0 0 777 symbolic link",
        "./secret 1002 2001 700 directory",
        "./secret/key 1002 0 600 regular file",
        "./src 0 0 755 directory",
        "./src/app.py 1001 2002 644 regular file",
        "./src/run.sh 1003 0 750 regular file",
    ]
    assert sb.read_file("link") == b"print('hi')\n"
    assert sb.read_file("bin.dat") == b"\x00\x01\x02\xff"
    assert sb.exec("pwd").stdout == f"{sb.workspace_path}\n"


def test_reset_is_deterministic(sb: Sandbox) -> None:
    sb.reset(FIXTURE)
    first = sb.snapshot()
    sb.exec("rm -rf src; chmod 777 README.md; echo x > new")
    sb.reset(FIXTURE)
    second = sb.snapshot()
    assert first.digest() == second.digest()
    assert first.to_dict() == second.to_dict()
    assert sorted(first.entries) == [
        *("README.md", "bin.dat", "dangling", "link", "secret", "secret/key", "src"),
        *("src/app.py", "src/run.sh"),
    ]


def test_snapshot_sees_permission_changes_and_deletes(sb: Sandbox) -> None:
    sb.reset(FIXTURE)
    before = sb.snapshot()
    result = sb.exec(
        "chmod 600 README.md && chown 1001:2002 bin.dat && setfacl -m u:1005:r src/app.py"
        " && rm src/run.sh && echo changed >> README.md && ln -sfn README.md link && touch n"
    )
    assert result.ok, result.stderr
    changes = diff(before, sb.snapshot())
    assert changes.mode_changed == ("README.md",)
    assert changes.owner_changed == ("bin.dat",)
    assert changes.acl_changed == ("src/app.py",)
    assert changes.deleted == ("src/run.sh",)
    assert changes.created == ("n",)
    assert set(changes.content_changed) == {"README.md", "link"}
    assert sb.snapshot().entries["bin.dat"].owner == "bob"


def test_su_to_another_user(sb: Sandbox) -> None:
    if sb.name == "local":
        pytest.skip("the host has no sandbox accounts")
    sb.reset(FIXTURE)
    result = sb.exec("su bob -s /bin/sh -c 'id -un; cat secret/key'")
    assert result.stdout == "bob\n" and result.exit_code != 0
    assert "Permission denied" in result.stderr


def test_close_twice(sandbox_factory: SandboxFactory, request: pytest.FixtureRequest) -> None:
    for backend in ALL_BACKENDS:
        try:
            sandbox = sandbox_factory(backend)
        except pytest.skip.Exception:
            continue
        sandbox.reset(FIXTURE)
        sandbox.close()
        sandbox.close()
