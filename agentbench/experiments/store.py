"""Content-addressed stage artifacts: `<root>/<stage>/<key>/`, published atomically.

A stage's key is the sha256 of its name, version, config, its inputs' keys and the hash of the
code that makes it (`agentbench.experiments.code_hash`), so two cells or suites that need the
same artifact share it, and a changed input or a changed classifier makes a new one.

**A stage is done exactly when its manifest exists.** Outputs are written under a temporary
name and the manifest is written last:

- local (or NFS) root: the stage builds in `<key>.partial-<writer>/` (per writer, so racing
  writers never share a folder), writes `manifest.json` (fsynced) inside it and renames the
  folder to `<key>/`. The rename is atomic; a second writer's rename finds `<key>/` present and
  its copy is discarded, so one complete copy stays. A per-stage `flock` on `<key>.lock` (the
  lock file is never removed, so every locker locks the same inode) lets a second run on the
  same store wait for the first and reuse its stage instead of building it again, and nothing
  ever removes a folder that holds a manifest.
- any other fsspec URL (`s3://bucket/store`, `memory://x`, ...): the stage builds in a local
  scratch folder, its files are uploaded to `<key>/payload-<writer>/`, then `<key>/manifest.json`
  is written naming that payload. Readers download the payload the manifest names into a local
  mirror (`StageStore.path`). Two racing writers each upload a complete payload; the manifest
  names one of them, and the other writer removes its own, so a reader never sees a torn copy.

`results.json` and manifests are written atomically and durably (`atomic_write`: fsync of the
file and of its folder), so a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentbench.provenance import provenance

MANIFEST = "manifest.json"


def stage_key(
    stage: str, version: int, config: Any, inputs: dict[str, str], code: str | None = None
) -> str:
    """The cache key of a stage run: what it is, how it is configured, what it reads, and the
    hash of the code that produces it (None: left out, the keys of stores made before it)."""
    record: dict[str, Any] = {"stage": stage, "version": version, "config": config,
                              "inputs": inputs}  # fmt: skip
    if code is not None:
        record["code"] = code
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write(path: Path, text: str) -> Path:
    """Write `text` to `path` so that a crash leaves the old file or the whole new one: a
    temporary sibling, fsynced, renamed into place, and the folder fsynced (the rename itself
    is durable only once the directory entry is on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: Path) -> None:
    """fsync a directory (its entries: renames and new files) where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _writer_id() -> str:
    """Names one writer's temporary copy: host, process and a random part (threads too)."""
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class StageStore:
    """The stage store at a local path or any fsspec URL.

    `url`: a folder, `file://...`, or a URL of an fsspec file system (its package installed).
    `mirror`: where a remote store's stages are downloaded to be read (default: under the
    agentbench cache). Raises ValueError for a URL no installed fsspec backend understands.
    """

    def __init__(self, url: str | Path, *, mirror: str | Path | None = None):
        self.url = str(url)
        protocol, _, rest = self.url.partition("://")
        if not rest or protocol == "file":
            self.fs: Any = None
            self.root = Path(rest if protocol == "file" else self.url).resolve()
            return
        try:
            import fsspec  # type: ignore[import-untyped]

            self.fs, self.remote_root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"the stage store {self.url!r} cannot be opened: {exc}") from exc
        self.remote_root = self.remote_root.rstrip("/")
        if mirror is None:
            from agentbench.paths import cache_dir

            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            mirror = cache_dir() / "store-mirror" / digest
        self.root = Path(mirror).resolve()

    @property
    def remote(self) -> bool:
        """Whether the store is an fsspec URL (stages are mirrored locally to be read)."""
        return self.fs is not None

    def __getstate__(self) -> dict[str, Any]:  # sent to Ray workers: the URL, not a client
        return {"url": self.url, "mirror": str(self.root) if self.remote else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], mirror=state["mirror"])  # type: ignore[misc]

    def _remote(self, stage: str, key: str, *parts: str) -> str:
        return "/".join((self.remote_root, stage, key, *parts))

    def path(self, stage: str, key: str) -> Path:
        """The stage's local folder (a remote stage is downloaded on first use if done)."""
        local = self.root / stage / key
        if self.remote and not (local / MANIFEST).is_file() and self.done(stage, key):
            self._download(stage, key)
        return local

    def done(self, stage: str, key: str) -> bool:
        if not self.remote:
            return (self.root / stage / key / MANIFEST).is_file()
        return bool(self.fs.exists(self._remote(stage, key, MANIFEST)))

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        if not self.remote:
            return dict(json.loads((self.root / stage / key / MANIFEST).read_text()))
        return dict(json.loads(self.fs.cat_file(self._remote(stage, key, MANIFEST))))

    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the stage's lock (local stores; waits for another holder). A remote store has
        no shared lock: its publish protocol alone keeps racing writers apart."""
        if self.remote:
            yield
            return
        folder = self.root / stage
        folder.mkdir(parents=True, exist_ok=True)
        # Never unlinked: a removed lock file would let two runs lock two different inodes.
        with open(folder / f"{key}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def clean_partials(self, stage: str, key: str) -> int:
        """Remove the stage's leftover work folders (of killed writers). Call it holding the
        stage's lock: a live writer of a local store holds it while it builds."""
        removed = 0
        for leftover in (self.root / stage).glob(f"{key}.partial*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
        return removed

    def remove_scratch(self, stage: str, name: str) -> None:
        """Remove `<stage>/<name>`, temporary data of a published stage (its shard parts),
        here and in a remote store. Never call it on a stage's own folder."""
        if name in ("", ".", "..") or "/" in name:
            raise ValueError(f"not a scratch folder name: {name!r}")
        shutil.rmtree(self.root / stage / name, ignore_errors=True)
        if self.remote:
            target = "/".join((self.remote_root, stage, name))
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)

    def publish(
        self,
        stage: str,
        key: str,
        config: Any,
        inputs: dict[str, str],
        body: Callable[[Path, dict[str, Any]], None],
        log: Callable[[str], None],
        *,
        label: str | None = None,
        verb: str = "running",
    ) -> bool:
        """Build and publish a stage with `body` (which fills the work folder and may add to
        the manifest extras) under the stage's lock, unless another writer published it while
        this one waited; returns whether `body` ran. Partial folders of dead writers are
        removed first (local stores). `label` names the stage in the log lines."""
        label = label or f"{stage} {key}"
        with self.lock(stage, key):
            if self.done(stage, key):
                log(f"{label}: cached (published by another run meanwhile)")
                return False
            if not self.remote:
                self.clean_partials(stage, key)
            log(f"{label}: {verb}")
            with self.build(stage, key, config, inputs) as (work, extras):
                body(work, extras)
        return True

    @contextmanager
    def build(
        self, stage: str, key: str, config: Any, inputs: dict[str, str]
    ) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Yield (work folder, manifest extras) for a stage that is not done yet.

        The caller fills the folder (and may add to the extras); on a clean exit the manifest
        is written and the stage published (see the module docstring). On an exception the
        work folder stays for inspection and nothing is published; the next build of the
        stage under its lock removes it (`clean_partials`).
        """
        writer = _writer_id()
        work = self.root / stage / f"{key}.partial-{writer}"
        work.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        extras: dict[str, Any] = {}
        yield work, extras
        manifest = {
            "stage": stage,
            "key": key,
            "config": config,
            "inputs": inputs,
            "wall_s": round(time.monotonic() - began, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "provenance": provenance(),
            "writer": writer,
            **extras,
        }
        if self.remote:
            self._publish_remote(stage, key, work, manifest, writer)
        else:
            self._publish_local(stage, key, work, manifest)

    def _publish_local(self, stage: str, key: str, work: Path, manifest: dict[str, Any]) -> None:
        for file in (p for p in work.rglob("*") if p.is_file()):
            with open(file, "rb+") as handle:  # outputs durable before the manifest names them
                os.fsync(handle.fileno())
        atomic_write(work / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        final = self.root / stage / key
        try:
            os.rename(work, final)  # atomic; fails when `final` exists and is not empty
        except OSError:
            if not (final / MANIFEST).is_file():
                # An empty or manifest-less `final` (a store from before per-writer folders):
                # never a published stage, so it can go; then publish ours.
                shutil.rmtree(final, ignore_errors=True)
                os.rename(work, final)
            else:  # another writer published first: keep theirs, drop ours
                shutil.rmtree(work, ignore_errors=True)
        fsync_dir(final.parent)

    def _publish_remote(
        self, stage: str, key: str, work: Path, manifest: dict[str, Any], writer: str
    ) -> None:
        payload = f"payload-{writer}"
        target = self._remote(stage, key, payload)
        files = sorted(p for p in work.rglob("*") if p.is_file())
        for file in files:
            self.fs.pipe_file(f"{target}/{file.relative_to(work).as_posix()}", file.read_bytes())
        manifest = {**manifest, "payload": payload,
                    "files": [f.relative_to(work).as_posix() for f in files]}  # fmt: skip
        if self.done(stage, key):  # published meanwhile: ours is not needed
            self.fs.rm(target, recursive=True)
        else:
            blob = (json.dumps(manifest, indent=2, default=str) + "\n").encode()
            self.fs.pipe_file(self._remote(stage, key, MANIFEST), blob)
            # Without a conditional put two writers can both get here; the manifest that
            # stayed names one complete payload, and the writer it does not name removes its.
            if self.manifest(stage, key).get("payload") != payload:
                self.fs.rm(target, recursive=True)
        local = self.root / stage / key
        shutil.rmtree(work, ignore_errors=True)
        if not (local / MANIFEST).is_file():
            self._download(stage, key)

    def _download(self, stage: str, key: str) -> None:
        """Copy a published remote stage into the local mirror, manifest last."""
        manifest = self.manifest(stage, key)
        local = self.root / stage / key
        tmp = local.with_name(f"{key}.download-{_writer_id()}")
        source = self._remote(stage, key, manifest["payload"])
        for name in manifest.get("files", []):
            out = tmp / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(self.fs.cat_file(f"{source}/{name}"))
        tmp.mkdir(parents=True, exist_ok=True)
        atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        try:
            os.rename(tmp, local)
        except OSError:  # another reader mirrored it first
            shutil.rmtree(tmp, ignore_errors=True)
