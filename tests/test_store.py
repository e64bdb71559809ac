"""The stage store: publish by manifest, racing writers, per-stage locks, durable writes,
fsspec URLs, and stage keys that follow the code (issue 22 items 5 and 8, issue 28 item 2)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentbench.experiments import code_hash as code_hash_module
from agentbench.experiments.executor import StageTask, execute_task
from agentbench.experiments.store import MANIFEST, StageStore, atomic_write, stage_key


def test_stage_key_is_stable_and_covers_config_inputs_and_code() -> None:
    key = stage_key("demo", 1, {"a": 1}, {"in": "x"}, code="c1")
    assert key == stage_key("demo", 1, {"a": 1}, {"in": "x"}, code="c1")
    assert key != stage_key("demo", 1, {"a": 2}, {"in": "x"}, code="c1")
    assert key != stage_key("demo", 1, {"a": 1}, {"in": "y"}, code="c1")
    assert key != stage_key("demo", 1, {"a": 1}, {"in": "x"}, code="c2")


def test_a_failed_build_publishes_nothing_and_the_next_build_starts_clean(tmp_path: Path) -> None:
    store = StageStore(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), store.build("demo", "k", {}, {}) as (w, _):
        (w / "half.txt").write_text("partial")
        raise RuntimeError("boom")
    assert not store.done("demo", "k") and not (tmp_path / "demo" / "k").exists()
    assert list((tmp_path / "demo").glob("k.partial-*/half.txt"))
    body_saw: list[bool] = []

    def body(work: Path, extras: dict[str, Any]) -> None:
        body_saw.append((work / "half.txt").exists())
        (work / "out.txt").write_text("done")
        extras["rows"] = 3

    assert execute_task(store, StageTask("demo", "k", {"a": 1}, {}, body), lambda _: None)
    assert body_saw == [False]  # a killed writer's leftovers are removed, not resumed
    assert not list((tmp_path / "demo").glob("k.partial*"))
    manifest = store.manifest("demo", "k")
    assert manifest["rows"] == 3 and manifest["config"] == {"a": 1}
    assert manifest["provenance"]["agentbench_version"]
    assert not execute_task(store, StageTask("demo", "k", {}, {}, body), lambda _: None)


def test_a_late_writer_never_removes_or_replaces_a_published_stage(tmp_path: Path) -> None:
    """Two runs on one store: the second saw the stage missing, built it too, and finished
    after the first published. Its copy must go, not the first's, which a reader may be
    reading (the old store removed it: `rmtree(final)` then rename)."""
    store = StageStore(tmp_path)
    with store.build("demo", "k", {}, {}) as (work, _):
        (work / "out.txt").write_text("first")
    published = store.path("demo", "k")
    inode = published.stat().st_ino
    with store.build("demo", "k", {}, {}) as (work, _):
        (work / "out.txt").write_text("second")
    assert (published / "out.txt").read_text() == "first"
    assert published.stat().st_ino == inode
    assert not list((tmp_path / "demo").glob("k.partial*"))


def _race(root: str, writer: int, start: float, bodies: Any) -> None:
    """One racing worker process: build the same stage, writing files slowly."""
    store = StageStore(root)

    def body(work: Path, extras: dict[str, Any]) -> None:
        bodies.put(writer)
        for i in range(5):
            (work / f"part{i}.txt").write_text(f"writer {writer}")
            time.sleep(0.02)
        extras["writer"] = writer

    while time.time() < start:
        time.sleep(0.001)
    execute_task(store, StageTask("race", "k", {}, {}, body), lambda _: None)


def test_racing_worker_processes_build_a_stage_once_and_leave_one_whole_copy(
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("fork")
    bodies = ctx.Queue()
    start = time.time() + 0.5
    workers = [ctx.Process(target=_race, args=(str(tmp_path), w, start, bodies)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    ran = []
    while not bodies.empty():
        ran.append(bodies.get())
    assert len(ran) == 1  # the others waited on the stage's lock, then reused it
    store = StageStore(tmp_path)
    writer = store.manifest("race", "k")["writer"]
    folder = store.path("race", "k")
    assert {p.read_text() for p in folder.glob("part*.txt")} == {f"writer {writer}"}
    assert len(list(folder.glob("part*.txt"))) == 5
    assert sorted(p.name for p in (tmp_path / "race").iterdir()) == ["k", "k.lock"]


def test_racing_builds_without_the_lock_still_leave_one_whole_copy(tmp_path: Path) -> None:
    """The publish protocol alone (what a store without locks relies on): both writers
    build, one copy is published whole, the other is dropped."""
    store = StageStore(tmp_path)
    barrier = threading.Barrier(2)

    def build(writer: int) -> None:
        with store.build("race", "k", {}, {}) as (work, extras):
            for i in range(5):
                (work / f"part{i}.txt").write_text(f"writer {writer}")
                barrier.wait() if i == 2 else time.sleep(0.01)
            extras["writer"] = writer

    threads = [threading.Thread(target=build, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer = store.manifest("race", "k")["writer"]
    texts = [p.read_text() for p in store.path("race", "k").glob("part*.txt")]
    assert texts and set(texts) == {f"writer {writer}"} and len(texts) == 5
    assert not list((tmp_path / "race").glob("k.partial*"))


def test_manifests_and_results_are_written_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of the file before its rename and of the folder after it (a power cut leaves
    the old file or the new one, and the rename itself)."""
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = StageStore(tmp_path)
    with store.build("demo", "k", {}, {}) as (work, _):
        (work / "out.txt").write_text("x")
    assert any(s.endswith("out.txt") for s in synced)
    assert any(MANIFEST in Path(s).name or ".manifest.json." in s for s in synced)
    assert str(tmp_path / "demo") in synced  # the folder that received the rename

    from agentbench.experiments.results import Results
    from agentbench.experiments.runner import write_results

    synced.clear()
    results = Results(suite="s", suite_sha256="0", created_at="t", wall_s=0, cells=[])
    path = write_results(results, tmp_path / "run")
    assert json.loads(path.read_text())["suite"] == "s"
    assert any(".results.json." in s for s in synced) and str(tmp_path / "run") in synced
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_atomic_write_leaves_the_old_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = atomic_write(tmp_path / "f.json", "old")

    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "new")
    assert path.read_text() == "old"


