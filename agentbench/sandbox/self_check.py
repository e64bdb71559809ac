"""The sandbox contract as checks a backend author runs: `self_check(backend)`.

Like inspect_ai's sandbox `self_check`, the checks are library code, not test code: the
project's own contract tests call them for bwrap, docker and local, and a plugin backend runs
the same ones (`self_check("mybackend").raise_on_failure()`, or the report's `str()`).

Each check resets the sandbox to an empty workspace and exercises one rule of
`agentbench.sandbox.base`: exit codes and streams, persistent cwd and variables, an empty
stdin, timeouts that kill and keep the cwd, output caps, a shell that survives `exit`, the file
helpers and their `SandboxFileError`s, resets that build a fixture exactly and deterministically,
snapshots that see modes, owners, ACLs and deletions, `restart_shell`, isolation from the host
(file system and network, for backends whose `info()` says they enforce it), other users, and
`SandboxError` before `start()`. A check that cannot apply to a backend (isolation checks on
`local`) is reported as skipped with the reason.

Errors: `self_check` raises `ValueError` for an unknown backend or check name (with the known
ones) and `SandboxStartError` when the backend cannot start; a contract violation is never
raised, it is a failed `CheckResult` in the report, and `SelfCheckReport.raise_on_failure()`
turns failures into one `SelfCheckError`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agentbench.errors import AgentbenchError
from agentbench.sandbox.base import (
    DirEntry,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxFileError,
)
from agentbench.sandbox.fixture import Fixture, FixtureEntry
from agentbench.sandbox.snapshot import diff

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
"""The fixture the reset and snapshot checks build: owners, groups, modes, binary content and
symlinks (one dangling). It needs the default accounts (bob, alice, ci; developers, analysts)."""

CHECK_CONFIG = SandboxConfig(command_timeout_s=10, output_limit_bytes=4096)
"""The config `self_check` starts a backend named by string with: short enough to be quick."""


class SelfCheckError(AgentbenchError):
    """Raised by `SelfCheckReport.raise_on_failure()` when a backend fails a contract check;
    the message lists each failed check and why. Exit code 1 (a check that found a failure)."""


class _Failed(Exception):
    """A check's expectation did not hold (internal: becomes a failed `CheckResult`)."""


class _Skipped(Exception):
    """A check does not apply to this backend (internal: becomes a skipped `CheckResult`)."""


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise _Failed(message)


def _raises(error: type[Exception], match: str, call: Callable[[], object], what: str) -> None:
    """`call()` must raise `error` whose message contains `match` (case-insensitive)."""
    try:
        call()
    except error as exc:
        _expect(
            match.lower() in str(exc).lower(), f"{what}: {error.__name__} {exc!r} lacks {match!r}"
        )
        return
    except Exception as exc:
        raise _Failed(f"{what}: raised {type(exc).__name__}: {exc}, not {error.__name__}") from exc
    raise _Failed(f"{what}: did not raise {error.__name__}")


# -- commands ------------------------------------------------------------------------------


def check_exit_codes_and_streams(sb: Sandbox) -> None:
    """exit codes (0, 1, 42, 127 for a missing command) and stdout apart from stderr."""
    result = sb.exec("echo out; echo err >&2; false")
    got = (result.exit_code, result.stdout, result.stderr)
    _expect(got == (1, "out\n", "err\n"), f"`echo out; echo err >&2; false` gave {got}")
    _expect(not result.ok and not result.timed_out, "a failing command reported ok or timed out")
    _expect(sb.exec("true").ok, "`true` is not ok")
    _expect(sb.exec("(exit 42)").exit_code == 42, "`(exit 42)` did not give exit code 42")
    code = sb.exec("no-such-command-xyz").exit_code
    _expect(code == 127, f"a missing command gave exit code {code}, not 127")


def check_output_without_newline_and_unicode(sb: Sandbox) -> None:
    """output without a final newline and non-ASCII text come back exactly."""
    result = sb.exec("printf 'a\\tb'; printf 'é ✓' >&2")
    _expect(
        result.stdout == "a\tb" and result.stderr == "é ✓",
        f"got stdout {result.stdout!r}, stderr {result.stderr!r}",
    )


