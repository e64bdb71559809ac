"""`ShellSandbox`: the base of the backends whose commands run in one long-lived bash
(`agentbench.sandbox.shell.PersistentShell`): bwrap, docker and local.

It implements the contract's `exec` on that shell (the config's time and output limits as the
defaults) and the file helpers (`read_file`, `write_file`, `list_dir`) as small scripts run
*inside* the sandbox through it, so that the sandbox, not host-side path logic, confines what
they can reach. A backend supplies `_active_shell()` and the lifecycle methods of `Sandbox`.

Errors: `SandboxError` when the sandbox is not started or its shell cannot be brought back
(infrastructure); `SandboxFileError` when a file helper fails for the agent's reasons (no such
file, a directory where a file was expected, over the size cap, a timeout); its message is fit
to show the agent.
"""

from __future__ import annotations

import base64
import shlex
from abc import abstractmethod
from typing import TYPE_CHECKING

from agentbench.sandbox.base import (
    DirEntry,
    ExecResult,
    Sandbox,
    SandboxError,
    SandboxFileError,
)

if TYPE_CHECKING:
    from agentbench.sandbox.shell import PersistentShell

HELPER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""File helpers set their own PATH: an agent's `export PATH=...` must not break them."""


class ShellSandbox(Sandbox):
    """A sandbox whose commands and file helpers run in one persistent shell."""

    @abstractmethod
    def _active_shell(self) -> PersistentShell | None:
        """The shell commands run in now; None before `start()` and after `close()`."""

    # -- commands --------------------------------------------------------------------------
    def exec(
        self, command: str, *, timeout: float | None = None, output_limit: int | None = None
    ) -> ExecResult:
        """Run `command` in the persistent shell, with the config's limits as the defaults.

        Raises `SandboxError` when the sandbox is not started or the shell cannot be restarted
        after a timeout or an output flood (both of which are results, not errors).
        """
        shell = self._active_shell()
        if shell is None:
            raise SandboxError("sandbox is not started")
        return shell.run(
            command,
            timeout=timeout or self.config.command_timeout_s,
            output_limit=output_limit or self.config.output_limit_bytes,
            output_kill=self.config.output_kill_bytes,
        )

    # -- file helpers (run inside the sandbox) ------------------------------------------------
    def read_file(self, path: str) -> bytes:
        limit = self.config.file_read_limit_bytes
        q = shlex.quote(path)
        script = (
            f"if [ -d {q} ]; then echo 'is a directory' >&2; exit 21; fi; "
            f"if [ ! -e {q} ]; then echo 'no such file' >&2; exit 2; fi; "
            f"if [ ! -f {q} ]; then echo 'not a regular file' >&2; exit 22; fi; "
            f"n=$(stat -c %s -- {q}) || exit 13; "
            f'if [ "$n" -gt {limit} ]; then echo "file is $n bytes, over the {limit} byte cap"'
            f" >&2; exit 27; fi; base64 -w0 -- {q}"
        )
        result = self._run_helper(script, output_limit=limit * 2 + 64)
        return base64.b64decode(result.stdout.strip())

    def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        if len(data) > self.config.file_write_limit_bytes:
            raise SandboxFileError(
                f"content is {len(data)} bytes, over the {self.config.file_write_limit_bytes}"
                " byte cap"
            )
        q = shlex.quote(path)
        payload = base64.b64encode(data).decode()
        redirect = ">>" if append else ">"
        script = (
            f"if [ -d {q} ]; then echo 'is a directory' >&2; exit 21; fi; "
            f"printf '%s' {payload} | base64 -d {redirect} {q}"
        )
        self._run_helper(script)

    def list_dir(self, path: str = ".") -> list[DirEntry]:
        q = shlex.quote(path)
        script = (
            f"if [ ! -d {q} ]; then echo 'not a directory' >&2; exit 20; fi; "
            f"find {q} -mindepth 1 -maxdepth 1 -printf '%y %s %P\\0'"
        )
        result = self._run_helper(script, output_limit=self.config.file_read_limit_bytes)
        kinds = {"f": "file", "d": "dir", "l": "symlink"}
        entries = []
        for record in result.stdout.split("\0"):
            if not record:
                continue
            kind, size, name = record.split(" ", 2)
            entries.append(DirEntry(name=name, kind=kinds.get(kind, "other"), size=int(size)))
        return sorted(entries, key=lambda e: e.name)

    def _run_helper(self, script: str, output_limit: int | None = None) -> ExecResult:
        """Run a file helper's script; raises `SandboxFileError` with its last stderr line."""
        # A subshell keeps the helper's `exit` and `cd` from touching the persistent shell; paths
        # are relative to the workspace whatever directory the agent has moved to.
        workspace = shlex.quote(self.workspace_path)
        result = self.exec(
            f"( PATH={HELPER_PATH}; cd -- {workspace} && {{ {script}; }} )",
            output_limit=output_limit,
        )
        if result.timed_out:
            raise SandboxFileError("the file operation timed out")
        if result.exit_code != 0:
            message = result.stderr.strip().splitlines()
            raise SandboxFileError(message[-1] if message else f"failed ({result.exit_code})")
        if result.stdout_truncated:
            raise SandboxFileError("the result is larger than the cap")
        return result


__all__ = ["HELPER_PATH", "ShellSandbox"]
