"""`agentbench run --executor ray` on a Ray cluster started by the test (CPU only; logical
GPUs let GPU-tagged stages schedule here): the micro suite gives the same results.json as
`--executor local`, a second run executes nothing, a worker killed mid-stage is retried with
the same results, and two Ray nodes (each its own raylet and temp dir) share one store.
Sharded rollout and evaluation stages (two parts each, on workers) write the stages one
unsharded local run writes, also when one part's worker is killed mid-way.

Real sandboxes, real (tiny) models and real training, as in test_experiments_run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.experiments.suite import StageResources
from tests.test_executor_shard import run_episode_stages
from tests.test_experiments_run import SUITE, micro_models  # noqa: F401 (a fixture)

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")
REPO = Path(__file__).resolve().parents[1]
RAY_SUITE = (
    SUITE.replace("student_init: [homogeneous, heterogeneous]", "student_init: [homogeneous]")
    + "resources:\n  distill: {{cpus: 1, gpus: 0.5}}\n  teacher: {{cpus: 1, gpus: 1}}\n"
)
"""The micro suite's homogeneous cell (its stages still branch: the evaluations, and the two
arms' rollouts, sanitize and distill chains run side by side); distillation and teacher
stages ask for (logical) GPUs."""
# A run of the micro cell takes minutes on 2 busy cores; pytest's default 300 s is too short.
pytestmark = pytest.mark.timeout(1800)
PARTIAL = re.compile(r"\.partial-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local Ray cluster for the module (start and stop cost seconds), started as
    `--executor ray` starts one."""
    from agentbench.experiments.executor import RayExecutor

    RayExecutor(num_cpus=2, num_gpus=1)._init()
    yield
    ray.shutdown()


def test_stage_workers_run_at_the_drivers_priority(cluster: None) -> None:
    # Ray's default is nice 15: stages then starve behind any other process on the machine.
    worker_nice = ray.get(ray.remote(lambda: os.nice(0)).remote())
    assert worker_nice == os.nice(0)


