"""The `local` backend: a temporary directory and a host bash, with no isolation at all.

For development and for measuring the harness's own overhead. It refuses to start unless the
caller names it explicitly (`allow_unsafe=True`), because an agent's `rm -rf /` would run on the
host.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.base import (
    SandboxConfig,
    SandboxError,
    SandboxInfo,
    SandboxStartError,
)
from agentbench.sandbox.shell import PersistentShell
from agentbench.sandbox.shell_sandbox import ShellSandbox


class LocalSandbox(ShellSandbox):
    name = "local"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        accounts: Accounts | None = None,
        *,
        allow_unsafe: bool = False,
    ):
        super().__init__(config, accounts)
        self._allow_unsafe = allow_unsafe
        self._root: Path | None = None
        self._shell: PersistentShell | None = None

    @property
    def workspace_host_path(self) -> Path:
        if self._root is None:
            raise SandboxError("sandbox is not started")
        return self._root / "workspace"

    @property
    def workspace_path(self) -> str:
        return str(self.workspace_host_path)

    def start(self) -> None:
        if not self._allow_unsafe:
            raise SandboxStartError(
                "the 'local' sandbox has no isolation and runs agent commands on this host; "
                "pass allow_unsafe=True (CLI: --sandbox local --unsafe-local) to use it anyway"
            )
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="agentbench-local-"))
            self.workspace_host_path.mkdir()
        self._start_processes()

    def _start_processes(self) -> None:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workspace_host_path),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        workspace = str(self.workspace_host_path)
        self._shell = PersistentShell(
            ["bash", "--noprofile", "--norc"], env=env, cwd=workspace, initial_dir=workspace
        )
        self._shell.start()

    def _stop_processes(self) -> None:
        if self._shell is not None:
            self._shell.stop()
            self._shell = None

    def _active_shell(self) -> PersistentShell | None:
        return self._shell

    def close(self) -> None:
        self._stop_processes()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def info(self) -> SandboxInfo:
        return SandboxInfo(
            backend=self.name,
            limits_enforced={"network": False, "memory": False, "pids": False, "filesystem": False},
            extra={"host_uid": os.geteuid()},
        )