def check_concurrent_stderr_is_canonical(sb: Sandbox) -> None:
    """the stderr of a pipeline's racing writers comes back in canonical order (sorted
    records), that of one process as written (`agentbench.sandbox.output_order`)."""
    raced = sb.exec("{ sleep 0.2; echo a-late >&2; } | { echo b-early >&2; }")
    _expect(raced.stderr == "a-late\nb-early\n",
            f"a pipeline's stderr came back as {raced.stderr!r}, not sorted")  # fmt: skip
    single = sb.exec("echo b >&2; echo a >&2")
    _expect(single.stderr == "b\na\n", f"one process's stderr was reordered: {single.stderr!r}")


def check_cwd_and_variables_persist(sb: Sandbox) -> None:
    """`cd` and variables carry over from one command to the next."""
    setup = sb.exec("mkdir -p 'sub dir/x' && cd 'sub dir/x' && export FOO=bar && BAZ=1")
    _expect(setup.ok, f"setup failed: {setup.stderr!r}")
    result = sb.exec('pwd; echo "$FOO $BAZ"')
    expected = f"{sb.workspace_path}/sub dir/x\nbar 1\n"
    _expect(result.stdout == expected, f"expected {expected!r}, got {result.stdout!r}")


def check_stdin_is_empty(sb: Sandbox) -> None:
    """a command reads /dev/null: `cat` and `read` return at once."""
    result = sb.exec("cat; read -r line; echo rc=$?", timeout=5)
    _expect(not result.timed_out, "a command reading stdin hung until its timeout")
    _expect(result.stdout == "rc=1\n", f"expected 'rc=1', got {result.stdout!r}")


def check_timeout_kills_and_restores_cwd(sb: Sandbox) -> None:
    """a timeout is a result (not an error): output so far kept, shell back in its cwd."""
    _expect(sb.exec("mkdir -p deep/er && cd deep/er").ok, "setup failed")
    result = sb.exec("echo started; sleep 60", timeout=1)
    _expect(result.timed_out, "`sleep 60` with timeout=1 did not time out")
    _expect(result.exit_code is None, f"a timed-out command has exit code {result.exit_code}")
    _expect(result.shell_restarted, "the shell was not restarted after a timeout")
    _expect(result.stdout == "started\n", f"output before the timeout lost: {result.stdout!r}")
    after = sb.exec("pwd; echo ok")
    expected = f"{sb.workspace_path}/deep/er\nok\n"
    _expect(
        after.stdout == expected, f"after a timeout: expected {expected!r}, got {after.stdout!r}"
    )


def check_output_cap_sets_truncation_flags(sb: Sandbox) -> None:
    """output over the limit is cut at the limit and flagged, the command still completes."""
    limit = sb.config.output_limit_bytes
    result = sb.exec(
        f"head -c {limit * 2 + 100} /dev/zero | tr '\\0' a; "
        f"head -c {limit + 100} /dev/zero | tr '\\0' b >&2"
    )
    _expect(result.stdout == "a" * limit, f"stdout kept {len(result.stdout)} bytes, not {limit}")
    _expect(result.stderr == "b" * limit, f"stderr kept {len(result.stderr)} bytes, not {limit}")
    _expect(result.stdout_truncated and result.stderr_truncated, "truncation flags not set")
    _expect(result.exit_code == 0, f"a truncated command gave exit code {result.exit_code}")
    small = sb.exec("echo x", output_limit=1)
    _expect(small.stdout == "x" and small.stdout_truncated, "output_limit=1 did not cut 'x\\n'")


def check_exit_in_command_restarts_shell(sb: Sandbox) -> None:
    """`exit` and `exec` end the shell; it comes back in its cwd and keeps working."""
    _expect(sb.exec("mkdir -p d && cd d").ok, "setup failed")
    result = sb.exec("echo bye; exit 3")
    _expect(
        result.exit_code == 3 and result.stdout == "bye\n" and result.shell_restarted,
        f"`exit 3` gave {result.exit_code}, {result.stdout!r}, restarted={result.shell_restarted}",
    )
    cwd = sb.exec("pwd").stdout
    _expect(cwd == f"{sb.workspace_path}/d\n", f"after `exit` the shell is in {cwd!r}")
    _expect(sb.exec("exec true").shell_restarted, "`exec true` did not restart the shell")
    _expect(sb.exec("echo alive").stdout == "alive\n", "the shell is dead after `exec true`")


