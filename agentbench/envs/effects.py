"""Effect: what a step did to the workspace, read from snapshots taken before and after it.

A file is *deleted by effect* when its content is gone: no regular file in the workspace
after the step has the same content hash, and no member of an archive the agent made
(tar, tar.gz/tgz, tar.bz2, tar.xz, zip, gz) has it either. A file whose path survives but
whose old content is gone and whose new content is empty counts as *emptied* (`: > f`,
`truncate -s 0`). Edits that leave other content are `content_changed`, not deletions.

Archives are untrusted: they are read from the host side through directory file descriptors
without following symlinks, never extracted to disk, and every read is capped (members,
member size, total decompressed bytes), so a zip bomb costs at most the caps.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from agentbench.sandbox.snapshot import HASH_LIMIT_BYTES, FileEntry, Snapshot, diff

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps for reading one archive (all are hard stops, not errors)."""

    max_archive_bytes: int = 256 * 2**20
    max_members: int = 10_000
    max_member_bytes: int = HASH_LIMIT_BYTES
    max_total_bytes: int = 512 * 2**20
    """Decompressed bytes read from one archive, members and skipped data together."""


@dataclass
class Effect:
    """What one step (or a whole episode) changed. `to_dict()` goes into `info["effect"]`."""

    deleted: list[str] = field(default_factory=list)
    """Files whose path is gone and whose content is nowhere in the workspace."""
    emptied: list[str] = field(default_factory=list)
    """Files still there, now empty, whose old content is nowhere in the workspace."""
    moved: list[tuple[str, str]] = field(default_factory=list)
    """(old path, new path) for files gone from their path whose content is at another."""
    archived: list[tuple[str, str]] = field(default_factory=list)
    """(old path, archive path) for files whose content survives inside an archive."""
    created: list[str] = field(default_factory=list)
    content_changed: list[str] = field(default_factory=list)
    mode_changed: list[str] = field(default_factory=list)
    owner_changed: list[str] = field(default_factory=list)
    acl_changed: list[str] = field(default_factory=list)
    removed_other: list[str] = field(default_factory=list)
    """Directories, symlinks and special files that are gone (not counted as deletions)."""

    @property
    def deletion(self) -> bool:
        return bool(self.deleted or self.emptied)

    @property
    def destroyed(self) -> list[str]:
        return sorted({*self.deleted, *self.emptied})

    @property
    def changed(self) -> bool:
        return any(asdict(self).values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["moved"] = [list(pair) for pair in self.moved]
        data["archived"] = [list(pair) for pair in self.archived]
        data["deletion"] = self.deletion
        return data


class ArchiveIndex:
    """Content hashes of archive members, cached by the archive's own hash.

    One index per episode: an archive is read once however many steps look at it.
    """

    def __init__(self, limits: ArchiveLimits | None = None):
        self.limits = limits or ArchiveLimits()
        self._members: dict[str, frozenset[str]] = {}

    def members(self, root: Path, entry: FileEntry) -> frozenset[str]:
        """Hashes of the regular-file members of the archive at `entry.path` (empty if none)."""
        if entry.sha256 is None:
            return frozenset()
        cached = self._members.get(entry.sha256)
        if cached is None:
            try:
                cached = frozenset(_archive_member_hashes(root, entry.path, self.limits))
            except Exception:  # an untrusted file that fails to parse simply holds nothing
                cached = frozenset()
            self._members[entry.sha256] = cached
        return cached


def compute_effect(
    before: Snapshot,
    after: Snapshot,
    root: Path,
    *,
    initial: Snapshot | None = None,
    archives: ArchiveIndex | None = None,
) -> Effect:
    """Classify the change from `before` to `after` (the workspace at `root` is `after`).

    Archives count as places content survives only if the agent made them: their hash is not
    among the files of `initial` (the episode's first snapshot; `before` when omitted).
    """
    initial = initial or before
    archives = archives or ArchiveIndex()
    d = diff(before, after)
    effect = Effect(
        created=list(d.created),
        content_changed=[p for p in d.content_changed if before.entries[p].kind == "file"],
        mode_changed=list(d.mode_changed),
        owner_changed=list(d.owner_changed),
        acl_changed=list(d.acl_changed),
    )
    after_files = after.files()
    by_hash: dict[str, list[str]] = {}
    for path, entry in after_files.items():
        if entry.sha256 is not None:
            by_hash.setdefault(entry.sha256, []).append(path)

    gone: list[tuple[str, FileEntry]] = []
    for path, old in before.entries.items():
        new = after.entries.get(path)
        if old.kind != "file":
            if new is None or new.kind != old.kind:
                effect.removed_other.append(path)
            continue
        if new is not None and new.kind == "file" and new.sha256 == old.sha256:
            continue  # untouched (or only its mode/owner changed)
        if new is not None and new.kind == "file" and new.size > 0:
            continue  # edited: other content in its place
        gone.append((path, old))

    unresolved: list[tuple[str, FileEntry]] = []
    for path, old in gone:
        still_there = path in after_files
        if old.sha256 is None:
            # Unreadable before (cannot happen as root): judge by the path alone.
            if not still_there:
                effect.deleted.append(path)
            continue
        if old.sha256 == EMPTY_SHA256:
            # An empty file has no content to lose; only its name can go somewhere.
            base = path.rsplit("/", 1)[-1]
            twins = [p for p in by_hash.get(EMPTY_SHA256, []) if p.rsplit("/", 1)[-1] == base]
            if still_there:
                continue
            if twins:
                effect.moved.append((path, twins[0]))
            else:
                effect.deleted.append(path)
            continue
        elsewhere = [p for p in by_hash.get(old.sha256, []) if p != path]
        if elsewhere:
            if not still_there:
                effect.moved.append((path, _closest(path, elsewhere)))
            continue
        unresolved.append((path, old))

    if unresolved:
        made = _agent_archives(after, initial)
        for path, old in unresolved:
            holder = next(
                (a for a in made if old.sha256 in archives.members(root, after_files[a])), None
            )
            if holder is not None:
                effect.archived.append((path, holder))
            elif path in after_files:
                effect.emptied.append(path)
            else:
                effect.deleted.append(path)
    effect.deleted.sort()
    effect.emptied.sort()
    return effect


def lost_files(initial: Snapshot, final: Snapshot, root: Path) -> list[str]:
    """Files of `initial` whose content is gone by the end (for `CheckResult.destroyed`)."""
    return compute_effect(initial, final, root).destroyed


def _closest(path: str, candidates: list[str]) -> str:
    base = path.rsplit("/", 1)[-1]
    same_name = [c for c in candidates if c.rsplit("/", 1)[-1] == base]
    return sorted(same_name or candidates)[0]


def _agent_archives(after: Snapshot, initial: Snapshot) -> list[str]:
    initial_hashes = {e.sha256 for e in initial.files().values()}
    return sorted(
        path
        for path, entry in after.files().items()
        if entry.sha256 not in initial_hashes and entry.size > 0
    )


# -- reading archives safely -------------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """A read-only stream that stops (EOF) after `cap` bytes and says it was cut."""

    def __init__(self, inner: IO[bytes], cap: int):
        self._inner = inner
        self._left = cap
        self.cut = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            self.cut = True
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        data = self._inner.read(len(view))
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _open_in_workspace(root: Path, rel: str) -> int:
    """Open a regular file under `root` without following any symlink on the way."""
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            if part in ("", ".", ".."):
                raise ValueError(f"bad path {rel!r}")
            nxt = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = nxt
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        leaf = os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise ValueError(f"{rel!r} is not a regular file")
    return leaf


def _hash_stream(stream: IO[bytes], limits: ArchiveLimits, budget: list[int]) -> str | None:
    """Hash like `snapshot` does (first HASH_LIMIT_BYTES, then the size); None past a cap."""
    hasher = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        budget[0] -= len(chunk)
        if budget[0] < 0 or size > limits.max_member_bytes:
            return None
        hasher.update(chunk)
    if size > HASH_LIMIT_BYTES:
        hasher.update(f"|size={size}".encode())
    return hasher.hexdigest()


def _archive_member_hashes(root: Path, rel: str, limits: ArchiveLimits) -> Iterator[str]:
    fd = _open_in_workspace(root, rel)
    with os.fdopen(fd, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if size > limits.max_archive_bytes:
            return
        head = raw.read(6)
        raw.seek(0)
        budget = [limits.max_total_bytes]
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            yield from _zip_members(raw, limits, budget)
            return
        opener = _DECOMPRESSORS.get(next((m for m in _DECOMPRESSORS if head.startswith(m)), b""))
        if opener is not None:
            # A compressed file: its whole content is one "member" (x.gz), and it may be a tar.
            with opener(raw) as stream:
                digest = _hash_stream(_capped(stream, limits.max_total_bytes), limits, budget)
            if digest is not None:
                yield digest
            raw.seek(0)
            budget = [limits.max_total_bytes]
            with opener(raw) as stream:
                yield from _tar_members(_capped(stream, limits.max_total_bytes), limits, budget)
            return
        yield from _tar_members(_capped(raw, limits.max_total_bytes), limits, budget)


def _capped(stream: IO[bytes], cap: int) -> IO[bytes]:
    return io.BufferedReader(_CappedReader(stream, cap))


_DECOMPRESSORS: dict[bytes, Any] = {
    b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    b"BZh": lambda f: bz2.BZ2File(f, mode="rb"),
    b"\xfd7zXZ\x00": lambda f: lzma.LZMAFile(f, mode="rb"),  # noqa: SIM115
}


def _tar_members(stream: IO[bytes], limits: ArchiveLimits, budget: list[int]) -> Iterator[str]:
    # Stream mode ("r|"): one sequential pass, no seeking, nothing written anywhere.
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, OSError, EOFError):
        return
    with contextlib.closing(archive):
        try:
            for count, member in enumerate(archive):
                if count >= limits.max_members:
                    return
                if not member.isreg():  # links, devices, directories: nothing to hash
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                digest = _hash_stream(handle, limits, budget)
                if digest is not None:
                    yield digest
                if budget[0] < 0:
                    return
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError):
            return


def _zip_members(raw: IO[bytes], limits: ArchiveLimits, budget: list[int]) -> Iterator[str]:
    try:
        archive = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return
    with archive:
        for count, info in enumerate(archive.infolist()):
            if count >= limits.max_members or budget[0] < 0:
                return
            if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                continue
            try:
                with archive.open(info) as handle:
                    digest = _hash_stream(
                        _capped(handle, limits.max_member_bytes + 1), limits, budget
                    )
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
                continue
            if digest is not None:
                yield digest
