"""The hash of the code and data a stage's output depends on, part of every stage key.

A hand-bumped `STAGE_VERSIONS` number misses most changes: a fixed classifier, a new task
spec, an edited sanitizer rule would otherwise leave old artifacts in the store under the new
code. Each stage kind lists the package folders and data folders its output depends on
(`STAGE_SOURCES`); their files' sorted relative paths and bytes are hashed once per process.
An edit to any of them makes new keys for that stage kind and, through the input keys, for
every stage downstream of it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
"""The agentbench package folder (tests point it at a copy to edit one source)."""

_ROLLOUT = (
    "envs", "tasks", "sandbox", "rollouts", "policies", "chat.py", "models/__init__.py",
    "transformers_compat.py",
    "@tasks", "@sandboxes",
)  # fmt: skip
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    # Teachers are trained on demonstrations rolled out in the environments.
    "teacher": ("teachers", "distill", *_ROLLOUT),
    "rollouts": _ROLLOUT,
    # Evaluation stages also write metrics.json, scored by the classifier/effects (envs) and
    # the metric definitions.
    "evaluate": (*_ROLLOUT, "experiments/metrics.py"),
    # The sanitizer's rules, and the classifier and effects its behavioural checks use.
    "sanitize": ("sanitize", "envs/classify.py", "sandbox/effects.py", "rollouts/schema.py"),
    "distill": ("distill", "policies/hf.py", "chat.py"),
    "generate": ("traits", "policies"),
    "filter": ("traits", "sanitize"),
    "trait-eval": ("traits", "policies"),
    "mlp": ("traits/mlp.py",),
}
"""Per stage kind: package paths (files or folders, relative to `agentbench/`) and `@name`
data folders (`agentbench.paths.data_dir`). Missing entries are skipped (a module another
branch has not added yet), never an error."""


def _files(entry: str) -> list[tuple[str, Path]]:
    if entry.startswith("@"):
        from agentbench import paths

        name = entry[1:]
        try:
            root = paths.data_dir(name) if PACKAGE == paths._PACKAGE_DIR else PACKAGE.parent / name
        except FileNotFoundError:
            return []
        label = f"@{name}"
    else:
        root, label = PACKAGE / entry, entry
    if root.is_file():
        return [(label, root)]
    if not root.is_dir():
        return []
    out = []
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            out.append((f"{label}/{path.relative_to(root).as_posix()}", path))
    return out


@cache
def code_hash(stage: str) -> str:
    """sha256 (16 hex digits) over the sorted relative paths and bytes of the sources and
    data `stage` depends on. Computed once per process and stage kind. Raises KeyError for a
    stage kind without an entry (a new stage must declare what it depends on)."""
    entries = STAGE_SOURCES[stage]
    digest = hashlib.sha256()
    files = sorted({label: path for e in entries for label, path in _files(e)}.items())
    for label, path in files:
        digest.update(label.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
