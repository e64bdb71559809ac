"""The executor seam without Ray: stage graphs, the local executor, the CLI options, the
suite's `resources:` section, and the cluster estimate of suites/dang2026.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.experiments.executor import (
    LocalExecutor,
    StageFailed,
    StageGraph,
    StageTask,
    make_executor,
)
from agentbench.experiments.store import StageStore

REPO = Path(__file__).resolve().parents[1]


def _writer(text: str, reads: str | None = None, store: StageStore | None = None) -> Any:
    def body(work: Path, extras: dict[str, Any]) -> None:
        prefix = ""
        if reads is not None and store is not None:
            prefix = (store.path("a", reads) / "out.txt").read_text()
        (work / "out.txt").write_text(prefix + text)

    return body


def test_a_graph_keeps_shared_stages_once_and_finds_dependencies_by_key(tmp_path: Path) -> None:
    store = StageStore(tmp_path)
    graph = StageGraph()
    graph.add(StageTask("a", "k1", {}, {}, _writer("1")))
    graph.add(StageTask("a", "k1", {}, {}, _writer("again")))  # shared by two cells
    graph.add(StageTask("b", "k2", {}, {"policy": "teacher:k1", "model": "tiny-agent@v3"},
                        _writer("2", "k1", store)))  # fmt: skip
    graph.add(StageTask("c", "k3", {}, {"data": "k2"}, _writer("3")))
    assert list(graph.tasks) == ["a/k1", "b/k2", "c/k3"]
    assert graph.tasks["b/k2"].deps == ("a/k1",) and graph.tasks["c/k3"].deps == ("b/k2",)
    logs: list[str] = []
    assert LocalExecutor().run(graph, store, logs.append) == ["a/k1", "b/k2", "c/k3"]
    assert (store.path("b", "k2") / "out.txt").read_text() == "12"
    assert LocalExecutor().run(graph, store, logs.append) == []  # all cached
    assert sum("cached" in line for line in logs) == 3


def test_a_failing_stage_is_a_stage_failed_error_naming_it(tmp_path: Path) -> None:
    def boom(work: Path, extras: dict[str, Any]) -> None:
        raise ValueError("the sanitizer kept none")

    graph = StageGraph()
    graph.add(StageTask("sanitize", "k", {}, {}, boom))
    with pytest.raises(ValueError, match="kept none"):
        LocalExecutor().run(graph, StageStore(tmp_path), lambda _: None)
    import pickle

    error = pickle.loads(pickle.dumps(StageFailed("sanitize", "k", "kept none")))
    assert (error.stage, error.key, str(error)) == (
        "sanitize",
        "k",
        "stage sanitize/k failed: kept none",
    )


def test_executor_names_are_checked() -> None:
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="--address needs --executor ray"):
        make_executor("local", address="127.0.0.1:6379")


def test_the_cli_refuses_a_bad_executor_and_an_unknown_resources_stage(tmp_path: Path) -> None:
    bad = CliRunner().invoke(app, ["run", str(REPO / "suites" / "smoke.yaml"), "--executor",
                                   "slurm", "--store", str(tmp_path / "s")])  # fmt: skip
    assert bad.exit_code == 2 and "unknown executor" in bad.output
    suite = tmp_path / "s.yaml"
    suite.write_text((REPO / "suites" / "smoke.yaml").read_text()
                     + "resources:\n  trainig: {gpus: 1}\n")  # fmt: skip
    typo = CliRunner().invoke(app, ["run", str(suite), "--dry-run"])
    assert typo.exit_code == 2 and "trainig" in typo.output


def test_dang2026_validates_and_dry_runs_with_an_estimate_on_1_and_n_gpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("AGENTBENCH_CACHE", str(tmp_path / "cache"))
    from agentbench.experiments.suite import load_suite

    suite, cells = load_suite(REPO / "suites" / "dang2026.yaml")
    assert suite.base_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert suite.heterogeneous_model == "meta-llama/Llama-3.2-3B-Instruct"
    assert len(cells) == 2 * 2 * 3 and {c.seed for c in cells} == {0, 1, 2}
    c = cells[0]
    assert (c.teacher_rollouts.n, c.evaluation.n, c.distill.lora_r, c.teacher_training.lora_r) == (
        400, 20, 16, 16)  # fmt: skip
    assert suite.resources["distill"].gpus == 1
    for name in ("dang2026-3b", "dang2026-qwen"):
        load_suite(REPO / "suites" / f"{name}.yaml")
    result = CliRunner().invoke(app, ["run", str(REPO / "suites" / "dang2026.yaml"), "--dry-run",
                                      "--executor", "ray", "--gpus", "8",
                                      "--store", str(tmp_path / "store")])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "stage graph: 102 distinct stages" in out
    one = float(out.split("GPU estimate: ~")[1].split(" h on 1 GPU")[0])
    eight = float(out.split("h on 1 GPU, ~")[1].split(" h on 8 GPUs")[0])
    assert eight < one / 3
    assert not (tmp_path / "store").exists()


def test_the_schedule_estimate_shrinks_with_gpus_and_respects_dependencies() -> None:
    from agentbench.experiments.runner import _gpu_pace, schedule_seconds

    graph = StageGraph()
    pace = _gpu_pace()
    settings = {"n": 10, "repeats": 1, "families": ["benign"]}
    for i in range(4):  # four independent evaluations: 4 x 5 s
        graph.add(StageTask("evaluate", f"e{i}", {"settings": settings, "env": None}, {},
                            _writer("")))  # fmt: skip
    graph.add(StageTask("distill", "d", {}, {"data": "e0"}, _writer("")))  # after e0
    assert schedule_seconds(graph, pace, 1) == 4 * 5 + 900
    # In the graph order: e2 and e3 take the GPUs first (list scheduling, an estimate).
    assert schedule_seconds(graph, pace, 2) == 2 * 5 + 900
    assert schedule_seconds(graph, pace, 4) == 5 + 900
