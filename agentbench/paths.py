"""Where agentbench finds its data folders and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return a data folder shipped with agentbench (`sandboxes`, `tasks`).

    Installed from a wheel, the folders live under `agentbench/_data/`; in a source checkout
    (editable install) they are the repository's top-level folders.
    """
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"agentbench data folder {name!r} not found next to {_PACKAGE_DIR}")


def cache_dir(*parts: str) -> Path:
    """A folder under the agentbench cache ($AGENTBENCH_CACHE, else ~/.cache/agentbench)."""
    root = Path(os.environ.get("AGENTBENCH_CACHE") or Path.home() / ".cache" / "agentbench")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
