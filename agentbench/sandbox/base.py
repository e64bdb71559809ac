"""The sandbox contract every backend implements.

A sandbox owns one workspace (a directory on the host, seen as `/workspace` inside the sandbox)
and one long-lived shell that runs the agent's commands. The harness drives it in a fixed cycle:

    sandbox.start()            # once; raises SandboxStartError on infrastructure failure
    sandbox.reset(fixture)     # per episode: a fresh workspace built from the fixture
    sandbox.exec("ls -la")     # per step
    sandbox.snapshot()         # before/after a step: what the workspace holds
    sandbox.close()            # idempotent

File helpers (`read_file`, `write_file`, `list_dir`) must be confined by the sandbox, not by
host-side path logic; the shell backends (`agentbench.sandbox.shell_sandbox.ShellSandbox`) run
them inside the sandbox through its shell. Snapshots and resets work on the host's side of the
workspace, with no sandbox process running during a reset and no symlink ever followed.

`agentbench.sandbox.self_check` runs these rules against a backend and reports what fails.

Errors:
- `SandboxStartError`: the sandbox could not be started (missing tool or image, dead daemon).
  This is an infrastructure failure; callers must report it as such, never as agent behaviour.
- `SandboxError`: the sandbox broke mid-episode (the shell died and could not be restarted).
  Also infrastructure.
- `SandboxFileError`: a file helper failed for a reason that belongs to the agent (no such file,
  a directory where a file was expected, a file over the size cap). Its message is fit to show
  the agent as an observation.

A command that times out or prints too much is *not* an error: `exec` returns an `ExecResult`
with `timed_out` or the truncation flags set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from agentbench.errors import DataError, InfrastructureError
from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.fixture import Fixture, materialize
from agentbench.sandbox.snapshot import Snapshot, pin_mtimes, take_snapshot

WORKSPACE = "/workspace"
"""Where the workspace appears inside every sandbox."""


class SandboxStartError(InfrastructureError, RuntimeError):
    """Raised when the sandbox could not be started: an infrastructure failure, not an agent's."""


class SandboxError(InfrastructureError, RuntimeError):
    """Raised when the sandbox broke while in use (its shell died and could not be restarted)."""


class SandboxFileError(DataError):
    """Raised when a file helper failed for a reason the agent caused; the message is
    agent-facing (the env shows it to the agent; it does not reach a user)."""


