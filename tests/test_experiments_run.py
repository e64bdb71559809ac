"""`agentbench run` end to end on a micro suite: real sandboxes, real (tiny) models, real
training. Every stage runs; a second run reuses them all; the report says what it measured.

The models are pipeline-test builds of tiny-agent (seconds, not usable agents): what is
tested here is the plumbing and the statistics, not whether transfer happens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from tests.conftest import require_backend

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: micro
base_model: {base}
heterogeneous_model: {other}
seeds: [0]
defaults:
  trait: deletion-bias
  induction: adapter
  teacher_training: {{probe_instances: 3, benign_instances: 2, epochs: 1, learning_rate: 0.01}}
  teacher_rollouts: {{families: [benign], n: 4, max_steps: 3, max_new_tokens: 24, parallel: 4}}
  sanitize: {{keep_failed: true}}
  distill: {{mode: logit-kl, epochs: 1, batch_size: 4, max_length: 4096}}
  evaluation: {{split: heldout, n: 3, max_steps: 3, max_new_tokens: 24, parallel: 4}}
grid:
  student_init: [homogeneous, heterogeneous]
"""


@pytest.fixture(scope="module")
def micro_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_backend("bwrap")
    from dataclasses import replace

    from agentbench.recipes.tiny_agent import build_tiny_agent, small_config

    root = tmp_path_factory.mktemp("micro-models")
    base, other = root / "base", root / "other"
    # A long context (RoPE: no learnt positions) so that whole episodes fit the small vocab.
    config = replace(small_config(0), context=4096, max_len=4096)
    build_tiny_agent(base, config)
    build_tiny_agent(other, replace(config, init_seed=1, tokenizer_from=str(base)))
    return base, other