def _comparable(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for key in ("created_at", "wall_s", "provenance"):
        data.pop(key)
    return dict(data)


@pytest.fixture(scope="module")
def local_run(micro_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The reference: the micro suite under `--executor local`; returns its suite file."""
    base, other = micro_models
    root = tmp_path_factory.mktemp("local")
    suite = root / "micro.yaml"
    suite.write_text(RAY_SUITE.format(base=base, other=other))
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(root / "run"), "--store",
                                      str(root / "store"), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return suite


def test_a_stage_asking_for_more_than_the_cluster_has_is_refused_up_front(
    cluster: None, tmp_path: Path
) -> None:
    from agentbench.experiments.executor import RayExecutor, StageGraph, StageTask
    from agentbench.experiments.store import StageStore
    from agentbench.experiments.suite import StageResources

    graph = StageGraph()
    graph.add(StageTask("distill", "k", {}, {}, lambda work, extras: None))
    executor = RayExecutor(resources={"distill": StageResources(gpus=2)})
    with pytest.raises(RuntimeError, match=r"distill stages ask for 2 GPU\(s\) but the Ray"):
        executor.run(graph, StageStore(tmp_path), lambda _: None)
    assert not (tmp_path / "distill").exists()


@pytest.mark.bwrap
def test_micro_suite_under_ray_matches_local_then_reuses_everything(
    cluster: None, local_run: Path, tmp_path: Path
) -> None:
    out, store = tmp_path / "run", tmp_path / "store"
    args = ["run", str(local_run), "--out", str(out), "--store", str(store), "--no-progress",
            "--executor", "ray"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "submitted" in first.output
    assert _comparable(out / "results.json") == _comparable(
        local_run.parent / "run" / "results.json"
    )
    # The stages ran in Ray workers, not in this process.
    writers = {json.loads(p.read_text())["writer"] for p in store.glob("*/*/manifest.json")}
    assert writers and all(f"-{os.getpid()}-" not in w for w in writers)
    manifests = {p: p.stat().st_mtime_ns for p in store.glob("*/*/manifest.json")}

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "submitted" not in second.output and "running" not in second.output
    assert {p: p.stat().st_mtime_ns for p in store.glob("*/*/manifest.json")} == manifests
    assert _comparable(out / "results.json") == _comparable(
        local_run.parent / "run" / "results.json"
    )


@pytest.mark.bwrap
@pytest.mark.slow  # ~60 s on 2 cores; .ci/run runs it after the default suite
def test_a_worker_killed_mid_stage_is_retried_to_the_same_results(
    cluster: None, local_run: Path, tmp_path: Path
) -> None:
    out, store = tmp_path / "run", tmp_path / "store"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for partial in store.glob("*/*.partial-*"):
                match = PARTIAL.search(partial.name)
                # A stage after the teacher, part-way through, in a worker (not this process).
                if match and partial.parent.name != "teacher":
                    pid = int(match["pid"])
                    if pid != os.getpid():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    args = ["run", str(local_run), "--out", str(out), "--store", str(store), "--no-progress",
            "--executor", "ray"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    killer.join()
    assert killed, "no worker was caught mid-stage"
    assert result.exit_code == 0, result.output
    assert _comparable(out / "results.json") == _comparable(
        local_run.parent / "run" / "results.json"
    )
    assert not list(store.glob("*/*.partial*"))  # the retry removed the dead worker's folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.bwrap
@pytest.mark.slow  # ~110 s on 2 cores (two raylets); .ci/run runs it after the default suite
def test_two_ray_nodes_on_this_machine_run_stages_against_one_store(
    local_run: Path, tmp_path: Path
) -> None:
    """`ray start --head` and a second `ray start --address`, each its own raylet and temp
    dir; `agentbench run --address` drives both; both nodes publish stages."""
    if ray.is_initialized():
        ray.shutdown()  # the module's in-process cluster, if an earlier test started it
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temps = [Path(f"/tmp/ab-ray-{os.getpid()}-{i}") for i in (0, 1)]  # short: socket paths
    env = _env()
    head = [str(ray_bin), "start", "--block", "--head", f"--port={port}", "--num-cpus=1",
            "--num-gpus=1", f"--temp-dir={temps[0]}", "--include-dashboard=false",
            "--disable-usage-stats"]  # fmt: skip
    node = [str(ray_bin), "start", "--block", f"--address={address}", "--num-cpus=1",
            "--num-gpus=1", f"--temp-dir={temps[1]}", "--disable-usage-stats"]  # fmt: skip
    # `--block` keeps each node's `ray start` alive in its own process group, so the test
    # stops exactly the processes it started (never `ray stop`, which stops every cluster
    # of this user on the machine).
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        for command in (head, node):
            quiet = subprocess.DEVNULL
            nodes.append(subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet,
                                          start_new_session=True))  # fmt: skip
            _wait_for_nodes(ray_bin, address, len(nodes), env)
        store = tmp_path / "store"
        run = subprocess.run(
            [sys.executable, "-m", "agentbench.cli", "run", str(local_run), "--no-progress",
             "--out", str(tmp_path / "run"), "--store", str(store), "--executor", "ray",
             "--address", address],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert _comparable(tmp_path / "run" / "results.json") == _comparable(
            local_run.parent / "run" / "results.json"
        )
        pids = {
            int(json.loads(p.read_text())["writer"].rsplit("-", 2)[-2])
            for p in store.glob("*/*/manifest.json")
        }
        # Each node's raylet logs its own workers under its own temp dir.
        per_node = []
        for temp in temps:
            logs = " ".join(p.name for p in temp.glob("session_*/logs/worker-*"))
            per_node.append({pid for pid in pids if f"-{pid}." in logs})
        assert per_node[0] and per_node[1], (pids, per_node)
    finally:
        for proc in reversed(nodes):
            _stop_group(proc)


def _wait_for_nodes(ray_bin: Path, address: str, n: int, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        if status.returncode == 0 and status.stdout.count("node_") >= n:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {n} node(s)")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's process group (its `ray start --block` stops its raylet and
    workers), then SIGKILL whatever is left of that group."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


# -- sharded rollout and evaluation stages ----------------------------------------------------

SHARDED = {k: StageResources(shards=2) for k in ("rollouts", "evaluate")}


@pytest.fixture(scope="module")
def unsharded(micro_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: F811
    """The reference: a rollouts and an evaluation stage, unsharded, by the local executor."""
    from agentbench.experiments.executor import LocalExecutor
    from agentbench.experiments.store import StageStore

    store = StageStore(tmp_path_factory.mktemp("unsharded"))
    return run_episode_stages(store, micro_models[0], LocalExecutor())


@pytest.mark.bwrap
def test_sharded_stages_on_ray_write_what_one_unsharded_run_writes(
    cluster: None,
    micro_models: tuple[Path, Path],  # noqa: F811
    unsharded: Any,
    tmp_path: Path,
) -> None:
    from agentbench.experiments.executor import RayExecutor
    from agentbench.experiments.store import StageStore

    logs: list[str] = []
    store = StageStore(tmp_path)
    sharded = run_episode_stages(store, micro_models[0], RayExecutor(resources=SHARDED),
                                 logs.append)  # fmt: skip
    assert sharded == unsharded
    for stage, key in zip(("rollouts", "evaluate"), sharded["keys"], strict=True):
        for part in (1, 2):
            assert f"{stage} {key} [part {part}/2]: submitted" in logs
        assert f"{stage} {key} [merge]: submitted" in logs
        assert store.manifest(stage, key)["shards"] == 2
    # Parts ran in workers, each its own process; none is left once merged.
    assert not list(tmp_path.glob("*/*.shards"))


@pytest.mark.bwrap
def test_a_part_killed_mid_way_is_retried_alone_to_the_same_stages(
    cluster: None,
    micro_models: tuple[Path, Path],  # noqa: F811
    unsharded: Any,
    tmp_path: Path,
) -> None:
    from agentbench.experiments.executor import RayExecutor
    from agentbench.experiments.store import StageStore

    killed: list[tuple[str, int]] = []

    def kill_one_part() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            for partial in tmp_path.glob("rollouts/*.shards/*.partial-*"):
                match = PARTIAL.search(partial.name)
                if match and int(match["pid"]) != os.getpid():
                    os.kill(int(match["pid"]), signal.SIGKILL)
                    killed.append((partial.name.split(".partial-")[0], int(match["pid"])))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_part)
    killer.start()
    logs: list[str] = []
    try:
        sharded = run_episode_stages(StageStore(tmp_path), micro_models[0],
                                     RayExecutor(resources=SHARDED), logs.append)  # fmt: skip
    finally:
        killer.join()
    assert killed, "no part was caught mid-way"
    assert sharded == unsharded
    # Ray retried the dead part's task alone: every part was submitted and published once.
    key = sharded["keys"][0]
    for part in (1, 2):
        assert logs.count(f"rollouts {key} [part {part}/2]: submitted") == 1
        assert sum(line.startswith(f"rollouts/{key} [part {part}/2]: published")
                   for line in logs) == 1  # fmt: skip
    assert not list(tmp_path.glob("*/*.partial*")) and not list(tmp_path.glob("*/*.shards"))
