"""Workspace snapshots: what the file system holds, read from the host without trusting it.

The workspace is written by an untrusted agent, so the walk uses directory file descriptors
(opened with O_NOFOLLOW from their parent's), never follows a symlink, and hashes only regular
files, opened with O_NOFOLLOW and O_NONBLOCK (a FIFO must not hang the harness) and checked to
be the inode that was listed. The walk is iterative and goes `MAX_WALK_DEPTH` directories deep:
an agent that nests directories thousands deep must not crash the harness (that would turn its
episode into an infrastructure failure); what lies deeper is not listed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from agentbench.sandbox.accounts import Accounts

Kind = Literal["file", "dir", "symlink", "other"]
HASH_LIMIT_BYTES = 64 * 2**20
"""Files larger than this are hashed over their first 64 MiB plus their size."""
_ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")
MAX_WALK_DEPTH = 256
"""Directory levels walked (each level open holds one file descriptor)."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    kind: Kind
    size: int
    mode: int
    """Permission bits, including setuid/setgid/sticky (st_mode & 0o7777)."""
    uid: int
    gid: int
    owner: str
    group: str
    sha256: str | None = None
    """Content hash for regular files."""
    target: str | None = None
    """Link text for symlinks."""
    acl: str | None = None
    """Extended ACL entries (hex of the access and default ACL xattrs), None without ACLs."""