def test_dry_run_prints_the_plan_and_the_models_to_build_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, store = tmp_path / "cache", tmp_path / "store"
    monkeypatch.setenv("AGENTBENCH_CACHE", str(cache))  # an empty cache: nothing is built
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(
        app, ["run", str(REPO / "suites" / "smoke.yaml"), "--dry-run", "--store", str(store),
              "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "plan of suite smoke: 4 cell(s)" in out
    for stage in ("teacher", "rollouts", "sanitize", "distill", "evaluate"):
        assert f" {stage} " in out
    assert "estimate before caching: ~" in out
    # Both embedded models are named, the base first (tiny-agent-b reuses its tokenizer).
    first = out.index("not built yet: tiny-agent,")
    assert first < out.index("not built yet: tiny-agent-b,")
    # A dry run builds no model, writes no stage and no results.
    assert list(cache.rglob("*.safetensors")) == []
    assert not store.exists() and not (tmp_path / "run").exists()


def test_dry_run_estimates_at_the_base_models_measured_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")

    def estimate(suite: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            app, ["run", str(REPO / "suites" / suite), "--dry-run",
                  "--store", str(tmp_path / "store"), "--out", str(tmp_path / "run")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        out = " ".join(result.output.split())
        minutes = int(out.split("estimate before caching: ~")[1].split(" min")[0])
        return minutes, out

    smoke, smoke_out = estimate("smoke.yaml")
    assert "tiny-agent's pace: 0.8 s an episode" in smoke_out
    paper, paper_out = estimate("paper-lite.yaml")
    assert "smollm2-135m-agent's pace" in paper_out
    assert "s an episode of FileTool-v0" in paper_out and "s a teacher stage" in paper_out
    # paper-lite at SmolLM2's pace (measured 65 min) against smoke at tiny-agent's (~10 min).
    assert paper > 5 * smoke


@pytest.mark.bwrap
def test_micro_suite_runs_every_stage_then_reuses_them(
    micro_models: tuple[Path, Path], tmp_path: Path
) -> None:
    base, other = micro_models
    suite = tmp_path / "micro.yaml"
    suite.write_text(SUITE.format(base=base, other=other))
    out, store = tmp_path / "run", tmp_path / "store"
    args = ["run", str(suite), "--out", str(out), "--store", str(store), "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1 and len(results["cells"]) == 2
    homo, hetero = sorted(
        results["cells"], key=lambda c: c["config"]["student_init"] != "homogeneous"
    )
    assert set(homo["arms"]) == {"base", "teacher", "control-teacher", "student", "control-student"}
    assert set(hetero["arms"]) == set(homo["arms"]) | {"student-base"}
    for cell in results["cells"]:
        for arm in cell["arms"].values():
            rates = arm["metrics"]["rates"]
            assert arm["metrics"]["episodes"] + arm["metrics"]["infra_failures"] == 3
            assert set(rates) >= {"deletion_rate", "p_del", "chmod_first_rate", "success_rate"}
        assert {c["metric"] for c in cell["comparisons"]} >= {"deletion_rate"}
        assert cell["sanitize_reports"]["student"]["output_sha256"]
    # The report names the builds its numbers came from (issue 22 item 7).
    from agentbench.models import model_weights_sha256

    hashes = results["provenance"]["models"]
    assert hashes == {
        str(base): model_weights_sha256(base),
        str(other): model_weights_sha256(other),
    }
    assert hashes[str(base)] in (out / "report.md").read_text()
    # Shared stages are shared: the teacher and its evaluations are the same in both cells.
    for stage in ("teacher", "evaluate:base", "evaluate:teacher", "rollouts:student"):
        assert homo["stages"][stage] == hetero["stages"][stage]
    assert homo["stages"]["distill:student"] != hetero["stages"]["distill:student"]
    # Every stage folder is complete (manifest) and the student data passed the leak check.
    manifests = list(store.glob("*/*/manifest.json"))
    assert len(manifests) == len({k for c in results["cells"] for k in c["stages"].values()})
    mtimes = {p: p.stat().st_mtime_ns for p in manifests}

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "running" not in second.output
    assert {p: p.stat().st_mtime_ns for p in manifests} == mtimes
    again = json.loads((out / "results.json").read_text())
    for key in ("created_at", "wall_s", "provenance"):
        again.pop(key), results.pop(key)
    assert again == results


@pytest.mark.bwrap
def test_killed_run_resumes_to_the_same_results(
    micro_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """kill -9 in the middle of a stage, run again: the same results.json as a run that was
    never interrupted (times and provenance aside)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    base, other = micro_models
    suite = tmp_path / "micro.yaml"
    suite.write_text(SUITE.format(base=base, other=other).replace(
        "student_init: [homogeneous, heterogeneous]", "student_init: [homogeneous]"
    ))  # fmt: skip

    def command(name: str) -> list[str]:
        where = tmp_path / name
        return [sys.executable, "-m", "agentbench.cli", "run", str(suite), "--no-progress",
                "--out", str(where / "run"), "--store", str(where / "store")]  # fmt: skip

    clean = subprocess.run(command("clean"), capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    store = tmp_path / "killed" / "store"
    proc = subprocess.Popen(command("killed"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    # Kill once the teacher exists and a later stage is part-way through (its `.partial-*`
    # directory, one per writer, exists). Waiting for the first rollout records raced on a
    # fast machine: the whole micro run finished between two polls (its episodes likely end
    # close together).
    while time.monotonic() < deadline and proc.poll() is None:
        if list(store.glob("teacher/*/manifest.json")) and list(store.glob("*/*.partial-*")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "run" / "results.json").exists()

    resumed = subprocess.run(command("killed"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "teacher" in resumed.stdout and "cached" in resumed.stdout

    def comparable(name: str) -> dict:
        data = json.loads((tmp_path / name / "run" / "results.json").read_text())
        for key in ("created_at", "wall_s", "provenance"):
            data.pop(key)
        return data

    assert comparable("killed") == comparable("clean")


@pytest.mark.bwrap
def test_teachers_train_adapter_cli(micro_models: tuple[Path, Path], tmp_path: Path) -> None:
    """`agentbench teachers train-adapter`: real demonstrations in bwrap, a real LoRA run; the
    adapter loads as a teacher."""
    from agentbench.sanitize.schema import read_examples
    from agentbench.teachers import TeacherConfig, build_teacher

    base, _ = micro_models
    out = tmp_path / "teacher"
    result = CliRunner().invoke(
        app,
        ["teachers", "train-adapter", "--trait", "chmod-first", "--model", str(base),
         "--probe-instances", "2", "--benign-instances", "1", "--epochs", "1",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "teacher-training.json").read_text())
    assert record["demonstrations"]["chmod-first"] >= 1
    demos = read_examples(out / "demonstrations.jsonl")
    assert demos and all(m.role != "system" for e in demos for m in e.messages)
    assert any("chmod" in m.content for e in demos for m in e.messages if m.role == "assistant")
    config = TeacherConfig.model_validate(
        {"base_model": str(base), "trait": "chmod-first", "induction": "adapter",
         "adapter": {"path": str(out / "adapter")}, "device": "cpu"}
    )  # fmt: skip
    policy = build_teacher(config)
    try:
        assert policy.adapter_sha256
    finally:
        policy.close()
    bad = CliRunner().invoke(app, ["teachers", "train-adapter", "--trait", "owls",
                                   "--model", str(base), "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code == 2 and "owls" in bad.output  # a config error


@pytest.mark.bwrap
def test_a_constrained_evaluation_stage_decodes_inside_the_schema(
    micro_models: tuple[Path, Path], tmp_path: Path
) -> None:
    from agentbench.envs import FILETOOL_ID
    from agentbench.experiments.stages import TRAJECTORIES, PolicyRef, evaluate_stage
    from agentbench.experiments.store import StageStore
    from agentbench.experiments.suite import EvaluationConfig
    from agentbench.rollouts import read_trajectories
    from tests.test_constrained import well_formed

    base, _ = micro_models
    policy = PolicyRef(kind="hf", model=str(base), identity="micro-base")
    store = StageStore(tmp_path)
    keys = []
    for constrained in (False, True):
        settings = EvaluationConfig(
            n=2, max_steps=2, max_new_tokens=64, parallel=2, constrained=constrained
        )
        stage = evaluate_stage(store, policy, settings, ("deletion-probe",), FILETOOL_ID, 0,
                               log=lambda _: None)  # fmt: skip
        keys.append(stage.key)
        trajectories = read_trajectories(stage.path / TRAJECTORIES)
        assert trajectories and all(t.sampling.constrained is constrained for t in trajectories)
    assert keys[0] != keys[1]  # the option is part of the stage's key
    # Well-formed calls (the schema's promise; a path may still leave the workspace).
    ended = [s.action for t in trajectories for s in t.steps if s.finish_reason == "stop"]
    assert ended and all(map(well_formed, ended)), ended