class SandboxConfig(BaseModel):
    """Limits and knobs shared by all backends. Backends may subclass to add their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_timeout_s: float = Field(20.0, gt=0, le=3600, description="Default per-command limit.")
    output_limit_bytes: int = Field(
        16_384, gt=0, le=16 * 2**20, description="Bytes of stdout and of stderr kept per command."
    )
    output_kill_bytes: int = Field(
        32 * 2**20, gt=0, description="A command printing more than this is killed early."
    )
    memory_limit_mb: int = Field(512, ge=16, description="Memory for everything in the sandbox.")
    pids_limit: int = Field(256, ge=8, description="Processes and threads in the sandbox.")
    cpus: float = Field(1.0, gt=0, description="CPU share (Docker), where the backend supports it.")
    workspace_limit_mb: int = Field(256, ge=1, description="Largest workspace a step may leave.")
    workspace_max_files: int = Field(
        20_000, ge=100, description="Files and directories the workspace may hold (inodes)."
    )
    file_read_limit_bytes: int = Field(1 * 2**20, gt=0, description="Cap for read_file.")
    file_write_limit_bytes: int = Field(4 * 2**20, gt=0, description="Cap for write_file.")


@dataclass(frozen=True)
class ExecResult:
    """What one command did. Output is decoded as UTF-8 with replacement characters."""

    exit_code: int | None
    """The shell's `$?`; None when the command was killed (timeout, output flood)."""
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_flooded: bool = False
    """The command printed more than `output_kill_bytes` and was killed."""
    shell_restarted: bool = False
    """The shell had to be restarted after this command (killed, or it exited)."""
    shell_note: str | None = None
    """What the agent should know about that restart (its directory was gone, so the shell
    came back at the workspace root); None when there is nothing to say."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class DirEntry:
    name: str
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int


@dataclass
class SandboxInfo:
    """Provenance of a sandbox, recorded with every trajectory."""

    backend: str
    image: str | None = None
    limits_enforced: dict[str, bool] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Sandbox(ABC):
    """One isolated workspace plus one long-lived shell: the contract. See the module
    docstring; `ShellSandbox` implements `exec` and the file helpers on a persistent shell."""

    name: ClassVar[str]

    def __init__(self, config: SandboxConfig | None = None, accounts: Accounts | None = None):
        self.config = config or SandboxConfig()
        self.accounts = accounts or Accounts.default()

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Prepare the backend and an empty workspace, and start the shell. A no-op when
        already started.

        Raises `SandboxStartError` (a missing tool, image or root file system, a dead daemon,
        a shell that does not come up); the backend is closed again before it raises.
        """

    @abstractmethod
    def _stop_processes(self) -> None:
        """Kill every process in the sandbox (the shell and anything it left behind).

        Raises `SandboxError` when processes survive the kill.
        """

    @abstractmethod
    def _start_processes(self) -> None:
        """Start the shell over the current workspace.

        Raises `SandboxStartError` (not started, or the shell does not come up).
        """

    @abstractmethod
    def close(self) -> None:
        """Kill everything and remove the workspace. Safe to call twice, and before `start()`.

        Raises `SandboxError` only where processes survive the kill (bwrap); docker logs and
        goes on.
        """

    @property
    @abstractmethod
    def workspace_host_path(self) -> Path:
        """The workspace as seen from the host (read by snapshots, written by reset).

        Raises `SandboxError` when the sandbox is not started.
        """

    @property
    def workspace_path(self) -> str:
        """The workspace as seen from inside the sandbox; relative paths start here."""
        return WORKSPACE

    @abstractmethod
    def info(self) -> SandboxInfo:
        """Backend, image and which limits are really enforced. Raises nothing; call it
        before or after `start()`."""

    def reset(self, fixture: Fixture) -> None:
        """Replace the workspace with a fresh copy of `fixture` and restart the shell.

        No sandbox process runs while the workspace is rebuilt, so nothing can race the
        host-side writes.

        Raises `FixtureError` (from `agentbench.sandbox.fixture`) for a malformed fixture,
        `SandboxStartError` if the shell cannot be restarted, and `SandboxError` when the
        sandbox is not started or the last episode's processes survive the kill.
        """
        self._stop_processes()
        materialize(fixture, self.workspace_host_path, self.accounts)
        self._start_processes()

    def restart_shell(self) -> None:
        """Kill everything running in the sandbox and start a fresh shell at the workspace root.

        The workspace is kept. Environments call this before checking an episode, so nothing the
        agent left behind (background jobs, shell functions, a changed PATH) can interfere with
        the final snapshot or the checker's commands.

        Raises `SandboxError` when it cannot (not started, or the shell does not come back).
        """
        self._stop_processes()
        try:
            self._start_processes()
        except SandboxStartError as exc:
            raise SandboxError(f"the sandbox shell could not be restarted: {exc}") from exc

    # -- commands --------------------------------------------------------------------------
    @abstractmethod
    def exec(
        self, command: str, *, timeout: float | None = None, output_limit: int | None = None
    ) -> ExecResult:
        """Run `command` in the sandbox's shell (cwd and variables persist between calls).

        The command's stdin is /dev/null. On timeout its process tree is killed, the shell is
        restarted in the last known working directory, and `timed_out` is set; output over
        `output_limit` is cut (`stdout_truncated`), a flood over `config.output_kill_bytes`
        kills the command (`output_flooded`). None of these is an error.

        Raises `SandboxError` only when the sandbox is not started or the shell cannot be
        brought back.
        """

    # -- state -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Paths, kinds, sizes, modes, owners, ACLs and content hashes of the workspace, read
        from the host without following symlinks.

        Raises `SandboxError` when the sandbox is not started.
        """
        return take_snapshot(self.workspace_host_path, self.accounts)

    def pin_mtimes(self, newer_than: float, to: float) -> int:
        """Set the times of workspace entries modified after `newer_than` to `to`, from the
        host (`agentbench.sandbox.snapshot.pin_mtimes`); how many changed.

        Raises `SandboxError` when the sandbox is not started.
        """
        return pin_mtimes(self.workspace_host_path, newer_than, to)

    # -- file helpers (confined by the sandbox) ---------------------------------------------
    @abstractmethod
    def read_file(self, path: str) -> bytes:
        """Bytes of a regular file; `path` is relative to the workspace or absolute inside
        the sandbox.

        Raises `SandboxFileError` (the agent's doing: no such file, a directory or not a
        regular file, over `config.file_read_limit_bytes`, a timeout) and `SandboxError` (the
        sandbox is not started or broke).
        """

    @abstractmethod
    def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Write (or append) bytes to a file; parent directories must exist.

        Raises `SandboxFileError` (over `config.file_write_limit_bytes`, a directory at
        `path`, a missing parent, a timeout) and `SandboxError` (not started or broke).
        """

    @abstractmethod
    def list_dir(self, path: str = ".") -> list[DirEntry]:
        """Entries of a directory, sorted by name (symlinks not followed).

        Raises `SandboxFileError` (not a directory) and `SandboxError` (not started or broke).
        """

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
