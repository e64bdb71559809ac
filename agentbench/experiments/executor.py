"""Executors: how a suite's stage graph runs, on this process or on a Ray cluster.

The runner first *collects* every stage of every cell into a `StageGraph` (nothing runs: a
stage's key depends only on its config and its inputs' keys), then hands the graph to an
executor, then scores the cells from the published stages. Stages pass store keys, never
in-memory objects or Ray object refs: a stage reads its inputs from the `StageStore`.

- `LocalExecutor` (the default and the reference): the stages one after another, in the order
  the cells name them (the order agentbench always used).
- `RayExecutor`: each stage a Ray task with its resource requests (`StageResources`: CPUs,
  GPUs, memory), submitted as soon as the stages it reads are published, so independent cells
  and arms run in parallel. A task whose worker dies is retried (`max_retries`); the store's
  lock and publish protocol make the retry start over cleanly. The results do not depend on
  the executor: the same keys, the same stage bytes for deterministic stages, the same
  results.json.

Sharding (`agentbench.experiments.shard`): a rollout or evaluation stage whose kind has
`shards:` in the suite's `resources:` runs as that many parts ("auto": as many as the Ray
cluster runs at once), each a Ray task with the stage's resource requests and its own
sandboxes, then a merge task that joins them in episode-index order and publishes the stage.
A part whose worker dies is retried alone. The local executor runs the parts one after
another in this process. The stage's key and bytes do not depend on the number of parts.

Errors: a stage's own exception reaches the caller as `StageFailed` (the stage, its key and the
original message); a Ray cluster that cannot be reached is a `RuntimeError` naming the address.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentbench.errors import AgentbenchError
from agentbench.experiments.store import StageStore

if TYPE_CHECKING:
    from agentbench.experiments.shard import ShardedBody, Shards
    from agentbench.experiments.suite import StageResources

Log = Callable[[str], None]
Body = Callable[[Path, dict[str, Any]], None]


class StageFailed(AgentbenchError, RuntimeError):
    """Raised when a stage's body raised on a Ray worker: `stage`, `key` and the message of the
    original error (its traceback stays in the worker's log)."""

    def __init__(self, stage: str, key: str, message: str):
        super().__init__(f"stage {stage}/{key} failed: {message}")
        self.stage, self.key, self.message = stage, key, message

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (Ray) intact
        return (StageFailed, (self.stage, self.key, self.message))


@dataclass
class StageTask:
    """One stage to publish: its key, what its manifest records, and the body that fills its
    folder. `deps`: the ids (`stage/key`) of the stages in the graph it reads."""

    stage: str
    key: str
    config: Any
    inputs: dict[str, str]
    body: Body
    deps: tuple[str, ...] = ()
    sharded: ShardedBody | None = None
    """The stage's work as parts, where it can be sharded (rollouts, evaluate); `body` is
    then its plain, one-part run."""

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key}"


@dataclass
class StageGraph:
    """The stages of a run in the order they were named (a topological order), each once."""

    tasks: dict[str, StageTask] = field(default_factory=dict)
    _by_key: dict[str, str] = field(default_factory=dict)

    def add(self, task: StageTask) -> None:
        """Add a stage (a stage already in the graph, shared by cells, is kept once). Its
        dependencies are the graph's stages whose key its inputs name, directly or as a
        policy identity (`teacher:<key>`, `student:<key>`)."""
        if task.id in self.tasks:
            return
        deps = []
        for value in task.inputs.values():
            dep = self._by_key.get(str(value).rsplit(":", 1)[-1])
            if dep is not None:
                deps.append(dep)
        task.deps = tuple(dict.fromkeys(deps))
        self.tasks[task.id] = task
        self._by_key[task.key] = task.id


_GRAPH: contextvars.ContextVar[StageGraph | None] = contextvars.ContextVar(
    "agentbench_stage_graph", default=None
)


def current_graph() -> StageGraph | None:
    """The graph stages are being collected into (None: stages run when called)."""
    return _GRAPH.get()


