"""Report files written atomically: a reader (a browser, a rebuilt report) sees the old file or
the whole new one, never half of it."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary sibling renamed into place. Raises `OSError`
    when the folder is not writable."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
