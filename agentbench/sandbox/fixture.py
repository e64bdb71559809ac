"""Fixtures: the file tree a workspace starts from, as data.

A fixture is untrusted input (task files may come from users), so every path is validated
before anything touches the host: relative, normalised, no `..`, no NUL, bounded length. It is
written into an emptied workspace while no sandbox process runs, and symlinks are created last
and never followed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentbench.errors import ConfigError

if TYPE_CHECKING:
    from agentbench.sandbox.accounts import Accounts

FIXED_MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z: fixtures look the same on every run
MAX_PATH_BYTES = 1024
MAX_FIXTURE_BYTES = 64 * 2**20


class FixtureError(ConfigError, ValueError):
    """Raised when a fixture is malformed (bad path, unknown owner, too large)."""


class FixtureEntry(BaseModel):
    """One file, directory or symlink in a fixture."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    text: str | None = None
    """File content as UTF-8 text (or use `data_b64` for bytes)."""
    data_b64: str | None = None
    mode: int | None = Field(None, ge=0, le=0o7777)
    """Permission bits; default 0o644 for files, 0o755 for directories."""
    owner: str = "root"
    group: str = "root"
    target: str | None = None
    """Symlink target (resolved inside the sandbox, never on the host)."""

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return check_relative_path(value)

    @model_validator(mode="after")
    def _check_kind(self) -> FixtureEntry:
        if self.kind == "symlink":
            if not self.target or "\0" in self.target:
                raise ValueError(f"symlink {self.path!r} needs a non-empty target")
        elif self.target is not None:
            raise ValueError(f"{self.path!r}: only symlinks have a target")
        if self.kind != "file" and (self.text is not None or self.data_b64 is not None):
            raise ValueError(f"{self.path!r}: only files have content")
        if self.text is not None and self.data_b64 is not None:
            raise ValueError(f"{self.path!r}: give text or data_b64, not both")
        return self

    @property
    def content(self) -> bytes:
        if self.data_b64 is not None:
            return base64.b64decode(self.data_b64, validate=True)
        return (self.text or "").encode()

    @property
    def effective_mode(self) -> int:
        if self.mode is not None:
            return self.mode
        return 0o755 if self.kind == "dir" else 0o644


class Fixture(BaseModel):
    """A whole workspace tree. Parent directories are implied (root-owned, 0o755)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[FixtureEntry, ...] = ()

    @model_validator(mode="after")
    def _check_unique(self) -> Fixture:
        seen: set[str] = set()
        total = 0
        for entry in self.entries:
            if entry.path in seen:
                raise ValueError(f"duplicate fixture path {entry.path!r}")
            seen.add(entry.path)
            total += len(entry.text or "") + len(entry.data_b64 or "")
        if total > MAX_FIXTURE_BYTES:
            raise ValueError(f"fixture content is over {MAX_FIXTURE_BYTES} bytes")
        # Only directories can have children; anything under a file or symlink entry would
        # collide with it on disk (or be written through the link).
        leaves = {e.path for e in self.entries if e.kind != "dir"}
        for entry in self.entries:
            for parent in PurePosixPath(entry.path).parents:
                if str(parent) in leaves:
                    raise ValueError(f"{entry.path!r} lies under {str(parent)!r}, not a directory")
        return self

    def digest(self) -> str:
        """sha256 of the canonical JSON form: equal fixtures hash equal on every machine."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_relative_path(value: str) -> str:
    """Validate a workspace-relative POSIX path and return its normal form."""
    if not value or "\0" in value:
        raise ValueError("path must be non-empty and contain no NUL byte")
    if len(value.encode()) > MAX_PATH_BYTES:
        raise ValueError(f"path is longer than {MAX_PATH_BYTES} bytes")
    pure = PurePosixPath(value)
    if pure.is_absolute():
        raise ValueError(f"path {value!r} must be relative to the workspace")
    if any(part in ("..", "") for part in pure.parts) or str(pure) == ".":
        raise ValueError(f"path {value!r} must not contain '..' or name the workspace itself")
    return str(pure)


def clear_directory(root: Path) -> None:
    """Remove everything inside `root` (never following symlinks) and keep `root` itself.

    Iterative and fd-based: an agent's directories nested thousands deep (deeper than
    PATH_MAX) or left without permissions must not fail the next reset, which would turn a
    later episode into an infrastructure failure. Run only while no sandbox process runs.
    """
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(root, flags)
    # (directory fd, its entries still to remove, its name in the parent below it)
    stack: list[tuple[int, list[str], str]] = [(top, _names(top), "")]
    try:
        while stack:
            fd, names, own_name = stack[-1]
            if not names:  # emptied: close it and remove it from its parent
                stack.pop()
                os.close(fd)
                if stack:
                    os.rmdir(own_name, dir_fd=stack[-1][0])
                continue
            name = names.pop()
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
                continue
            # An agent may have left directories it cannot enter; open them up first.
            os.chmod(name, 0o700, dir_fd=fd)
            child = os.open(name, flags, dir_fd=fd)
            stack.append((child, _names(child), name))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _names(dirfd: int) -> list[str]:
    with os.scandir(dirfd) as it:
        return [entry.name for entry in it]


def materialize(fixture: Fixture, root: Path, accounts: Accounts) -> None:
    """Empty `root` and write `fixture` into it with owners, modes and a fixed mtime.

    Raises FixtureError for an owner or group the sandbox does not know.
    """
    clear_directory(root)
    can_chown = os.geteuid() == 0  # as another user, files keep that user's ids
    if can_chown:
        os.chown(root, 0, 0)
    try:
        ids = {e.path: (accounts.uid(e.owner), accounts.gid(e.group)) for e in fixture.entries}
    except KeyError as exc:
        raise FixtureError(str(exc)) from None

    ordered = sorted(fixture.entries, key=lambda e: (e.kind == "symlink", e.path.count("/")))
    for entry in ordered:
        dest = root / entry.path
        _make_parents(root, dest.parent)
        if entry.kind == "dir":
            dest.mkdir(exist_ok=True)
        elif entry.kind == "file":
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(entry.content)
        else:
            os.symlink(entry.target or "", dest)
    # Modes and owners last (a 0o500 directory must receive its children first), deepest first.
    for entry in sorted(ordered, key=lambda e: -e.path.count("/")):
        dest = root / entry.path
        if entry.kind != "symlink":
            os.chmod(dest, entry.effective_mode, follow_symlinks=False)
        if can_chown:
            uid, gid = ids[entry.path]
            os.chown(dest, uid, gid, follow_symlinks=False)
        os.utime(dest, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def _make_parents(root: Path, parent: Path) -> None:
    # Parents were validated to lie under root; refuse to pass through a symlink regardless.
    current = root
    for part in parent.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise FixtureError(f"fixture path passes through symlink {current.relative_to(root)}")
        current.mkdir(exist_ok=True)