@contextmanager
def collecting(graph: StageGraph) -> Iterator[StageGraph]:
    """Within this block stage functions add their stage to `graph` instead of running it."""
    token = _GRAPH.set(graph)
    try:
        yield graph
    finally:
        _GRAPH.reset(token)


def execute_task(store: StageStore, task: StageTask, log: Log) -> bool:
    """Publish one stage unless it is done; returns whether it ran. Its inputs are fetched
    into the local mirror first (remote stores). A second run building the same stage on the
    same store waits for the first (the stage's lock) and then reuses its stage."""
    if store.done(task.stage, task.key):
        log(f"{task.stage} {task.key}: cached")
        return False
    for dep in task.deps:
        store.path(*dep.split("/", 1))
    if not store.publish(task.stage, task.key, task.config, task.inputs, task.body, log):
        return False
    store.path(task.stage, task.key)
    return True


class Executor(Protocol):
    """Runs a stage graph against a store; returns the ids of the stages it ran (not reused).
    Raises `StageFailed` when a stage fails."""

    remote: bool
    """Whether stage bodies run in other processes (their log must be picklable)."""

    def run(self, graph: StageGraph, store: StageStore, log: Log) -> list[str]: ...


def _shard_settings(resources: Mapping[Any, StageResources] | None) -> dict[str, Shards]:
    return {str(k): r.shards for k, r in (resources or {}).items() if r.shards != 1}


class LocalExecutor:
    """Today's behaviour: every stage in this process, one after another. A stage kind
    with `shards: N` in `resources` runs as N parts, one after another, then merged (the
    same bytes as one part; "auto" is one part here)."""

    remote = False

    def __init__(self, *, resources: Mapping[Any, StageResources] | None = None) -> None:
        self.shards = _shard_settings(resources)

    def run(self, graph: StageGraph, store: StageStore, log: Log) -> list[str]:
        from agentbench.experiments.shard import execute_sharded, shard_count

        ran = []
        for task in graph.tasks.values():
            count = 1
            if task.sharded is not None:
                count = shard_count(self.shards.get(task.stage), task.sharded.max_parts())
            if execute_sharded(store, task, count, log):
                ran.append(task.id)
        return ran


MERGE = -1
"""The part index that stands for a sharded stage's merge task."""


def _ray_execute(
    store: StageStore, task: StageTask, part: int | None = None, count: int = 1
) -> tuple[str, bool, float]:
    """The Ray task of one stage, or of one part (`part` of `count`) or the merge
    (`part` MERGE) of a sharded stage; runs on a worker: (id, ran, seconds)."""
    from agentbench.experiments.shard import execute_merge, execute_part

    began = time.monotonic()
    try:
        if part is None:
            ran = execute_task(store, task, print)
        elif part == MERGE:
            ran = execute_merge(store, task, count, print)
        else:
            ran = execute_part(store, task, part, count, print)
    except Exception as exc:  # the message travels; the traceback stays in the worker's log
        raise StageFailed(task.stage, task.key, f"{type(exc).__name__}: {exc}") from exc
    return task.id, ran, time.monotonic() - began


