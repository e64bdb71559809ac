"""Sharded rollout and evaluation stages without Ray: the split rule, the part/merge
lifecycle in the store, the suite's `shards:` setting, and the local executor writing the
same stage bytes for 1, 2 and 3 parts (real sandboxes, the micro test models).

The Ray side (parts on workers, a killed part retried alone) is in test_executor_ray.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentbench.experiments.executor import LocalExecutor, StageGraph, StageTask
from agentbench.experiments.shard import (
    WholeBody,
    execute_merge,
    execute_part,
    part_bounds,
    part_location,
    shard_count,
)
from agentbench.experiments.store import StageStore
from agentbench.experiments.suite import StageResources
from tests.test_experiments_run import micro_models  # noqa: F401 (a fixture)


def test_parts_are_contiguous_ordered_and_cover_every_episode() -> None:
    for total in range(0, 12):
        for count in range(1, 6):
            bounds = [part_bounds(total, i, count) for i in range(count)]
            assert [i for a, b in bounds for i in range(a, b)] == list(range(total))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="at least 1 part"):
        part_bounds(4, 0, 0)
    with pytest.raises(ValueError, match="part 2 does not exist in 2"):
        part_bounds(4, 2, 2)


def test_the_shard_count_follows_the_setting_the_episodes_and_the_cluster() -> None:
    assert shard_count(None, 10) == shard_count(1, 10) == 1
    assert shard_count(3, 10) == 3 and shard_count(30, 4) == 4  # never more than episodes
    assert shard_count("auto", 10) == 1  # no cluster: one part
    cluster = {"CPU": 8.0, "GPU": 2.0}
    assert shard_count("auto", 10, cluster, {"CPU": 1.0, "GPU": 0.0}) == 8
    assert shard_count("auto", 10, cluster, {"CPU": 1.0, "GPU": 0.5}) == 4
    assert shard_count("auto", 3, cluster, {"CPU": 1.0, "GPU": 0.0}) == 3
    for bad in (0, -2, "many"):
        with pytest.raises(ValueError, match="shards must be a number of parts"):
            shard_count(bad, 10)  # type: ignore[arg-type]


def test_a_suite_sets_shards_for_episode_stages_only(tmp_path: Path) -> None:
    from agentbench.experiments.suite import ConfigError, load_suite

    assert StageResources(shards="auto").shards == "auto"
    for bad in (0, True, "four"):
        with pytest.raises(ValueError):
            StageResources(shards=bad)
    repo = Path(__file__).resolve().parents[1]
    smoke = (repo / "suites" / "smoke.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(smoke + "resources:\n  rollouts: {shards: 4}\n  evaluate: {shards: auto}\n")
    suite, _ = load_suite(good)
    assert suite.resources["rollouts"].shards == 4
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(smoke + "resources:\n  distill: {shards: 2}\n")
    with pytest.raises(ConfigError, match="only rollouts and evaluate stages can be sharded"):
        load_suite(bad_file)


@dataclass(frozen=True)
class _Numbers:
    """A shardable body over `total` episodes: episode i writes the line `i`; `fail` makes
    that part raise (once a marker file exists, it succeeds: a fixed bug)."""

    total: int
    fail: int | None = None
    marker: str = ""

    def max_parts(self) -> int:
        return self.total

    def run_part(self, index: int, count: int, out: Path) -> dict[str, Any]:
        if index == self.fail and not Path(self.marker).exists():
            raise OSError("the sandbox broke")
        first, end = part_bounds(self.total, index, count)
        (out / "out.txt").write_text("".join(f"{i}\n" for i in range(first, end)))
        return {"episodes": [first, end]}

    def merge(self, parts: Sequence[Path], work: Path, extras: dict[str, Any]) -> None:
        (work / "out.txt").write_text("".join((p / "out.txt").read_text() for p in parts))


def _numbers_task(body: _Numbers) -> StageTask:
    return StageTask("rollouts", "k", {}, {}, WholeBody(body), sharded=body)


def test_a_failed_part_fails_the_stage_and_the_rerun_reuses_the_parts_that_were_published(
    tmp_path: Path,
) -> None:
    store, marker = StageStore(tmp_path), tmp_path / "fixed"
    executor = LocalExecutor(resources={"rollouts": StageResources(shards=3)})
    graph = StageGraph()
    graph.add(_numbers_task(_Numbers(7, fail=1, marker=str(marker))))
    with pytest.raises(OSError, match="sandbox broke"):
        executor.run(graph, store, lambda _: None)
    assert not store.done("rollouts", "k")  # not done until merged
    first = store.path(*part_location("rollouts", "k", 0, 3)) / "manifest.json"
    stamp = first.stat().st_mtime_ns
    marker.touch()
    logs: list[str] = []
    assert executor.run(graph, store, logs.append) == ["rollouts/k"]
    assert "rollouts k [part 1/3]: cached" in logs  # reused, not run again
    assert (store.path("rollouts", "k") / "out.txt").read_text() == "".join(
        f"{i}\n" for i in range(7)
    )
    assert store.manifest("rollouts", "k")["shards"] == 3
    assert not (tmp_path / "rollouts" / "k.shards").exists()  # parts removed once merged
    assert not first.exists() and stamp


def test_the_merge_waits_for_every_part_and_a_part_of_a_done_stage_does_nothing(
    tmp_path: Path,
) -> None:
    store = StageStore(tmp_path)
    task = _numbers_task(_Numbers(5))
    assert execute_part(store, task, 0, 2, lambda _: None)
    with pytest.raises(RuntimeError, match=r"part\(s\) \[2\] of 2 are not published"):
        execute_merge(store, task, 2, lambda _: None)
    assert execute_part(store, task, 1, 2, lambda _: None)
    assert execute_merge(store, task, 2, lambda _: None)
    assert not execute_part(store, task, 0, 2, lambda _: None)  # the stage is done
    assert not execute_merge(store, task, 2, lambda _: None)
    # One part of one (the plain body) writes the same bytes as two parts merged.
    other = StageStore(tmp_path / "whole")
    assert LocalExecutor().run(_graph(task), other, lambda _: None) == ["rollouts/k"]
    assert (other.path("rollouts", "k") / "out.txt").read_bytes() == (
        store.path("rollouts", "k") / "out.txt"
    ).read_bytes()
    assert "shards" not in other.manifest("rollouts", "k")


def _graph(*tasks: StageTask) -> StageGraph:
    graph = StageGraph()
    for task in tasks:
        graph.add(task)
    return graph


def _canonical(path: Path) -> list[str]:
    """The trajectory file's records in file order, without timings (measurements)."""
    from agentbench.rollouts.schema import Trajectory

    lines = path.read_bytes().splitlines()
    return [json.dumps(Trajectory.from_line(line).comparable(), sort_keys=True) for line in lines]