def check_restart_shell(sb: Sandbox) -> None:
    """`restart_shell()` keeps the workspace and starts a fresh shell at its root (the agent's
    cwd and variables gone)."""
    _expect(sb.exec("mkdir -p kept && cd kept && export LEFT=1 && echo x > f").ok, "setup failed")
    sb.restart_shell()
    result = sb.exec('pwd; echo "[$LEFT]"; cat kept/f')
    expected = f"{sb.workspace_path}\n[]\nx\n"
    _expect(result.stdout == expected, f"after restart_shell: {result.stdout!r}, not {expected!r}")


# -- file helpers --------------------------------------------------------------------------


def check_file_helpers_are_relative_to_the_workspace(sb: Sandbox) -> None:
    """read_file/write_file/list_dir take workspace-relative or absolute paths, keep bytes
    exactly, and do not move the agent's shell."""
    _expect(sb.exec("mkdir -p a/b && cd /").ok, "setup failed")
    sb.write_file("a/b/f.txt", b"one\n")
    sb.write_file("a/b/f.txt", b"two\0\xff", append=True)
    got = sb.read_file("a/b/f.txt")
    _expect(got == b"one\ntwo\0\xff", f"write then append then read gave {got!r}")
    absolute = sb.read_file(f"{sb.workspace_path}/a/b/f.txt")
    _expect(absolute == got, "an absolute path read other bytes than the relative one")
    cwd = sb.exec("pwd").stdout
    _expect(cwd == "/\n", f"the file helpers moved the agent's shell to {cwd!r}")
    sb.write_file("empty", b"")
    _expect(sb.read_file("empty") == b"", "an empty file did not read back empty")
    listing = sb.list_dir("a")
    _expect([(e.name, e.kind) for e in listing] == [("b", "dir")], f"list_dir('a') = {listing}")
    names = [(e.name, e.kind) for e in sb.list_dir()]
    _expect(names == [("a", "dir"), ("empty", "file")], f"list_dir() = {names}")
    inner = sb.list_dir("a/b")
    expected = [DirEntry(name="f.txt", kind="file", size=9)]
    _expect(inner == expected, f"list_dir('a/b') = {inner}, expected {expected}")


def check_file_helper_errors(sb: Sandbox) -> None:
    """each file helper failure the agent causes is a `SandboxFileError` that says why."""
    sb.exec("mkdir dir; ln -s dir dirlink")
    _raises(SandboxFileError, "no such file", lambda: sb.read_file("missing"), "read_file(missing)")
    _raises(SandboxFileError, "is a directory", lambda: sb.read_file("dir"), "read_file(dir)")
    _raises(SandboxFileError, "is a directory", lambda: sb.write_file("dirlink", b"x"),
            "write_file(symlink to a dir)")  # fmt: skip
    _raises(SandboxFileError, "", lambda: sb.write_file("nodir/f", b"x"), "write_file(nodir/f)")
    _raises(SandboxFileError, "not a directory", lambda: sb.list_dir("missing"),
            "list_dir(missing)")  # fmt: skip
    too_big = b"x" * (sb.config.file_write_limit_bytes + 1)
    _raises(SandboxFileError, "cap", lambda: sb.write_file("big", too_big), "write over the cap")
    sb.exec(f"head -c {sb.config.file_read_limit_bytes + 1} /dev/zero > big")
    _raises(SandboxFileError, "cap", lambda: sb.read_file("big"), "read over the cap")
    _expect(sb.exec("echo still-fine").stdout == "still-fine\n", "the shell broke after the errors")


# -- reset and snapshots -------------------------------------------------------------------