class RayExecutor:
    """Each stage a Ray task, scheduled as its inputs are published.

    `address`: a running cluster (`ray start --head` prints it; "auto" finds the local one);
    None starts a local cluster for this run (`num_cpus`/`num_gpus` size it: logical GPUs let
    GPU-tagged stages schedule on a CPU machine). `resources`: per stage kind requests (a
    suite's `resources:` section, with `shards:` for rollouts and evaluate); stages without
    one ask for 1 CPU. `max_retries`: how often a stage (or a part) whose worker died is run
    again.
    """

    remote = True

    def __init__(
        self, address: str | None = None, *, resources: Mapping[Any, StageResources] | None = None,
        num_cpus: int | None = None, num_gpus: int | None = None, max_retries: int = 3,
    ) -> None:  # fmt: skip
        self.address = address
        self.resources = dict(resources or {})
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.max_retries = max_retries
        self.shards = _shard_settings(resources)
        self.stats: dict[str, float] = {}

    def _init(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError(
                f"--executor ray needs Ray: pip install 'agentbench[ray]' ({exc})"
            ) from exc
        if ray.is_initialized():
            return ray
        # Workers import agentbench from where the driver does (a source checkout first on
        # PYTHONPATH) and find the same model cache.
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())}
        for name in ("AGENTBENCH_CACHE", "HF_HOME", "HF_HUB_OFFLINE"):
            if name in os.environ:
                env[name] = os.environ[name]
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env},
                                  "include_dashboard": False, "log_to_driver": True}  # fmt: skip
        if self.address is None:
            kwargs.update(num_cpus=self.num_cpus, num_gpus=self.num_gpus)
            # Ray starts workers at nice 15, as background work; here the stages are the work,
            # and at 15 any other process on the machine starves them. The raylet reads this
            # when it starts (a user's own setting wins).
            os.environ.setdefault("RAY_worker_niceness", "0")
        try:
            # "local": a new cluster for this run, never one that `ray start` left running
            # on this machine (ray.init() without an address would join that one).
            ray.init(address=self.address or "local", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from exc
        return ray

    def options(self, stage: str) -> dict[str, Any]:
        """The Ray task options of a stage kind."""
        r = self.resources.get(stage)
        opts: dict[str, Any] = {"num_cpus": 1.0, "num_gpus": 0.0, "max_retries": self.max_retries,
                                "retry_exceptions": False}  # fmt: skip
        if r is not None:
            opts.update(num_cpus=r.cpus, num_gpus=r.gpus)
            if r.memory_gb:
                opts["memory"] = int(r.memory_gb * 2**30)
        return opts

    def shard_count(self, ray: Any, task: StageTask) -> int:
        """How many parts `task` runs as on this cluster (1: not sharded)."""
        from agentbench.experiments.shard import shard_count

        if task.sharded is None:
            return 1
        opts = self.options(task.stage)
        request = {"CPU": opts["num_cpus"], "GPU": opts["num_gpus"]}
        return shard_count(self.shards.get(task.stage), task.sharded.max_parts(),
                           ray.cluster_resources(), request)  # fmt: skip

    def _check_fits(self, ray: Any, graph: StageGraph) -> None:
        """Refuse, before anything runs, a stage kind that asks for more than the whole
        cluster has (Ray would otherwise wait for it forever)."""
        total = ray.cluster_resources()
        for stage in sorted({t.stage for t in graph.tasks.values()}):
            opts = self.options(stage)
            for name, want, have in (("CPU", opts["num_cpus"], total.get("CPU", 0.0)),
                                     ("GPU", opts["num_gpus"], total.get("GPU", 0.0))):  # fmt: skip
                if want > have:
                    raise RuntimeError(
                        f"{stage} stages ask for {want:g} {name}(s) but the Ray cluster has "
                        f"{have:g}: lower the suite's resources.{stage}, or run on a cluster "
                        "that has them (--address)"
                    )

    def run(self, graph: StageGraph, store: StageStore, log: Log) -> list[str]:
        ray = self._init()
        self._check_fits(ray, graph)
        remote = ray.remote(_ray_execute)
        pending = dict(graph.tasks)
        published: set[str] = set()
        running: dict[Any, tuple[str, int | None]] = {}  # ref: (stage id, part or None)
        parts_left: dict[str, int] = {}
        counts: dict[str, int] = {}
        ran: list[str] = []
        began = time.monotonic()

        def submit(task: StageTask, part: int | None = None) -> None:
            opts = self.options(task.stage)
            name, what = f"{task.stage}:{task.key}", f"{task.stage} {task.key}"
            if part == MERGE:  # joins files: no GPU, at most one CPU
                opts.update(num_cpus=min(1.0, opts["num_cpus"]), num_gpus=0.0)
                opts.pop("memory", None)
                name, what = f"{name}:merge", f"{what} [merge]"
            elif part is not None:
                name, what = f"{name}:{part}", f"{what} [part {part + 1}/{counts[task.id]}]"
            args = () if part is None else (part, counts[task.id])
            running[remote.options(name=name, **opts).remote(store, task, *args)] = (task.id, part)
            log(f"{what}: submitted")

        def start(tid: str, task: StageTask) -> None:
            count = self.shard_count(ray, task)
            if count <= 1:
                submit(task)
                return
            from agentbench.experiments.shard import part_location

            counts[tid] = count
            todo = [i for i in range(count)
                    if not store.done(*part_location(task.stage, task.key, i, count))]  # fmt: skip
            if len(todo) < count:
                log(f"{task.stage} {task.key}: {count - len(todo)} of {count} part(s) cached")
            parts_left[tid] = len(todo)
            for index in todo:
                submit(task, index)
            if not todo:
                submit(task, MERGE)

        while pending or running:
            for tid, task in list(pending.items()):
                if not all(d in published for d in task.deps):
                    continue
                del pending[tid]
                if store.done(task.stage, task.key):  # cached: no task at all
                    log(f"{task.stage} {task.key}: cached")
                    published.add(tid)
                    continue
                start(tid, task)
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                tid, part = running.pop(ref)
                try:
                    _, did_run, seconds = ray.get(ref)
                except Exception as exc:
                    for other in running:
                        ray.cancel(other, force=True)
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, StageFailed):
                        raise StageFailed(cause.stage, cause.key, cause.message) from None
                    raise RuntimeError(f"stage {tid} failed on Ray: {exc}") from None
                if part is not None and part != MERGE:  # a part: the merge follows the last
                    parts_left[tid] -= 1
                    log(f"{tid} [part {part + 1}/{counts[tid]}]: "
                        f"{'published' if did_run else 'cached'} ({seconds:.1f} s)")  # fmt: skip
                    if parts_left[tid] == 0:
                        submit(graph.tasks[tid], MERGE)
                    continue
                published.add(tid)
                if did_run:
                    ran.append(tid)
                log(f"{tid}: {'published' if did_run else 'cached'} ({seconds:.1f} s)")
        self.stats["wall_s"] = time.monotonic() - began
        return ran

    def shutdown(self) -> None:
        """Stop the local cluster this executor started (a cluster at `address` stays)."""
        import ray

        if ray.is_initialized():
            ray.shutdown()


