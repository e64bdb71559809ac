"""Suites: expansion into cells, and errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbench.experiments.runner import plan_suite
from agentbench.experiments.suite import TRAIT_PROBES, CellConfig, load_suite
from agentbench.experiments.yamlconf import ConfigError

REPO = Path(__file__).resolve().parent.parent

SUITE = """\
name: demo
base_model: tiny-agent
heterogeneous_model: tiny-agent-b
seeds: [0, 1]
defaults:
  induction: adapter
  distill:
    mode: logit-kl
grid:
  trait: [deletion-bias, chmod-first]
  distill.mode: [sft-lora, logit-kl]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_grid_expands_to_the_product_times_seeds(tmp_path: Path) -> None:
    suite, cells = load_suite(write(tmp_path, SUITE))
    assert suite.name == "demo"
    assert len(cells) == 2 * 2 * 2
    assert {(c.trait, c.distill.mode, c.seed) for c in cells} == {
        (t, m, s)
        for t in ("deletion-bias", "chmod-first")
        for m in ("sft-lora", "logit-kl")
        for s in (0, 1)
    }
    assert len({c.cell_id() for c in cells}) == len(cells)
    chmod = next(c for c in cells if c.trait == "chmod-first")
    assert chmod.env_id == "agentbench/Bash-v0"
    assert chmod.probe_families == ("permission-probe",)


def test_explicit_cells_without_a_grid_deep_merge_the_defaults(tmp_path: Path) -> None:
    text = SUITE.split("grid:")[0] + (
        "  teacher_training: {epochs: 2, probe_instances: 8}\n"
        "cells:\n"
        "  - {trait: deletion-bias, teacher_training: {epochs: 6}}\n"
        "  - {trait: chmod-first}\n"
    )
    _, cells = load_suite(write(tmp_path, text))
    # The defaults alone (no trait) are not a cell; each explicit cell starts from them.
    assert [c.trait for c in cells] == ["deletion-bias", "chmod-first"]
    assert [c.teacher_training.epochs for c in cells] == [6, 2]
    assert {c.teacher_training.probe_instances for c in cells} == {8}
    assert [c.seed for c in cells] == [0, 0]
    # Neither a grid nor a trait: the missing field is reported at the defaults section.
    with pytest.raises(ConfigError, match=r"suite.yaml:5: defaults.trait: Field required"):
        load_suite(write(tmp_path, SUITE.split("grid:")[0]))
    only_defaults = SUITE.split("grid:")[0].replace(
        "  induction", "  trait: chmod-first\n  induction"
    )
    _, cells = load_suite(write(tmp_path, only_defaults))
    assert [(c.trait, c.seed) for c in cells] == [("chmod-first", 0), ("chmod-first", 1)]


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    text = SUITE.replace(
        "  distill:\n    mode: logit-kl", "  distill:\n    mode: logit-kl\n    epocs: 3"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}:9" in message and "epocs" in message and "unknown key" in message


def test_bad_grid_value_points_at_the_grid_line(tmp_path: Path) -> None:
    path = write(tmp_path, SUITE.replace("[deletion-bias, chmod-first]", "[deletion-bias, owls]"))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}:10" in message and "grid.trait" in message and "owls" in message