@dataclass(frozen=True)
class Snapshot:
    """Every entry under the workspace root, keyed by relative POSIX path."""

    entries: dict[str, FileEntry] = field(default_factory=dict)

    def files(self) -> dict[str, FileEntry]:
        return {p: e for p, e in self.entries.items() if e.kind == "file"}

    def digest(self) -> str:
        """A state hash: equal workspaces (content, modes, owners, ACLs) hash equal."""
        canonical = json.dumps(
            [asdict(self.entries[p]) for p in sorted(self.entries)], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {p: asdict(e) for p, e in sorted(self.entries.items())}


@dataclass(frozen=True)
class SnapshotDiff:
    """What changed between two snapshots, path by path."""

    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    content_changed: tuple[str, ...] = ()
    mode_changed: tuple[str, ...] = ()
    owner_changed: tuple[str, ...] = ()
    acl_changed: tuple[str, ...] = ()
    kind_changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(asdict(self).values())


def diff(before: Snapshot, after: Snapshot) -> SnapshotDiff:
    old, new = before.entries, after.entries
    common = sorted(old.keys() & new.keys())
    return SnapshotDiff(
        created=tuple(sorted(new.keys() - old.keys())),
        deleted=tuple(sorted(old.keys() - new.keys())),
        content_changed=tuple(
            p
            for p in common
            if old[p].kind == new[p].kind
            and (old[p].sha256 != new[p].sha256 or old[p].target != new[p].target)
        ),
        mode_changed=tuple(p for p in common if old[p].mode != new[p].mode),
        owner_changed=tuple(
            p for p in common if (old[p].uid, old[p].gid) != (new[p].uid, new[p].gid)
        ),
        acl_changed=tuple(p for p in common if old[p].acl != new[p].acl),
        kind_changed=tuple(p for p in common if old[p].kind != new[p].kind),
    )


def _walk(root: Path) -> Iterator[tuple[str, str, int]]:
    """(relative path, name, directory fd) of every entry under `root` (down to
    `MAX_WALK_DEPTH` levels), never following a symlink; the fd is valid until the next item
    is drawn. Entries that vanish or cannot be opened mid-walk are skipped."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(os.fspath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []
    try:
        stack.append((top, "", iter(_listing(top))))
    except OSError:
        os.close(top)
        raise
    try:
        while stack:
            fd, rel_dir, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                os.close(fd)
                continue
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            yield rel, name, fd
            if len(stack) >= MAX_WALK_DEPTH:
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                child = os.open(name, flags, dir_fd=fd)
            except OSError:  # gone, or swapped for a symlink (ELOOP) since it was listed
                continue
            try:
                listing = _listing(child)
            except OSError:
                os.close(child)
                continue
            stack.append((child, rel, iter(listing)))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _listing(dirfd: int) -> list[os.DirEntry[str]]:
    with os.scandir(dirfd) as it:
        return sorted(it, key=lambda e: e.name)


def take_snapshot(root: Path, accounts: Accounts) -> Snapshot:
    """Walk `root` (not following symlinks) and describe every entry under it."""
    entries: dict[str, FileEntry] = {}
    for rel, name, dirfd in _walk(root):
        try:
            entries[rel] = _describe(name, rel, dirfd, accounts)
        except FileNotFoundError:
            continue  # vanished mid-walk (a process still running); the next snapshot sees it
    return Snapshot(entries=dict(sorted(entries.items())))


def pin_mtimes(root: Path, newer_than: float, to: float) -> int:
    """Set the modification (and access) time of every entry under `root`, and of `root`,
    whose mtime is after `newer_than` to `to`; the number of entries changed.

    Environments keep a logical clock with this: what an agent writes gets the clock's time
    instead of the wall clock's, so `ls -l` and `file_info` print the same on every run. Walks
    with directory file descriptors and never follows a symlink (a link's own times are set),
    like `take_snapshot`; an entry that vanishes mid-walk, or that the harness may not change
    (running without root), is skipped.
    """
    changed = 0
    for _, name, dirfd in _walk(root):
        try:
            if os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mtime > newer_than:
                os.utime(name, (to, to), dir_fd=dirfd, follow_symlinks=False)
                changed += 1
        except (FileNotFoundError, PermissionError):
            continue  # vanished mid-walk, or not ours to change (a harness without root)
    with contextlib.suppress(PermissionError):
        if os.stat(root, follow_symlinks=False).st_mtime > newer_than:
            os.utime(root, (to, to), follow_symlinks=False)
            changed += 1
    return changed


def _describe(name: str, rel: str, dirfd: int, accounts: Accounts) -> FileEntry:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    kind: Kind
    digest = target = acl = None
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
        target = os.readlink(name, dir_fd=dirfd)
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
        acl = _acl_of_dir(name, dirfd)
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
        digest, acl = _hash_and_acl(name, dirfd, st)
    else:
        kind = "other"
    return FileEntry(
        path=rel,
        kind=kind,
        size=st.st_size if kind == "file" else 0,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        owner=accounts.user_name(st.st_uid),
        group=accounts.group_name(st.st_gid),
        sha256=digest,
        target=target,
        acl=acl,
    )


def _hash_and_acl(name: str, dirfd: int, listed: os.stat_result) -> tuple[str | None, str | None]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except PermissionError:
        return None, None  # only when not running as root
    try:
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (listed.st_ino, listed.st_dev) or not stat.S_ISREG(st.st_mode):
            return None, None  # replaced between stat and open
        hasher = hashlib.sha256()
        remaining = HASH_LIMIT_BYTES
        while remaining > 0:
            chunk = os.read(fd, min(1 << 20, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
        if st.st_size > HASH_LIMIT_BYTES:
            hasher.update(f"|size={st.st_size}".encode())
        return hasher.hexdigest(), _acl_of_fd(fd)
    finally:
        os.close(fd)


def _acl_of_dir(name: str, dirfd: int) -> str | None:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except OSError:
        return None
    try:
        return _acl_of_fd(fd)
    finally:
        os.close(fd)


def _acl_of_fd(fd: int) -> str | None:
    parts = []
    for attr in _ACL_XATTRS:
        try:
            parts.append(f"{attr.rsplit('_', 1)[1]}={os.getxattr(fd, attr).hex()}")
        except OSError:
            continue  # no such ACL, or a file system without ACL support
    return ";".join(parts) or None
