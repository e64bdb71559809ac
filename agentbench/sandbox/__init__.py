"""Sandboxes: where agents' commands run. See `base.Sandbox` for the contract."""

from __future__ import annotations

from typing import Any

from agentbench.registry import Registry
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
from agentbench.sandbox.shell_sandbox import ShellSandbox
from agentbench.sandbox.snapshot import FileEntry, Snapshot, SnapshotDiff, diff, take_snapshot

__all__ = [
    "BACKENDS",
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
    "ShellSandbox",
    "Snapshot",
    "SnapshotDiff",
    "available_backends",
    "diff",
    "make_sandbox",
    "take_snapshot",
]

ENTRY_POINT_GROUP = "agentbench.sandboxes"

BACKENDS: Registry[type[Sandbox]] = Registry(
    "sandbox backend",
    group=ENTRY_POINT_GROUP,
    base=Sandbox,
    expect="subclass",
    error=ValueError,
    # Imported lazily, so that `docker` stays an optional extra.
    builtins={
        "bwrap": "agentbench.sandbox.bwrap:BwrapSandbox",
        "docker": "agentbench.sandbox.docker:DockerSandbox",
        "local": "agentbench.sandbox.local:LocalSandbox",
    },
)
"""Backend name -> `Sandbox` subclass: the built-ins and the `agentbench.sandboxes` entry
points (a plugin cannot shadow a built-in name)."""


def available_backends() -> dict[str, str]:
    """Backend name -> "module:Class", built-ins plus the `agentbench.sandboxes` entry points."""
    out = {}
    for name in BACKENDS.names():
        target = BACKENDS.target(name)
        if target is None:  # registered as a class: name it
            cls = BACKENDS.get(name)
            target = f"{cls.__module__}:{cls.__qualname__}"
        out[name] = target
    return out


def make_sandbox(name: str = "bwrap", **kwargs: Any) -> Sandbox:
    """Create (not start) a sandbox by backend name. Raises ValueError for an unknown name
    (with the known ones and the closest match) or an entry point that is not a Sandbox."""
    return BACKENDS.get(name)(**kwargs)