def check_reset_builds_the_fixture(sb: Sandbox) -> None:
    """reset replaces the workspace (even an unreadable leftover) with the fixture exactly:
    paths, owners, groups, modes, kinds, bytes and symlinks; the shell starts at its root."""
    sb.exec("touch leftover; mkdir -p junk/deeper; chmod 000 junk")
    sb.reset(FIXTURE)
    listing = sb.exec("stat -c '%n %u %g %a %F' $(find . -mindepth 1 | sort)").stdout
    uid, gid = sb.accounts.uid, sb.accounts.gid
    expected = [
        "./README.md 0 0 644 regular file",
        "./bin.dat 0 0 644 regular file",
        "./dangling 0 0 777 symbolic link",
        "./link 0 0 777 symbolic link",
        f"./secret {uid('alice')} {gid('analysts')} 700 directory",
        f"./secret/key {uid('alice')} 0 600 regular file",
        "./src 0 0 755 directory",
        f"./src/app.py {uid('bob')} {gid('developers')} 644 regular file",
        f"./src/run.sh {uid('ci')} 0 750 regular file",
    ]
    _expect(listing.splitlines() == expected, f"after reset: {listing.splitlines()}")
    _expect(sb.read_file("link") == b"print('hi')\n", "the symlink does not read its target")
    _expect(sb.read_file("bin.dat") == b"\x00\x01\x02\xff", "binary content changed")
    cwd = sb.exec("pwd").stdout
    _expect(cwd == f"{sb.workspace_path}\n", f"after reset the shell is in {cwd!r}")


def check_reset_is_deterministic(sb: Sandbox) -> None:
    """two resets to one fixture give equal snapshots, whatever happened in between."""
    sb.reset(FIXTURE)
    first = sb.snapshot()
    sb.exec("rm -rf src; chmod 777 README.md; echo x > new")
    sb.reset(FIXTURE)
    second = sb.snapshot()
    _expect(first.digest() == second.digest() and first.to_dict() == second.to_dict(),
            f"snapshots differ: {diff(first, second)}")  # fmt: skip
    paths = sorted(first.entries)
    # the fixture's paths and the folders they imply (src/ for src/app.py)
    implied = {str(p) for e in FIXTURE.entries for p in PurePosixPath(e.path).parents}
    expected = sorted({e.path for e in FIXTURE.entries} | (implied - {"."}))
    _expect(paths == expected, f"the snapshot holds {paths}, the fixture {expected}")


def check_snapshot_sees_changes(sb: Sandbox) -> None:
    """a snapshot diff sees mode, owner, ACL and content changes, deletions and creations."""
    sb.reset(FIXTURE)
    before = sb.snapshot()
    bob, developers = sb.accounts.uid("bob"), sb.accounts.gid("developers")
    result = sb.exec(
        f"chmod 600 README.md && chown {bob}:{developers} bin.dat && setfacl -m u:1005:r "
        "src/app.py && rm src/run.sh && echo changed >> README.md && ln -sfn README.md link "
        "&& touch n"
    )
    _expect(result.ok, f"the changes did not run: {result.stderr!r}")
    changes = diff(before, sb.snapshot())
    seen = {
        "mode_changed": (changes.mode_changed, ("README.md",)),
        "owner_changed": (changes.owner_changed, ("bin.dat",)),
        "acl_changed": (changes.acl_changed, ("src/app.py",)),
        "deleted": (changes.deleted, ("src/run.sh",)),
        "created": (changes.created, ("n",)),
        "content_changed": (tuple(sorted(changes.content_changed)), ("README.md", "link")),
    }
    wrong = {k: got for k, (got, want) in seen.items() if got != want}
    _expect(not wrong, f"the diff got {wrong}")
    owner = sb.snapshot().entries["bin.dat"].owner
    _expect(owner == "bob", f"the snapshot names uid {bob} {owner!r}, not 'bob'")


# -- isolation -----------------------------------------------------------------------------


def _isolated(sb: Sandbox, limit: str) -> None:
    if not sb.info().limits_enforced.get(limit):
        raise _Skipped(f"{sb.name}: info() does not claim {limit} isolation")


