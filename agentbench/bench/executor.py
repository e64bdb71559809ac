"""What Ray costs and gains against the local executor: `agentbench bench executor`.

Two figures, each from real stages published to a real store (a temporary folder):

1. **per-stage overhead**: `n` empty stages run by `LocalExecutor` and by `RayExecutor` on a
   local cluster (started once, outside the timing); the difference of the mean wall time a
   stage is what Ray adds to each one (task submission, scheduling, pickling the stage, the
   worker's store checks and the result's return).
2. **speed-up of a 4-cell suite on 2 workers**: a synthetic suite of 4 cells, each a chain of
   stages (rollouts -> sanitize -> distill -> evaluate) whose bodies burn CPU for a fixed time
   (`work_s` for model stages, a tenth of it for sanitize), run locally and on a 2-CPU Ray
   cluster. The ideal is 2x; the gap is Ray's overhead plus the chains' critical path.
   Synthetic bodies keep the figure about the executor (a real micro suite's stages on this
   machine take minutes and their cost varies with the machine's other load).
3. **speed-up of a sharded rollout stage on 2 workers**: a real rollouts stage (`episodes`
   benign training tasks played by the scripted `reference` oracle in bwrap sandboxes, one
   sandbox a part) run whole by the local executor and as 2 parts on the 2-CPU Ray cluster
   (`agentbench.experiments.shard`); the ideal is 2x. It also checks that the two runs wrote
   the same trajectories (timings aside).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentbench.experiments.executor import LocalExecutor, RayExecutor, StageGraph, StageTask
from agentbench.experiments.shard import WholeBody
from agentbench.experiments.store import StageStore


def _empty(work: Path, extras: dict[str, Any]) -> None:
    (work / "out.txt").write_text("x")


@dataclass(frozen=True)
class _Burn:
    """A stage body that keeps one core busy for `seconds` (hashing), then writes a file."""

    seconds: float

    def __call__(self, work: Path, extras: dict[str, Any]) -> None:
        end = time.process_time() + self.seconds
        digest = b""
        while time.process_time() < end:
            digest = hashlib.sha256(digest).digest()
        (work / "out.txt").write_text(digest.hex())


def suite_graph(cells: int, work_s: float, salt: str) -> StageGraph:
    """`cells` independent chains rollouts -> sanitize -> distill -> evaluate."""
    graph = StageGraph()
    for c in range(cells):
        previous: dict[str, str] = {}
        for stage in ("rollouts", "sanitize", "distill", "evaluate"):
            key = hashlib.sha256(f"{salt}/{c}/{stage}".encode()).hexdigest()[:20]
            cost = work_s / 10 if stage == "sanitize" else work_s
            graph.add(StageTask(stage, key, {"cell": c}, previous, _Burn(cost)))
            previous = {"input": key}
    return graph


@dataclass(frozen=True)
class ScriptedRef:
    """A scripted oracle as a stage's policy (no model to load: the rollout figure is about
    sandboxes and the executor)."""

    name: str = "reference"

    @property
    def identity(self) -> str:
        return f"scripted:{self.name}"

    def build(self, batch_size: int = 1) -> Any:
        from agentbench.policies.scripted import ScriptedPolicy

        return ScriptedPolicy(self.name)

    def model_dump(self) -> dict[str, Any]:
        return {"kind": "scripted", "name": self.name}


def rollout_graph(episodes: int, salt: str) -> tuple[StageGraph, str]:
    """One shardable rollouts stage of `episodes` scripted episodes; (graph, key)."""
    from agentbench.envs import FILETOOL_ID
    from agentbench.experiments.stages import RolloutEpisodes
    from agentbench.rollouts.config import RolloutConfig

    settings = RolloutConfig(n=episodes, max_steps=12, parallel=1, temperature=0.0)
    body = RolloutEpisodes(ScriptedRef(), settings, settings.families, FILETOOL_ID, 0)
    key = hashlib.sha256(f"rollouts/{salt}".encode()).hexdigest()[:20]
    graph = StageGraph()
    graph.add(StageTask("rollouts", key, {"episodes": episodes}, {}, WholeBody(body),
                        sharded=body))  # fmt: skip
    return graph, key


def _comparable_lines(store: StageStore, key: str) -> list[str]:
    import json

    from agentbench.experiments.stages import TRAJECTORIES
    from agentbench.rollouts.schema import Trajectory

    lines = (store.path("rollouts", key) / TRAJECTORIES).read_bytes().splitlines()
    return [json.dumps(Trajectory.from_line(x).comparable(), sort_keys=True) for x in lines]


@dataclass(frozen=True)
class RolloutShardBench:
    episodes: int
    local_s: float
    """The stage whole, local executor."""
    ray_s: float
    """The stage as 2 parts on 2 Ray workers."""
    identical: bool

    @property
    def speedup(self) -> float:
        return self.local_s / self.ray_s


@dataclass(frozen=True)
class ExecutorBench:
    stages: int
    local_stage_s: float
    ray_stage_s: float
    cells: int
    work_s: float
    local_suite_s: float
    ray_suite_s: float
    rollout: RolloutShardBench | None = None

    @property
    def overhead_s(self) -> float:
        return self.ray_stage_s - self.local_stage_s

    @property
    def speedup(self) -> float:
        return self.local_suite_s / self.ray_suite_s


def _timed(executor: Any, graph: StageGraph, root: Path) -> float:
    began = time.perf_counter()
    executor.run(graph, StageStore(root), lambda _: None)
    return time.perf_counter() - began


def _rollout_bench(episodes: int, root: Path) -> RolloutShardBench:
    """The rollout figure, on the Ray cluster already started."""
    from agentbench.experiments.suite import StageResources

    sharded = RayExecutor(resources={"rollouts": StageResources(shards=2)})
    graph, key = rollout_graph(episodes, f"{time.time_ns()}")
    stores = StageStore(root / "whole"), StageStore(root / "parts")
    local = _timed(LocalExecutor(), graph, stores[0].root)
    ray_s = _timed(sharded, graph, stores[1].root)
    same = _comparable_lines(stores[0], key) == _comparable_lines(stores[1], key)
    return RolloutShardBench(episodes, local, ray_s, same)


def run_executor_bench(
    n: int = 20, cells: int = 4, work_s: float = 2.0, episodes: int = 16
) -> ExecutorBench:
    """Measure the figures (see the module docstring; `episodes` 0 leaves out the sharded
    rollout stage); starts and stops a local Ray cluster with 2 CPUs. Raises RuntimeError
    when Ray is not installed, SandboxStartError when bwrap cannot start."""
    import ray

    ray_executor = RayExecutor(num_cpus=2, num_gpus=0)
    ray_executor._init()
    try:
        # Warm the workers (their first task imports agentbench) outside the timing.
        _timed(
            ray_executor, suite_graph(2, 0.01, f"warm{time.time_ns()}"), Path(tempfile.mkdtemp())
        )
        with tempfile.TemporaryDirectory(prefix="agentbench-bench-executor-") as tmp:
            root = Path(tmp)
            graphs = []
            for name in ("local", "ray"):
                g = StageGraph()
                for i in range(n):
                    key = hashlib.sha256(f"{name}{i}".encode()).hexdigest()[:20]
                    g.add(StageTask("empty", key, {}, {}, _empty))
                graphs.append(g)
            local_stage = _timed(LocalExecutor(), graphs[0], root / "a") / n
            ray_stage = _timed(ray_executor, graphs[1], root / "b") / n
            local_suite = _timed(LocalExecutor(), suite_graph(cells, work_s, "l"), root / "c")
            ray_suite = _timed(ray_executor, suite_graph(cells, work_s, "r"), root / "d")
            rollout = _rollout_bench(episodes, root / "e") if episodes else None
    finally:
        if ray.is_initialized():
            ray.shutdown()
    return ExecutorBench(n, local_stage, ray_stage, cells, work_s, local_suite, ray_suite,
                         rollout)  # fmt: skip


def render(bench: ExecutorBench) -> str:
    """The figures as the command prints them."""
    chain = 3 * bench.work_s + bench.work_s / 10
    lines = [
        f"per-stage wall time ({bench.stages} empty stages): local {bench.local_stage_s * 1e3:.1f}"
        f" ms, Ray {bench.ray_stage_s * 1e3:.1f} ms; Ray's overhead {bench.overhead_s * 1e3:.1f}"
        " ms a stage",
        f"{bench.cells}-cell suite ({bench.cells} chains of 4 stages, {chain:.1f} s of CPU each):"
        f" local {bench.local_suite_s:.1f} s, Ray on 2 workers {bench.ray_suite_s:.1f} s;"
        f" speed-up x{bench.speedup:.2f} (ideal x2.00)",
    ]  # fmt: skip
    r = bench.rollout
    if r is not None:
        lines.append(
            f"sharded rollout stage ({r.episodes} scripted episodes in bwrap sandboxes): local "
            f"1 part {r.local_s:.1f} s, Ray 2 parts on 2 workers {r.ray_s:.1f} s; speed-up "
            f"x{r.speedup:.2f} (ideal x2.00); same trajectories: {'yes' if r.identical else 'NO'}"
        )
    return "\n".join(lines)
