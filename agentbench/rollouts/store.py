"""An append-only JSONL file of trajectories that survives a kill at any moment.

    with TrajectoryStore(path, resume=True) as store:
        store.done                        # episode ids already in the file
        store.append(trajectory)          # one line, flushed and fsynced before it returns

Each record is written with a single `write` of the whole line, then flushed and fsynced, so a
crash leaves at most one torn (newline-less) last line; opening for resume truncates the file
to its last newline. An exclusive `flock` keeps a second writer out of the same file.

Errors (`StoreError`): the file is locked by another writer; a complete line in the middle of
the file is not a valid trajectory (the file is not ours, or was edited: we never guess);
`resume=False` on a file that already holds records (pass `overwrite=True` to start over).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from pydantic import ValidationError

from agentbench.errors import DataError
from agentbench.rollouts.schema import Trajectory


class StoreError(DataError, RuntimeError):
    """Raised when the trajectory file cannot be used as asked (see the module docstring)."""


def repair_tail(path: Path) -> int:
    """Truncate `path` after its last newline; return the number of bytes dropped."""
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # Read backwards in blocks until a newline: a torn line can be long (big observations).
        pos, block = size, 65_536
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return size - keep


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Every complete record of a file (a torn last line is skipped, not repaired)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return
            if not raw.strip():
                continue
            try:
                yield Trajectory.from_line(raw)
            except ValidationError as exc:
                raise StoreError(f"{path}:{number}: not a trajectory record: {exc}") from None


def read_trajectories(path: str | Path) -> list[Trajectory]:
    return list(iter_trajectories(path))


class TrajectoryStore:
    """The writer for one run's file. Not thread-safe: the engine writes from one thread."""

    def __init__(self, path: str | Path, *, resume: bool = True, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped_bytes = 0
        self.done: set[str] = set()
        self.infra_failed: set[str] = set()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path} is being written by another process") from None
        self._fh: BinaryIO | None = os.fdopen(fd, "ab", buffering=0)
        try:
            self._open(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, resume: bool, overwrite: bool) -> None:
        assert self._fh is not None
        if overwrite:
            os.ftruncate(self._fh.fileno(), 0)
            os.fsync(self._fh.fileno())
            return
        if os.fstat(self._fh.fileno()).st_size == 0:
            return
        if not resume:
            raise StoreError(
                f"{self.path} already holds trajectories; resume it or choose to overwrite it"
            )
        self.dropped_bytes = repair_tail(self.path)
        for record in iter_trajectories(self.path):
            if record.episode_id in self.done:
                raise StoreError(f"{self.path}: episode {record.episode_id!r} is there twice")
            self.done.add(record.episode_id)
            if record.infra_failure:
                self.infra_failed.add(record.episode_id)

    def append(self, trajectory: Trajectory) -> None:
        """Write one record durably. Raises StoreError for an episode already in the file."""
        if self._fh is None:
            raise StoreError("the store is closed")
        if trajectory.episode_id in self.done:
            raise StoreError(f"episode {trajectory.episode_id!r} is already in {self.path}")
        data = trajectory.to_line().encode()
        view = memoryview(data)
        while view:  # O_APPEND + unbuffered: each write lands at the end
            written = self._fh.write(view)
            if written is None:  # pragma: no cover - only for non-blocking files
                continue
            view = view[written:]
        os.fsync(self._fh.fileno())
        self.done.add(trajectory.episode_id)
        if trajectory.infra_failure:
            self.infra_failed.add(trajectory.episode_id)

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()  # closing the descriptor releases the lock

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
