"""Sharded stages: a rollout or evaluation stage's episodes split into parts, each part run
on its own worker with its own sandboxes, the parts merged in episode-index order.

A stage that can be sharded carries a `ShardedBody` (`StageTask.sharded`). Its episodes are a
list fixed by the stage's config (an episode's index is its position in that list); part `i`
of `n` runs the contiguous slice `part_bounds(total, i, n)` into a folder of its own, and the
merge joins the parts' outputs in part order, which is episode-index order. The stage's plain
body (`WholeBody`, what runs when the stage is not sharded) is part 0 of 1 followed by the
same merge, so an unsharded stage and a sharded one go through the same code and write the
same bytes (timings aside: they are measurements).

Nothing in an episode depends on its shard: the fixture comes from the task instance's seed,
each sampled turn from `turn_seed(seed, episode_id, step)` (`agentbench.policies.base`), and
the episode id from the instance, environment, policy and repeat. What a shard does change is
which episodes share a model batch; the transformers backend's per-row results are equal
across batch compositions up to the floating-point effects of padding (stated in
`agentbench.policies.hf`), which the tests check on the micro models.

Store layout and lifecycle (`execute_part`, `execute_merge`):

- part `i` of `n` is published like a stage, at `<stage>/<key>.shards/<i>-of-<n>/`: built
  under a temporary name, its manifest written last, under its own lock. A part already
  published is reused, so a killed run resumes part by part, and a part whose worker dies is
  retried alone.
- the merge builds the stage itself from the published parts and publishes it (manifest
  last). **The stage is done only when it is merged**; then its parts are removed.

Errors: `part_bounds` and `shard_count` raise ValueError for a bad count; a merge that finds
a part missing, or a part holding other episodes than its own, raises RuntimeError.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agentbench.experiments.executor import StageTask
    from agentbench.experiments.store import StageStore

Log = Callable[[str], None]
Shards = int | Literal["auto"]
"""How many parts a stage runs as: a number, or "auto" (as many as the cluster can run at
once, `shard_count`)."""
SHARDABLE = frozenset({"rollouts", "evaluate"})
"""The stage kinds that can be sharded (their work is independent episodes)."""


class ShardedBody(Protocol):
    """A stage's work as parts (see the module docstring)."""

    def max_parts(self) -> int:
        """The most parts worth making (its number of episodes, or an upper bound of it)."""
        ...

    def run_part(self, index: int, count: int, out: Path) -> dict[str, Any]:
        """Run part `index` of `count` into the empty folder `out`; returns what the part's
        manifest records."""
        ...

    def merge(self, parts: Sequence[Path], work: Path, extras: dict[str, Any]) -> None:
        """Write the stage's outputs into `work` from the parts' folders, in part order."""
        ...


@dataclass(frozen=True)
class WholeBody:
    """The plain body of a shardable stage: one part of one, then the merge (so that an
    unsharded run writes what a sharded one does)."""

    sharded: ShardedBody

    def __call__(self, work: Path, extras: dict[str, Any]) -> None:
        part = work / ".part-0-of-1"
        part.mkdir()
        self.sharded.run_part(0, 1, part)
        self.sharded.merge([part], work, extras)
        shutil.rmtree(part)


def part_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """The episode indices `[first, end)` of part `index` of `count` over `total` episodes:
    contiguous, in order, sizes differing by at most one. Raises ValueError for a count
    below 1 or an index outside it."""
    if count < 1:
        raise ValueError(f"a stage is split into at least 1 part, not {count}")
    if not 0 <= index < count:
        raise ValueError(f"part {index} does not exist in {count} part(s)")
    return index * total // count, (index + 1) * total // count