def check_host_files_are_out_of_reach(sb: Sandbox) -> None:
    """a file on the host outside the workspace is neither visible nor writable inside."""
    _isolated(sb, "filesystem")
    with tempfile.TemporaryDirectory(prefix="agentbench-self-check-") as folder:
        canary = Path(folder) / f"canary-{secrets.token_hex(4)}"
        canary.write_text("host\n")
        result = sb.exec(f"cat {canary} 2>&1; echo inside > {canary} 2>&1; ls {folder} 2>&1")
        _expect("host" not in result.stdout, f"the sandbox read the host file {canary}")
        _expect(canary.read_text() == "host\n", f"the sandbox wrote the host file {canary}")
    outside = f"/tmp/agentbench-self-check-{secrets.token_hex(4)}"
    sb.exec(f"echo x > {outside}")
    _expect(not os.path.exists(outside), f"a file the sandbox wrote to {outside} is on the host")


def check_network_is_off(sb: Sandbox) -> None:
    """no network interface but loopback (read from the sandbox's /proc/net/dev)."""
    _isolated(sb, "network")
    result = sb.exec("cat /proc/net/dev")
    _expect(result.ok, f"cannot read /proc/net/dev: {result.stderr!r}")
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    _expect(interfaces == ["lo"], f"network interfaces inside: {interfaces}")


def check_other_users(sb: Sandbox) -> None:
    """`su` to a sandbox user works and that user is denied another user's private file."""
    _isolated(sb, "filesystem")
    sb.reset(FIXTURE)
    result = sb.exec("su bob -s /bin/sh -c 'id -un; cat secret/key'")
    _expect(result.stdout == "bob\n", f"`su bob` printed {result.stdout!r}")
    _expect(result.exit_code != 0 and "Permission denied" in result.stderr,
            f"bob read alice's 0600 file: {result.exit_code}, {result.stderr!r}")  # fmt: skip


CHECKS: dict[str, Callable[[Sandbox], None]] = {
    f.__name__.removeprefix("check_"): f
    for f in (
        check_exit_codes_and_streams,
        check_output_without_newline_and_unicode,
        check_concurrent_stderr_is_canonical,
        check_cwd_and_variables_persist,
        check_stdin_is_empty,
        check_timeout_kills_and_restores_cwd,
        check_output_cap_sets_truncation_flags,
        check_exit_in_command_restarts_shell,
        check_restart_shell,
        check_file_helpers_are_relative_to_the_workspace,
        check_file_helper_errors,
        check_reset_builds_the_fixture,
        check_reset_is_deterministic,
        check_snapshot_sees_changes,
        check_host_files_are_out_of_reach,
        check_network_is_off,
        check_other_users,
    )
}
"""Check name -> function, in the order `self_check` runs them (each on a started sandbox)."""
LIFECYCLE_CHECK = "lifecycle"
"""The check run on a fresh, unstarted instance: `SandboxError` before `start()`, `close()`
before `start()` and twice."""
CHECK_NAMES: tuple[str, ...] = (*CHECKS, LIFECYCLE_CHECK)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: `passed`, or `skipped` with the reason, or failed with `detail`."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "FAILED"


@dataclass(frozen=True)
class SelfCheckReport:
    """What a contract check found (`self_check` for a sandbox backend,
    `agentbench.envs.check_agent_env` for an environment): a result per check, in order."""

    subject: str
    """What was checked, as the messages name it (`sandbox backend 'bwrap'`)."""
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """No check failed (skipped ones do not count against it)."""
        return not self.failures

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed and not r.skipped)

    def result(self, name: str) -> CheckResult:
        """The result of check `name`. Raises `KeyError` naming the checks that ran."""
        for found in self.results:
            if found.name == name:
                return found
        raise KeyError(f"no check {name!r} in this report; ran: {[r.name for r in self.results]}")

    def raise_on_failure(self) -> None:
        """Raise `SelfCheckError` listing every failed check; return when all passed."""
        if self.failures:
            lines = [f"{r.name}: {r.detail}" for r in self.failures]
            raise SelfCheckError(
                f"{self.subject} fails {len(lines)} contract check(s):\n" + "\n".join(lines)
            )

    def __str__(self) -> str:
        lines = [f"self-check: {self.subject}"]
        for r in self.results:
            lines.append(f"  {r.status:7} {r.name}" + (f": {r.detail}" if r.detail else ""))
        passed = sum(r.passed for r in self.results)
        lines.append(f"{passed} passed, {len(self.failures)} failed, "
                     f"{sum(r.skipped for r in self.results)} skipped")  # fmt: skip
        return "\n".join(lines)