def test_an_fsspec_url_store_publishes_by_manifest_and_mirrors_for_reading(
    tmp_path: Path,
) -> None:
    fsspec = pytest.importorskip("fsspec")
    url = f"memory://agentbench-test-{os.getpid()}-{time.monotonic_ns()}"
    store = StageStore(url, mirror=tmp_path / "mirror")
    assert store.remote and not store.done("demo", "k")

    def build(writer: int, barrier: threading.Barrier) -> None:
        with store.build("demo", "k", {}, {}) as (work, extras):
            (work / "sub").mkdir()
            for i in range(3):
                (work / "sub" / f"part{i}.txt").write_text(f"writer {writer}")
            barrier.wait()
            extras["writer"] = writer

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=build, args=(w, barrier)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.done("demo", "k")
    manifest = store.manifest("demo", "k")
    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory://")
    payloads = [p for p in fs.ls(f"/{root}/demo/k", detail=False) if "payload-" in p]
    assert len(payloads) == 1 and payloads[0].endswith(manifest["payload"])
    # A second machine (another mirror) reads the published copy, whole.
    other = StageStore(url, mirror=tmp_path / "other")
    folder = other.path("demo", "k")
    texts = {p.read_text() for p in (folder / "sub").glob("*.txt")}
    assert texts == {f"writer {manifest['writer']}"}
    assert (folder / MANIFEST).is_file()
    fs.rm(f"/{root}", recursive=True)


def test_a_store_url_without_a_backend_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot be opened"):
        StageStore("nosuchprotocol://bucket/store")


# -- item 5: stage keys follow the code --------------------------------------------------


@pytest.fixture
def package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the agentbench package (and its data folders) the hash reads instead."""
    source = code_hash_module.PACKAGE
    copy = tmp_path / "src" / "agentbench"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "_data"))
    for name in ("tasks", "sandboxes"):
        shutil.copytree(source.parent / name, copy.parent / name)
    monkeypatch.setattr(code_hash_module, "PACKAGE", copy)
    code_hash_module.code_hash.cache_clear()
    yield copy
    code_hash_module.code_hash.cache_clear()


def test_editing_the_classifier_changes_the_keys_of_the_stages_it_scores(
    package_copy: Path,
) -> None:
    from agentbench.experiments.code_hash import code_hash

    kinds = ("evaluate", "rollouts", "sanitize", "distill", "teacher")
    before = {k: code_hash(k) for k in kinds}
    classifier = package_copy / "envs" / "classify.py"
    classifier.write_text(classifier.read_text() + "\n# a fix\n")
    code_hash.cache_clear()
    after = {k: code_hash(k) for k in kinds}
    assert after["evaluate"] != before["evaluate"] and after["sanitize"] != before["sanitize"]
    assert after["rollouts"] != before["rollouts"]
    assert after["distill"] == before["distill"]  # training does not read the classifier
    # A task spec (data, not code) counts too.
    spec = next((package_copy.parent / "tasks").rglob("*.yaml"))
    spec.write_text(spec.read_text() + "\n")
    code_hash.cache_clear()
    assert code_hash("evaluate") != after["evaluate"]


def test_the_code_hash_is_part_of_every_stage_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same stage under other code has another key (the old keys ignored the code)."""
    from agentbench.experiments import stages
    from agentbench.experiments.executor import StageGraph, collecting
    from agentbench.experiments.suite import EvaluationConfig

    def key(code: str) -> str:
        monkeypatch.setattr(stages, "code_hash", lambda stage: code)
        graph = StageGraph()
        with collecting(graph):
            result = stages.evaluate_stage(
                StageStore("/nonexistent-store"), stages.base_policy("tiny-agent"),
                EvaluationConfig(n=1), ("deletion-probe",), "agentbench/FileTool-v0", 0,
                log=lambda _: None,
            )  # fmt: skip
        assert list(graph.tasks) == [f"evaluate/{result.key}"]  # collected, not run
        return result.key

    assert key("a") == key("a") != key("b")
    assert not Path("/nonexistent-store").exists()


def test_code_hash_is_computed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentbench.experiments.code_hash import code_hash

    code_hash.cache_clear()
    calls: list[str] = []
    real = code_hash_module._files
    monkeypatch.setattr(code_hash_module, "_files", lambda e: calls.append(e) or real(e))
    first = code_hash("sanitize")
    n = len(calls)
    assert code_hash("sanitize") == first and len(calls) == n > 0
    with pytest.raises(KeyError):
        code_hash("no-such-stage")
