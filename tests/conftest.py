"""Shared fixtures: real sandboxes per backend, a host canary, backend availability.

Backends that cannot run here are skipped with the reason (not root, no bubblewrap, no Docker
daemon or image), never silently passed. With AGENTBENCH_REQUIRE_BACKENDS=bwrap,docker (CI sets
it) an unavailable backend fails the test instead: CI must really run the sandbox tests.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from agentbench.sandbox import Sandbox, SandboxConfig, SandboxStartError, make_sandbox

ALL_BACKENDS = ["bwrap", "docker", "local"]
ISOLATED_BACKENDS = ["bwrap", "docker"]
_MARKS = {"bwrap": pytest.mark.bwrap, "docker": pytest.mark.docker}


def backend_params(names: list[str]) -> list[object]:
    """Backend names as pytest params carrying their marker (`-m "not docker"` works)."""
    return [pytest.param(n, marks=_MARKS[n]) if n in _MARKS else n for n in names]


@cache
def bwrap_status() -> tuple[bool, str]:
    """(usable, reason): bubblewrap needs root (for chown tasks) and the root file system."""
    if os.geteuid() != 0:
        return False, "bwrap tests need root (the sandbox runs without a user namespace)"
    if shutil.which("bwrap") is None:
        return False, "bubblewrap is not installed"
    from agentbench.sandbox.rootfs import RootfsError, ensure_rootfs, rootfs_path

    if not (rootfs_path() / ".agentbench-rootfs").is_file() and shutil.which("debootstrap") is None:
        return False, "no sandbox root file system and no debootstrap to build one"
    try:
        ensure_rootfs()
    except (RootfsError, OSError) as exc:
        return False, f"sandbox root file system could not be built: {exc}"
    return True, ""


@cache
def docker_status() -> tuple[bool, str]:
    """(usable, reason): a daemon that answers, the backend module, and the sandbox image."""
    try:
        import docker  # noqa: F401

        from agentbench.sandbox.docker import DockerSandbox  # noqa: F401
        from agentbench.sandbox.image import docker_client, image_tag
    except ImportError as exc:
        return False, f"docker backend not importable: {exc}"
    try:
        client = docker_client(timeout=5)
        client.ping()
    except Exception as exc:  # any failure to reach the daemon means "skip", with its reason
        return False, f"no Docker daemon answers: {type(exc).__name__}: {exc}"
    try:
        client.images.get(image_tag())
    except Exception as exc:
        return False, f"sandbox image {image_tag()} not built (agentbench image build): {exc}"
    return True, ""


def backend_status(backend: str) -> tuple[bool, str]:
    if backend == "bwrap":
        return bwrap_status()
    if backend == "docker":
        return docker_status()
    return True, ""


def require_backend(backend: str) -> None:
    ok, reason = backend_status(backend)
    if not ok:
        required = os.environ.get("AGENTBENCH_REQUIRE_BACKENDS", "").split(",")
        if backend in required:
            pytest.fail(f"{backend} is required here (AGENTBENCH_REQUIRE_BACKENDS) but {reason}")
        pytest.skip(f"{backend}: {reason}")


def new_sandbox(backend: str, config: SandboxConfig | None = None, **kwargs: Any) -> Sandbox:
    """Create and start a sandbox, skipping the test when the backend is unavailable."""
    require_backend(backend)
    if backend == "local":
        kwargs.setdefault("allow_unsafe", True)
    sandbox = make_sandbox(backend, config=config, **kwargs)
    try:
        sandbox.start()
    except SandboxStartError:
        sandbox.close()
        raise
    return sandbox


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture(scope="session")
def bwrap_rootfs() -> Path:
    """The sandbox root file system, built if needed; skips when bwrap cannot run here."""
    require_backend("bwrap")
    from agentbench.sandbox.rootfs import ensure_rootfs

    return ensure_rootfs()


def _factory() -> Iterator[SandboxFactory]:
    made: list[Sandbox] = []

    def factory(backend: str, config: SandboxConfig | None = None, **kwargs: Any) -> Sandbox:
        sandbox = new_sandbox(backend, config, **kwargs)
        made.append(sandbox)
        return sandbox

    yield factory
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """`sandbox_factory(backend, config=None, **kw)`: a started sandbox, closed after the test."""
    yield from _factory()


@pytest.fixture(scope="module")
def module_sandbox_factory() -> Iterator[SandboxFactory]:
    """Like `sandbox_factory`, but the sandboxes live for the whole module (reset them)."""
    yield from _factory()


@dataclass
class HostCanary:
    """A directory of random files on the host, outside every workspace."""

    path: Path
    digests: dict[str, str]

    def current(self) -> dict[str, str]:
        found = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                rel = str(full.relative_to(self.path))
                st = full.lstat()
                data = full.read_bytes() if full.is_file() and not full.is_symlink() else b""
                found[rel] = (
                    f"{st.st_mode:o}:{st.st_uid}:{st.st_gid}:" + hashlib.sha256(data).hexdigest()
                )
        return found

    def assert_unchanged(self) -> None:
        assert self.current() == self.digests, "the host canary changed"


@pytest.fixture
def host_canary() -> Iterator[HostCanary]:
    """Random files on the host; the test fails if anything in a sandbox changed them."""
    root = Path(tempfile.mkdtemp(prefix="agentbench-canary-", dir="/var/tmp"))
    (root / "sub").mkdir()
    for rel in ("secret.txt", "sub/data.bin", "sub/keep.me"):
        (root / rel).write_bytes(secrets.token_bytes(256))
    os.chmod(root, 0o755)
    canary = HostCanary(path=root, digests={})
    canary.digests = canary.current()
    yield canary
    try:
        canary.assert_unchanged()
    finally:
        shutil.rmtree(root, ignore_errors=True)