def shard_count(
    setting: Shards | None, max_parts: int, capacity: Mapping[str, float] | None = None,
    request: Mapping[str, float] | None = None,
) -> int:  # fmt: skip
    """How many parts a stage runs as.

    `setting`: a number (capped at `max_parts`), "auto" (how many of the stage's `request`
    (`{"CPU": 1, "GPU": 0.5}`) the cluster's `capacity` holds at once, capped at
    `max_parts`; 1 without a cluster), or None (1: not sharded). Raises ValueError for a
    number below 1 or another string.
    """
    if setting is None:
        return 1
    if setting == "auto":
        if not capacity:
            return 1
        fits = [
            capacity.get(name, 0.0) / want for name, want in (request or {}).items() if want > 0
        ]
        at_once = math.floor(min(fits)) if fits else int(capacity.get("CPU", 1))
        return max(1, min(at_once, max_parts))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"shards must be a number of parts (1 or more) or 'auto', not {setting!r}")
    return max(1, min(setting, max_parts))


def part_location(stage: str, key: str, index: int, count: int) -> tuple[str, str]:
    """Where part `index` of `count` of a stage is published in the store: (stage, key) of
    `<stage>/<key>.shards/<index>-of-<count>`."""
    return f"{stage}/{key}.shards", f"{index}-of-{count}"


def execute_part(store: StageStore, task: StageTask, index: int, count: int, log: Log) -> bool:
    """Publish part `index` of `count` of a sharded stage unless it (or the stage) is done;
    returns whether it ran. A second writer of the same part waits for the first (the part's
    lock) and reuses its part."""
    assert task.sharded is not None, f"{task.id} cannot be sharded"
    label = f"{task.stage} {task.key} [part {index + 1}/{count}]"
    where = part_location(task.stage, task.key, index, count)
    if store.done(task.stage, task.key) or store.done(*where):
        log(f"{label}: cached")
        return False
    for dep in task.deps:
        store.path(*dep.split("/", 1))
    sharded = task.sharded

    def run_part(work: Path, extras: dict[str, Any]) -> None:
        extras.update(sharded.run_part(index, count, work))

    try:
        config = {"part": index, "of": count}
        if not store.publish(*where, config, {"stage": task.id}, run_part, log, label=label):
            return False
    except Exception:
        # Another run merged the stage meanwhile and removed its parts, ours included:
        # the stage is complete, so this part is not needed.
        if store.done(task.stage, task.key):
            return False
        raise
    return True


def execute_merge(store: StageStore, task: StageTask, count: int, log: Log) -> bool:
    """Publish a sharded stage from its `count` published parts (manifest last), then
    remove the parts; returns whether it ran. Raises RuntimeError when a part is missing."""
    assert task.sharded is not None, f"{task.id} cannot be sharded"
    if store.done(task.stage, task.key):
        log(f"{task.stage} {task.key}: cached")
        return False
    where = [part_location(task.stage, task.key, i, count) for i in range(count)]
    missing = [i + 1 for i, w in enumerate(where) if not store.done(*w)]
    if missing:
        raise RuntimeError(
            f"{task.id}: part(s) {missing} of {count} are not published; run them first"
        )
    parts = [store.path(*w) for w in where]
    sharded = task.sharded

    def merge(work: Path, extras: dict[str, Any]) -> None:
        sharded.merge(parts, work, extras)
        extras["shards"] = count

    verb = f"merging {count} part(s)"
    if not store.publish(task.stage, task.key, task.config, task.inputs, merge, log, verb=verb):
        return False
    store.path(task.stage, task.key)
    store.remove_scratch(task.stage, f"{task.key}.shards")
    return True


def execute_sharded(store: StageStore, task: StageTask, count: int, log: Log) -> bool:
    """A sharded stage in this process: its parts one after another, then the merge (the
    local executor's way; `count` 1 runs the plain body). Returns whether the stage ran."""
    from agentbench.experiments.executor import execute_task

    if count <= 1 or task.sharded is None:
        return execute_task(store, task, log)
    if store.done(task.stage, task.key):
        log(f"{task.stage} {task.key}: cached")
        return False
    for index in range(count):
        execute_part(store, task, index, count, log)
    return execute_merge(store, task, count, log)


__all__ = [
    "SHARDABLE",
    "ShardedBody",
    "Shards",
    "WholeBody",
    "execute_merge",
    "execute_part",
    "execute_sharded",
    "part_bounds",
    "part_location",
    "shard_count",
]
