"""A run killed with SIGKILL leaves its workspace mount; `sandbox clean` removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentbench.sandbox.workspace import HostWorkspace, remove_stale_workspaces

CHILD = """
import os, signal, sys
from agentbench.sandbox.workspace import HostWorkspace
ws = HostWorkspace(8)
print(ws.root, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _mounted(path: Path) -> bool:
    mounts = Path("/proc/mounts").read_text().splitlines()
    return any(line.split()[1] == str(path) for line in mounts)


@pytest.mark.skipif(os.geteuid() != 0, reason="workspace quotas (tmpfs mounts) need root")
def test_stale_workspace_of_a_killed_run_is_removed() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert proc.returncode == -9
    root = Path(proc.stdout.strip())
    assert _mounted(root / "workspace")

    live = HostWorkspace(8)  # ours, alive: must survive the clean-up
    try:
        removed = remove_stale_workspaces()
        assert root in removed
        assert not root.exists() and not _mounted(root / "workspace")
        assert live.path.is_dir() and _mounted(live.path)
    finally:
        live.close()