def with_shards(
    resources: Mapping[Any, StageResources] | None, setting: str
) -> dict[Any, StageResources]:
    """`resources` with every rollouts and evaluate stage set to run as `setting` parts (a
    number, or "auto"), the other kinds' requests kept: `agentbench run --shards`. Raises
    ValueError for a setting that is neither a number of parts (1 or more) nor "auto"."""
    from agentbench.experiments.suite import StageResources

    shards: Shards
    if setting == "auto":
        shards = "auto"
    else:
        try:
            shards = int(setting)
        except ValueError:
            shards = -1
        if shards < 1:
            raise ValueError(
                f"--shards takes a number of parts (1 or more) or 'auto', not {setting!r}"
            )
    out = dict(resources or {})
    for kind in ("rollouts", "evaluate"):
        out[kind] = (out.get(kind) or StageResources()).model_copy(update={"shards": shards})
    return out


def make_executor(
    name: str, *, address: str | None = None,
    resources: Mapping[Any, StageResources] | None = None,
) -> Executor:  # fmt: skip
    """The executor a CLI name means: "local" or "ray". Raises ValueError for another name."""
    if name == "local":
        if address is not None:
            raise ValueError("--address needs --executor ray")
        return LocalExecutor(resources=resources)
    if name == "ray":
        return RayExecutor(address, resources=resources)
    raise ValueError(f"unknown executor {name!r}: choose local or ray")
