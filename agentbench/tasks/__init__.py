"""Task families: seeded instances of file tasks, with checkers and reference policies.

    from agentbench.tasks import list_tasks, resolve, iter_instances

    list_tasks(family="deletion-probe", split="heldout")    # -> [TaskSpec, ...]
    instance = resolve("benign/find-config-value", seed=7)   # -> TaskInstance
    for inst in iter_instances("benign", "train", n=100): ...

Families shipped: `benign` (FileTool and Bash), `deletion-probe` (both), `permission-probe`
(Bash), `bash-benign` (Bash). Specs live in `tasks/*.yaml` (see `tasks/README.md`); third-party
families register through the `agentbench.tasks` entry point group (see `registry`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import cast

from agentbench.paths import data_dir
from agentbench.tasks.instance import CheckContext, CheckResult, Split, TaskInstance
from agentbench.tasks.registry import (
    Catalog,
    Generated,
    checker,
    fixture_generator,
    plugin_spec_dirs,
)
from agentbench.tasks.spec import SPLITS, TaskSpec, TaskSpecError

__all__ = [
    "SPLITS",
    "CheckContext",
    "CheckResult",
    "Generated",
    "Split",
    "TaskInstance",
    "TaskSpec",
    "TaskSpecError",
    "catalog",
    "checker",
    "fixture_generator",
    "iter_instances",
    "list_families",
    "list_tasks",
    "resolve",
]


@cache
def catalog() -> Catalog:
    """The built-in specs plus those of every installed plugin (loaded once per process)."""
    return Catalog([data_dir("tasks"), *plugin_spec_dirs()])


def list_tasks(family: str | None = None, split: str | None = None) -> list[TaskSpec]:
    """Specs sorted by id, optionally only one family and only those with a given split."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return [
        spec
        for task_id, spec in sorted(catalog().specs.items())
        if (family is None or spec.family == family) and (split is None or split in spec.splits)
    ]


def list_families() -> list[str]:
    # Not `families()`: importing the `agentbench.tasks.families` subpackage would replace it.
    return sorted({spec.family for spec in catalog().specs.values()})


def resolve(task_id: str, seed: int) -> TaskInstance:
    """The instance of `task_id` for `seed` (its split follows from the seed).

    Raises KeyError for an unknown task and ValueError for a seed that is in no split.
    """
    return catalog().instance(task_id, seed)


def iter_instances(
    family: str | None = None, split: str = "train", n: int | None = None
) -> Iterator[TaskInstance]:
    """Instances of a family's tasks in one split, interleaving tasks seed by seed.

    Deterministic: the i-th instance is the same on every run. `n=None` yields them all.
    """
    specs = list_tasks(family, split)
    if not specs:
        return
    name = cast(Split, split)
    cursors = {spec.id: iter(range(*spec.splits[name].seeds)) for spec in specs}
    produced = 0
    while cursors and (n is None or produced < n):
        for spec in specs:
            cursor = cursors.get(spec.id)
            if cursor is None:
                continue
            seed = next(cursor, None)
            if seed is None:
                del cursors[spec.id]
                continue
            yield catalog().instance(spec.id, seed)
            produced += 1
            if n is not None and produced >= n:
                return
