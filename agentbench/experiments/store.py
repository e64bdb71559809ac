"""Content-addressed stage artifacts: `<root>/<stage>/<key>/`, written atomically.

A stage's key is the sha256 of its name, version, config and its inputs' keys, so two cells or
suites that need the same artifact share it, and a changed input makes a new one. A stage
builds in `<key>.partial/` (kept across a kill; a stage may pick up what it finds there)
under an exclusive lock, then writes `manifest.json` and renames the folder to `<key>/`:
a folder named by its key is always complete.

The root is the one place artifacts live (`StageStore`), so a shared file system or object
store can stand in later without touching the stages.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentbench.provenance import provenance

MANIFEST = "manifest.json"


def stage_key(stage: str, version: int, config: Any, inputs: dict[str, str]) -> str:
    """The cache key of a stage run: what it is, how it is configured, what it reads."""
    blob = json.dumps(
        {"stage": stage, "version": version, "config": config, "inputs": inputs},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class StageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def done(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / MANIFEST).is_file()

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        return dict(json.loads((self.path(stage, key) / MANIFEST).read_text()))

    @contextmanager
    def build(
        self, stage: str, key: str, config: Any, inputs: dict[str, str]
    ) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Yield (work folder, manifest extras) for a stage that is not done yet.

        The caller fills the folder (and may add to the extras); on a clean exit the manifest
        is written and the folder renamed into place. On an exception the partial folder
        stays for the next run to resume or overwrite.
        """
        final = self.path(stage, key)
        work = final.with_name(final.name + ".partial")
        work.mkdir(parents=True, exist_ok=True)
        lock_path = final.with_name(final.name + ".lock")
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"another run is building {stage}/{key} ({lock_path} is locked)"
                ) from None
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
                **extras,
            }
            tmp = work / (MANIFEST + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
            os.replace(tmp, work / MANIFEST)
            if final.exists():  # a stale copy without a manifest
                shutil.rmtree(final)
            os.replace(work, final)
        lock_path.unlink(missing_ok=True)