def test_unknown_grid_field_and_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"suite.yaml:12: grid.colour: unknown cell field"):
        load_suite(write(tmp_path, SUITE + "  colour: [red]\n"))
    with pytest.raises(ConfigError, match=r"suite.yaml:1: nmae: unknown key"):
        load_suite(write(tmp_path, "nmae: x\n" + SUITE))


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_suite(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_suite(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_suite(tmp_path / "missing.yaml")


def test_heterogeneous_cell_needs_a_model(tmp_path: Path) -> None:
    text = (
        SUITE.replace("heterogeneous_model: tiny-agent-b\n", "")
        + "  student_init: [heterogeneous]\n"
    )
    suite, cells = load_suite(write(tmp_path, text))
    with pytest.raises(ValueError, match="heterogeneous_model"):
        plan_suite(suite, cells)


def test_shipped_suites_validate_and_plan() -> None:
    for path in sorted((REPO / "suites").glob("*.yaml")):
        if path.name.startswith("mlp") or path.name.startswith("traits"):
            continue
        suite, cells = load_suite(path)
        assert cells, path
        plan = plan_suite(suite, cells)
        assert plan.estimate_s() > 0


def test_estimate_prices_episodes_by_environment_and_teachers_apart(tmp_path: Path) -> None:
    from agentbench.models import Pace

    suite, cells = load_suite(write(tmp_path, SUITE.replace("seeds: [0, 1]", "seeds: [0]")))
    plan = plan_suite(suite, cells)
    envs = {s.env for s in plan.stages if s.episodes}
    assert envs == {"agentbench/FileTool-v0", "agentbench/Bash-v0"}
    flat = Pace(episode_s=2.0, train_s=100.0, measured="test")
    dear_filetool = Pace(
        episode_s=2.0, train_s=100.0, measured="test",
        env_episode_s={"agentbench/FileTool-v0": 6.0},
    )  # fmt: skip
    unique = {(s.stage, s.what): s for s in plan.stages}.values()  # shared stages run once
    filetool = [s for s in unique if s.env == "agentbench/FileTool-v0"]
    played = sum(s.episodes for s in filetool if not s.scripted)
    demos = sum(s.episodes for s in filetool if s.scripted)
    assert played and demos
    # Only FileTool's model-played episodes (and its scripted demos, at a quarter) cost more.
    extra = plan.estimate_s(dear_filetool) - plan.estimate_s(flat)
    assert extra == pytest.approx(4.0 * played + 1.0 * demos)
    # Two teacher stages (one per trait) priced at teacher_s instead of train_s.
    with_teacher = Pace(episode_s=2.0, train_s=100.0, teacher_s=700.0, measured="test")
    assert plan.estimate_s(with_teacher) - plan.estimate_s(flat) == pytest.approx(2 * 600.0)
    assert "6 s an episode of FileTool-v0, 2 s elsewhere" in dear_filetool.describe()
    assert hash(dear_filetool) == hash(flat)  # frozen and hashable, like the recipe holding it
    assert with_teacher.describe().endswith("700 s a teacher stage, 100 s a student")


def test_partial_evaluation_settings_still_score_the_trait_probes(tmp_path: Path) -> None:
    # A suite that sets only n and max_steps once got the teacher rollouts' default family
    # (benign) for its probes: every arm was scored on benign tasks.
    text = SUITE.replace("defaults:\n", "defaults:\n  evaluation: {n: 4, max_steps: 3}\n")
    _, cells = load_suite(write(tmp_path, text))
    assert {c.trait: c.probe_families for c in cells} == {
        "deletion-bias": ("deletion-probe",),
        "chmod-first": ("permission-probe",),
    }
    assert {(c.evaluation.n, c.evaluation.split) for c in cells} == {(4, "heldout")}
    # Scoring arms on anything but the trait's probes is refused when the suite loads.
    explicit = text.replace("{n: 4,", "{families: [benign], n: 4,")
    with pytest.raises(ConfigError, match=r"suite.yaml:\d+: evaluation.families: 'benign' is not"):
        load_suite(write(tmp_path, explicit))


def test_shipped_agentic_suites_score_the_trait_probes() -> None:
    for path in sorted((REPO / "suites").glob("*.yaml")):
        if path.name.startswith("mlp"):  # the MLP experiment's own config, not a suite
            continue
        _, cells = load_suite(path)
        for cell in cells:
            if cell.kind == "agentic":
                assert cell.probe_families == (TRAIT_PROBES[cell.trait],), (path, cell.trait)


def test_cell_ids_are_stable() -> None:
    a = CellConfig(trait="deletion-bias")
    b = CellConfig.model_validate({"trait": "deletion-bias"})
    assert a.cell_id() == b.cell_id()
    assert a.cell_id() != CellConfig(trait="deletion-bias", seed=1).cell_id()


def test_constrained_decoding_is_a_setting_that_leaves_other_cells_alone(tmp_path: Path) -> None:
    _, cells = load_suite(write(tmp_path, SUITE))
    text = SUITE.replace("defaults:\n", "defaults:\n  evaluation: {constrained: true}\n")
    _, constrained = load_suite(write(tmp_path, text))
    assert all(c.evaluation.constrained and not c.teacher_rollouts.constrained
               for c in constrained)  # fmt: skip
    # A new cell, while a suite that does not set it keeps its ids (and cached stages).
    assert {c.cell_id() for c in constrained}.isdisjoint(c.cell_id() for c in cells)
    assert "constrained" not in CellConfig(trait="deletion-bias").model_dump_json()
    with pytest.raises(ConfigError, match="constrained"):
        load_suite(write(tmp_path, text.replace("true", "sometimes")))


def test_gradient_checkpointing_leaves_dumps_and_ids_of_suites_without_it() -> None:
    from agentbench.experiments.suite import DistillStageConfig

    off = DistillStageConfig()
    assert "gradient_checkpointing" not in off.model_dump()
    on = DistillStageConfig(gradient_checkpointing=True)
    assert on.model_dump()["gradient_checkpointing"] is True
    # The stage key's view (stages.distill_stage) is the same either way: the same student.
    assert on.model_dump(exclude={"gradient_checkpointing"}) == off.model_dump()
    assert (
        CellConfig(trait="chmod-first").cell_id()
        == CellConfig(trait="chmod-first", distill=off).cell_id()
    )


# -- load-time validation (issue 22 item 4, issue 27 item 2) ----------------------------------

BAD_CELLS = """\
name: bad
base_model: tiny-agent
seeds: [0]
defaults:
  trait: deletion-bias
  teacher_rollouts: {families: [deletion-probe, nosuch], split: heldout}
cells:
  - {env: nonsense/Nope-v0}
  - {trait: chmod-first, env: agentbench/FileTool-v0, teacher_rollouts: {families: [benign]}}
  - {env: FileTool-v0, teacher_rollouts: {families: [benign]}}
  - {induction: prompt}
"""


def test_probe_families_and_evaluation_splits_never_reach_teacher_rollouts(tmp_path: Path) -> None:
    # These loaded before: teacher rollouts on the deletion probes' held-out split.
    with pytest.raises(ConfigError) as info:
        load_suite(write(tmp_path, BAD_CELLS))
    problems = str(info.value).splitlines()
    expect = [  # one line per mistake, though several cells share it
        r"suite.yaml:6: teacher_rollouts.split: teacher rollouts must use the train split, "
        r"not 'heldout'",
        r"suite.yaml:6: teacher_rollouts.families: 'deletion-probe' is a probe family",
        r"suite.yaml:6: teacher_rollouts.families: unknown family 'nosuch'",
        r"suite.yaml:8: env: environment 'nonsense/Nope-v0' is not registered",
        # chmod-first's probes run in Bash only: an adapter teacher has nothing to learn from.
        r"suite.yaml:9: env: trait 'chmod-first' needs its probe family 'permission-probe' in "
        r"agentbench/FileTool-v0",
        r"suite.yaml:9: induction: an adapter teacher learns from permission-probe",
        # A bare name is not guessed into a namespace: the full id is asked for.
        r"suite.yaml:10: env: environment 'FileTool-v0' is not registered; write the full id "
        r"'agentbench/FileTool-v0'",
    ]
    import re

    for pattern in expect:
        assert any(re.search(pattern, line) for line in problems), (pattern, problems)


def test_dry_run_lists_each_cells_environment_families_and_what_would_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agentbench.cli import app

    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("AGENTBENCH_CACHE", str(tmp_path / "cache"))
    args = ["run", "--dry-run", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, str(write(tmp_path, BAD_CELLS))])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "nonsense/Nope-v0" in out and "agentbench/FileTool-v0" in out
    assert "deletion-probe, nosuch (heldout)" in out  # the teacher's families and split
    assert "would fail: " in out and "suite.yaml:6: teacher_rollouts.split" in out
    ok = CliRunner().invoke(app, [*args, str(REPO / "suites" / "smoke.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "would fail:" not in ok.output and "benign (train)" in " ".join(ok.output.split())
