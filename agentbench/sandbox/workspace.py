"""The host side of a sandbox workspace: a directory with a size quota.

As root, the workspace is its own tmpfs mount of `size_mb`, so an agent that fills the disk fills
only its quota (and tmpfs keeps POSIX ACLs, which permission tasks need). Without root it is a
plain temporary directory and the quota is not enforced; `quota_enforced` says which.

The folder's name carries the owning process id (`agentbench-[kind-]<pid>-<random>`), so that
`remove_stale_workspaces()` can unmount and delete what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agentbench.sandbox.base import SandboxStartError

_STALE_NAME = re.compile(r"^agentbench-(?:[a-z]+-)?(\d+)-")


class HostWorkspace:
    def __init__(self, size_mb: int, prefix: str = "agentbench-", max_files: int = 20_000):
        self.root = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
        self.path = self.root / "workspace"
        self.path.mkdir()
        self.quota_enforced = False
        if os.geteuid() == 0:
            # nosuid,nodev: root in the sandbox writes here; nothing it leaves may act as a
            # setuid program or a device node on the host.
            proc = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    # nr_inodes: millions of empty files would make every snapshot crawl.
                    f"size={size_mb}m,nr_inodes={max_files},mode=0755,nosuid,nodev",
                    "tmpfs",
                    str(self.path),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                self.close()
                raise SandboxStartError(f"cannot mount the workspace tmpfs: {proc.stderr.strip()}")
            self.quota_enforced = True

    def close(self) -> None:
        """Unmount and remove. Safe to call twice."""
        if self.quota_enforced:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
            self.quota_enforced = False
        shutil.rmtree(self.root, ignore_errors=True)


def remove_stale_workspaces(parent: Path | None = None) -> list[Path]:
    """Unmount and delete workspaces whose owning process is gone; returns what was removed."""
    parent = parent or Path(tempfile.gettempdir())
    removed = []
    for root in parent.glob("agentbench-*"):
        match = _STALE_NAME.match(root.name)
        if match is None or not (root / "workspace").is_dir() or process_alive(int(match.group(1))):
            continue
        subprocess.run(["umount", "-l", str(root / "workspace")], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
            removed.append(root)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (owner of a workspace, a container)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
