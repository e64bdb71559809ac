"""Sandboxes: where agents' commands run. See `base.Sandbox` for the contract."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from agentbench.sandbox.base import (
    WORKSPACE,
    DirEntry,
    ExecResult,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxFileError,
    SandboxInfo,
    SandboxStartError,
)
from agentbench.sandbox.fixture import Fixture, FixtureEntry, FixtureError
from agentbench.sandbox.snapshot import FileEntry, Snapshot, SnapshotDiff, diff, take_snapshot

__all__ = [
    "WORKSPACE",
    "DirEntry",
    "ExecResult",
    "FileEntry",
    "Fixture",
    "FixtureEntry",
    "FixtureError",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxFileError",
    "SandboxInfo",
    "SandboxStartError",
    "Snapshot",
    "SnapshotDiff",
    "available_backends",
    "diff",
    "make_sandbox",
    "take_snapshot",
]

# Built-in backends, imported lazily so that `docker` stays an optional extra.
_BUILTIN = {
    "bwrap": "agentbench.sandbox.bwrap:BwrapSandbox",
    "docker": "agentbench.sandbox.docker:DockerSandbox",
    "local": "agentbench.sandbox.local:LocalSandbox",
}
ENTRY_POINT_GROUP = "agentbench.sandboxes"


def available_backends() -> dict[str, str]:
    """Backend name -> "module:Class", built-ins plus the `agentbench.sandboxes` entry points."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def make_sandbox(name: str = "bwrap", **kwargs: Any) -> Sandbox:
    """Create (not start) a sandbox by backend name. Raises ValueError for an unknown name."""
    import importlib

    backends = available_backends()
    if name not in backends:
        raise ValueError(f"unknown sandbox backend {name!r}; available: {sorted(backends)}")
    module_name, _, attr = backends[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    sandbox: Sandbox = cls(**kwargs)
    return sandbox