def run_episode_stages(
    store: StageStore, base: Path, executor: Any, log: Any = lambda _: None
) -> dict[str, Any]:
    """A teacher-style rollouts stage (4 episodes) and an evaluation stage (3 probes) of the
    micro base model, through `executor`; returns what a sharded run must reproduce."""
    from agentbench.envs import FILETOOL_ID
    from agentbench.experiments.executor import collecting
    from agentbench.experiments.stages import (
        METRICS,
        TRAJECTORIES,
        PolicyRef,
        RolloutEpisodes,
        evaluate_stage,
        rollouts_stage,
    )
    from agentbench.experiments.suite import EvaluationConfig, RolloutConfig

    policy = PolicyRef(kind="hf", model=str(base), identity="micro-base")
    probes = EvaluationConfig(n=3, max_steps=3, max_new_tokens=24, parallel=4)
    graph = StageGraph()
    with collecting(graph):
        roll = rollouts_stage(store, policy, RolloutConfig(n=4, max_steps=3, max_new_tokens=24,
                              parallel=4), FILETOOL_ID, 0, log=log)  # fmt: skip
        ev = evaluate_stage(store, policy, probes, ("deletion-probe",), FILETOOL_ID, 0, log=log)
    episodes = RolloutEpisodes(policy, probes, ("deletion-probe",), FILETOOL_ID, 0)
    executor.run(graph, store, log)
    roll_dir, ev_dir = store.path("rollouts", roll.key), store.path("evaluate", ev.key)
    return {
        "keys": (roll.key, ev.key),
        "rollouts": _canonical(roll_dir / TRAJECTORIES),
        "evaluate": _canonical(ev_dir / TRAJECTORIES),
        "metrics": (ev_dir / METRICS).read_bytes(),
        "episode_order": [job.episode_id("micro-base") for job in episodes.jobs()],
    }