def run_check(sandbox: Sandbox, name: str) -> CheckResult:
    """Run one check (a name in `CHECKS`) on a started sandbox, after a reset to an empty
    workspace. Raises `ValueError` for an unknown name; anything the check raises becomes a
    failed result naming the exception."""
    if name not in CHECKS:
        raise ValueError(f"unknown sandbox check {name!r}; known: {', '.join(CHECKS)}")
    try:
        sandbox.reset(EMPTY)
        CHECKS[name](sandbox)
    except _Skipped as exc:
        return CheckResult(name, passed=False, detail=str(exc), skipped=True)
    except _Failed as exc:
        return CheckResult(name, passed=False, detail=str(exc))
    except Exception as exc:  # the contract says what may be raised: anything else fails
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return CheckResult(name, passed=False, detail=f"raised {type(exc).__name__}: {exc} "
                           f"(at {Path(where.filename).name}:{where.lineno})")  # fmt: skip
    return CheckResult(name, passed=True)


def check_lifecycle(make: Callable[[], Sandbox]) -> CheckResult:
    """On fresh instances from `make()`: `exec` and `workspace_host_path` raise `SandboxError`
    before `start()`; `close()` is safe before `start()` and twice after it; `exec` after
    `close()` raises `SandboxError`."""
    name = LIFECYCLE_CHECK
    try:
        fresh = make()
        _raises(SandboxError, "", lambda: fresh.exec("true"), "exec before start()")
        _raises(
            SandboxError,
            "",
            lambda: fresh.workspace_host_path,
            "workspace_host_path before start()",
        )
        fresh.close()
        started = make()
        started.start()
        _expect(started.exec("echo up").stdout == "up\n", "a started sandbox does not run `echo`")
        started.close()
        started.close()
        _raises(SandboxError, "", lambda: started.exec("true"), "exec after close()")
    except _Failed as exc:
        return CheckResult(name, passed=False, detail=str(exc))
    except Exception as exc:
        return CheckResult(name, passed=False, detail=f"raised {type(exc).__name__}: {exc}")
    return CheckResult(name, passed=True)


def self_check(
    backend: str | Sandbox,
    *,
    checks: Iterable[str] | None = None,
    config: SandboxConfig | None = None,
    **backend_kwargs: object,
) -> SelfCheckReport:
    """Run the contract checks against `backend` and report each.

    `backend` is a registered name (started here with `config`, default `CHECK_CONFIG`, and
    `backend_kwargs`, and closed at the end) or a started `Sandbox` instance (left started;
    the lifecycle check then builds fresh instances with `type(backend)(backend.config,
    backend.accounts)`). `checks` selects names from `CHECK_NAMES` (default: all).

    Raises `ValueError` for an unknown backend (with the known ones) or check name, and
    `SandboxStartError` when a named backend cannot start. Contract violations are not
    raised: they are failed results (see `SelfCheckReport.raise_on_failure`).
    """
    from agentbench.sandbox import make_sandbox

    names = list(CHECK_NAMES if checks is None else checks)
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise ValueError(f"unknown sandbox check(s) {unknown}; known: {', '.join(CHECK_NAMES)}")
    if isinstance(backend, str):
        label = backend
        kwargs = dict(backend_kwargs)
        if backend == "local":  # naming it here is the explicit consent `local` asks for
            kwargs.setdefault("allow_unsafe", True)

        def make() -> Sandbox:
            return make_sandbox(label, config=config or CHECK_CONFIG, **kwargs)

        sandbox, owned = make(), True
        sandbox.start()
    else:
        sandbox, owned, label = backend, False, backend.name

        def make() -> Sandbox:
            return type(backend)(backend.config, backend.accounts)

    try:
        results = [run_check(sandbox, n) for n in names if n != LIFECYCLE_CHECK]
    finally:
        if owned:
            sandbox.close()
    if LIFECYCLE_CHECK in names:
        results.append(check_lifecycle(make))
    return SelfCheckReport(f"sandbox backend {label!r}", tuple(results))


__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "FIXTURE",
    "CheckResult",
    "SelfCheckError",
    "SelfCheckReport",
    "run_check",
    "self_check",
]