@pytest.mark.bwrap
@pytest.mark.timeout(1800)  # three runs of two stages; minutes on 2 busy cores
def test_local_shards_1_2_3_write_the_same_stages(
    micro_models: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    base, _ = micro_models
    runs = {}
    for shards in (1, 2, 3):
        store = StageStore(tmp_path / f"store-{shards}")
        resources = {k: StageResources(shards=shards) for k in ("rollouts", "evaluate")}
        runs[shards] = run_episode_stages(store, base, LocalExecutor(resources=resources))
        if shards > 1:
            for stage, key in zip(("rollouts", "evaluate"), runs[shards]["keys"], strict=True):
                assert store.manifest(stage, key)["shards"] == shards
                assert not list((tmp_path / f"store-{shards}" / stage).glob("*.shards"))
    assert runs[1] == runs[2] == runs[3]
    # Episode-index order (the engine writes episodes as they finish).
    ids = [json.loads(r)["episode_id"] for r in runs[1]["evaluate"]]
    assert len(ids) == 3 and ids == runs[1]["episode_order"]


def test_a_merge_refuses_parts_that_do_not_hold_the_stages_episodes_in_order(
    tmp_path: Path,
) -> None:
    from agentbench.envs import FILETOOL_ID
    from agentbench.experiments.stages import TRAJECTORIES, PolicyRef, RolloutEpisodes
    from agentbench.experiments.suite import RolloutConfig

    policy = PolicyRef(kind="hf", model="unused", identity="m")
    episodes = RolloutEpisodes(policy, RolloutConfig(n=4), ("benign",), FILETOOL_ID, 0)
    ids = [job.episode_id("m") for job in episodes.jobs()]
    assert len(ids) == 4 and episodes.max_parts() == 4
    parts = []
    for name, chunk in (("a", ids[2:]), ("b", ids[:2])):  # right episodes, wrong order
        (tmp_path / name).mkdir()
        lines = "".join(json.dumps({"episode_id": i}) + "\n" for i in chunk)
        (tmp_path / name / TRAJECTORIES).write_text(lines)
        parts.append(tmp_path / name)
    (tmp_path / "work").mkdir()
    with pytest.raises(RuntimeError, match="not the stage's 4 in episode order"):
        episodes.merge(parts, tmp_path / "work", {})
    extras: dict[str, Any] = {}
    episodes.merge(parts[::-1], tmp_path / "work", extras)
    assert extras["episodes"] == 4 and extras["policy"]["identity"] == "m"


def test_run_shards_overrides_the_episode_stages_and_keeps_the_other_requests() -> None:
    from agentbench.experiments.executor import with_shards

    suite_resources = {
        "rollouts": StageResources(cpus=2.0, shards=4),
        "distill": StageResources(cpus=2.0, memory_gb=8.0),
    }
    out = with_shards(suite_resources, "3")
    assert out["rollouts"].shards == 3 and out["rollouts"].cpus == 2.0
    assert out["evaluate"].shards == 3 and out["evaluate"].cpus == 1.0
    assert out["distill"] == suite_resources["distill"]
    assert suite_resources["rollouts"].shards == 4  # the suite's own is not changed
    assert with_shards(None, "auto")["evaluate"].shards == "auto"
    for bad in ("0", "-2", "four", "2.5", ""):
        with pytest.raises(ValueError, match="--shards takes a number of parts"):
            with_shards(suite_resources, bad)


def test_agentbench_run_refuses_a_bad_shards_value_with_a_config_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentbench.cli import app

    repo = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(
        app,
        ["run", str(repo / "suites" / "smoke.yaml"), "--shards", "many",
         "--store", str(tmp_path / "store"), "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--shards takes a number of parts" in result.output
    assert not (tmp_path / "run").exists()
