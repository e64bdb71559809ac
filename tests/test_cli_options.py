"""Config options derived from the stage models (issue 24 item 3): `--config`, `--set`,
`--show-config` on `agentbench distill`, `sanitize`, `rollouts run` and `teachers steer`, and
help text read from the model (no default restated by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.cli.options import field_help, parse_set, resolve
from agentbench.distill.config import DistillConfig
from agentbench.errors import ConfigError
from agentbench.rollouts.config import RolloutCommandConfig, RolloutConfig
from agentbench.sanitize.filter import SanitizeConfig
from agentbench.teachers.config import SteeringCommandConfig, SteeringConfig

runner = CliRunner()


def said(result: Any) -> str:
    return " ".join(result.output.split())


def test_show_config_prints_the_resolved_config(tmp_path: Path) -> None:
    config = tmp_path / "distill.yaml"
    config.write_text("student: tiny-agent\nepochs: 2\n")
    result = runner.invoke(app, ["distill", "data.jsonl", "--config", str(config), "--lr",
                                 "0.001", "--set", "epochs=3", "--set", "lora.r=8",
                                 "--show-config"])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    # file, then options, then --set: the later wins; untouched fields show their defaults
    assert shown["student"] == "tiny-agent" and shown["epochs"] == 3.0
    assert shown["learning_rate"] == 0.001 and shown["lora"]["r"] == 8
    assert shown["lora"]["alpha"] == 32 and shown["batch_size"] == 4
    # what it printed is a config file that gives the same config back
    again = tmp_path / "again.yaml"
    again.write_text(result.output)
    assert resolve(DistillConfig, file=again) == DistillConfig.model_validate(shown)


def test_unknown_set_key_names_the_known_keys_and_the_closest(tmp_path: Path) -> None:
    result = runner.invoke(app, ["distill", "d.jsonl", "--student", "s", "--set",
                                 "learning_rat=0.1", "--show-config"])  # fmt: skip
    assert result.exit_code == 2
    text = said(result)
    assert "unknown config key 'learning_rat'" in text and "did you mean 'learning_rate'" in text
    assert "known keys:" in text and "lora.alpha" in text
    with pytest.raises(ConfigError, match=r"did you mean 'lora\.alpha'"):
        resolve(DistillConfig, flags={"student": "s"}, sets=["lora.alfa=3"])
    with pytest.raises(ConfigError, match=r"epochs.*not a nested config"):
        resolve(DistillConfig, flags={"student": "s"}, sets=["epochs.x=3"])


def test_set_values_are_validated_by_the_model() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        resolve(DistillConfig, flags={"student": "s"}, sets=["epochs=-1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set("epochs")
    assert parse_set("extra_terms=[a, b]") == ("extra_terms", ["a", "b"])
    assert parse_set("judge=null") == ("judge", None)
    cfg = resolve(SanitizeConfig, sets=["keep_failed=true", "extra_terms=[purge]"])
    assert cfg.keep_failed and cfg.extra_terms == ("purge",)


def test_sanitize_show_config_and_the_deprecated_inverse(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("trait: chmod-first\ndrop_unsuccessful: false\n")
    with pytest.warns(DeprecationWarning, match="keep_failed: true"):
        args = ["sanitize", "in.jsonl", "out.jsonl", "--config", str(config)]
        result = runner.invoke(app, [*args, "--set", "mode=redact", "--show-config"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["keep_failed"] is True and shown["trait"] == "chmod-first"
    assert shown["mode"] == "redact" and "drop_unsuccessful" not in shown
    bad = runner.invoke(app, ["sanitize", "in.jsonl", "out.jsonl", "--set", "mdoe=redact"])
    assert bad.exit_code == 2 and "did you mean 'mode'" in said(bad)


def test_help_reads_defaults_from_the_model() -> None:
    assert "(default: 4.0)" in field_help(DistillConfig, "epochs")
    assert "Passes over the training data" in field_help(DistillConfig, "epochs")
    assert "(required)" in field_help(DistillConfig, "student", "Student base.")
    result = runner.invoke(app, ["distill", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = said(result)
    assert "--show-config" in text and "--set" in text and "(default: 0.0005)" in text


def test_the_deprecated_inverse_gives_the_same_cell() -> None:
    """A suite written with `drop_unsuccessful: false` is the cell of `keep_failed: true`
    (same id, same stage keys); the two disagreeing is an error."""
    from pydantic import ValidationError

    from agentbench.experiments.suite import CellConfig
    from agentbench.sanitize.filter import SanitizeStageConfig

    new = CellConfig.model_validate({"trait": "deletion-bias", "sanitize": {"keep_failed": True}})
    with pytest.warns(DeprecationWarning):
        old = CellConfig.model_validate(
            {"trait": "deletion-bias", "sanitize": {"drop_unsuccessful": False}}
        )
    assert old.cell_id() == new.cell_id() and old.sanitize.keep_failed
    with pytest.raises(ValidationError, match="disagree"):
        SanitizeStageConfig.model_validate({"drop_unsuccessful": True, "keep_failed": True})


# -- rollouts run and teachers steer ---------------------------------------------------------


def test_rollouts_run_show_config_file_then_options_then_set(tmp_path: Path) -> None:
    config = tmp_path / "rollouts.yaml"
    config.write_text("families: [deletion-probe]\nsplit: eval\nn: 3\nmax_steps: 5\nparallel: 2\n")
    result = runner.invoke(app, ["rollouts", "run", "--config", str(config), "--n", "4",
                                 "--max-steps", "6", "--set", "n=7", "--set", "temperature=0",
                                 "--show-config"])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["families"] == ["deletion-probe"] and shown["split"] == "eval"  # the file
    assert shown["parallel"] == 2 and shown["max_steps"] == 6  # the file, then the option
    assert shown["n"] == 7 and shown["temperature"] == 0.0  # then --set
    assert shown["max_new_tokens"] == 256 and shown["constrained"] is False  # the defaults
    # what it printed is a suite's teacher_rollouts section, and a --config file
    assert (
        RolloutConfig.model_validate(shown).model_dump()
        == RolloutCommandConfig(**shown).model_dump()
    )
    again = tmp_path / "again.yaml"
    again.write_text(result.output)
    assert resolve(RolloutCommandConfig, file=again) == RolloutCommandConfig.model_validate(shown)


def test_the_command_presets_change_only_defaults() -> None:
    """Each command's config is its suite section with other defaults, declared once in the
    subclass (TRL's SFTConfig over TrainingArguments); the fields and their help are shared."""
    shown = yaml.safe_load(runner.invoke(app, ["rollouts", "run", "--show-config"]).output)
    assert shown == {"families": ["benign"], "split": "train", "n": 10, "repeats": 1,
                     "max_steps": 30, "temperature": 1.0, "max_new_tokens": 256, "parallel": 4,
                     "constrained": False}  # fmt: skip
    suite, command = RolloutConfig().model_dump(), RolloutCommandConfig().model_dump()
    assert {k for k in suite if suite[k] != command[k]} == {"n", "max_steps", "max_new_tokens",
                                                            "parallel"}  # fmt: skip
    assert set(RolloutCommandConfig.model_fields) == set(RolloutConfig.model_fields)
    for name, field in RolloutConfig.model_fields.items():
        assert RolloutCommandConfig.model_fields[name].description == field.description, name
    steer = yaml.safe_load(runner.invoke(app, ["teachers", "steer", "--show-config"]).output)
    assert steer == {"layer": None, "scale": 4.0, "n_prompts": 64}
    assert SteeringConfig().n_prompts == 16 and set(steer) == set(SteeringConfig.model_fields)
    assert "(default: 64)" in field_help(SteeringCommandConfig, "n_prompts")
    text = " ".join(
        runner.invoke(app, ["rollouts", "run", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    assert "Steps before an episode is truncated. (default: 30)" in text and "--show-config" in text


def test_steer_show_config_file_then_options_then_set(tmp_path: Path) -> None:
    config = tmp_path / "steer.yaml"
    config.write_text("scale: 2.0\nn_prompts: 8\nlayer: 3\n")
    result = runner.invoke(app, ["teachers", "steer", "--config", str(config), "--n", "12",
                                 "--set", "layer=null", "--show-config"])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown == {"layer": None, "scale": 2.0, "n_prompts": 12}
    assert SteeringConfig.model_validate(shown).n_prompts == 12  # a suite's steering section


@pytest.mark.parametrize(
    ("command", "key", "closest"),
    [(["rollouts", "run"], "max_step", "max_steps"),
     (["teachers", "steer"], "n_prompt", "n_prompts")],
)  # fmt: skip
def test_unknown_set_key_on_rollouts_and_steer(command: list[str], key: str, closest: str) -> None:
    result = runner.invoke(app, [*command, "--set", f"{key}=3", "--show-config"])
    assert result.exit_code == 2, result.output
    text = said(result)
    assert f"unknown config key {key!r}" in text and f"did you mean {closest!r}" in text
    assert "known keys:" in text and closest in text.split("known keys:")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rollouts", "run", "--set", "n=0"], "n: Input should be greater than or equal to 1"),
        (["rollouts", "run", "--max-steps", "0"], "max_steps: Input should be greater"),
        (["rollouts", "run", "--split", "test"], "split: Input should be 'train'"),
        (["rollouts", "run", "--set", "temperature=hot"], "temperature: Input should be"),
        (["rollouts", "run", "--set", "n"], "expected KEY=VALUE"),
        (["teachers", "steer", "--n", "0"], "n_prompts: Input should be greater"),
        (["teachers", "steer", "--set", "scale=big"], "scale: Input should be a valid number"),
    ],
)
def test_bad_values_are_config_errors_not_tracebacks(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--show-config"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # the boundary's exit, not a crash
    text = said(result)
    assert "config error: invalid" in text or "expected KEY=VALUE" in text, text
    assert message in text and "Traceback" not in result.output


def test_a_bad_config_file_and_missing_run_options_are_config_errors(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- n: 3\n")
    for command in (["rollouts", "run"], ["teachers", "steer"]):
        result = runner.invoke(app, [*command, "--config", str(listed), "--show-config"])
        assert result.exit_code == 2 and "list.yaml" in said(result), result.output
    # --show-config needs neither; running does
    missing = runner.invoke(app, ["rollouts", "run", "--n", "1"])
    assert missing.exit_code == 2 and "--out is required" in said(missing)
    missing = runner.invoke(app, ["teachers", "steer", "--out", str(tmp_path / "v")])
    assert missing.exit_code == 2 and "--trait is required" in said(missing)


def test_rollouts_run_takes_its_episodes_from_the_config_file(tmp_path: Path) -> None:
    """A real run (scripted policy, bwrap): the file's families, split, n and max_steps and
    the --set repeats decide the episodes."""
    from agentbench.rollouts import read_trajectories
    from tests.conftest import require_backend

    require_backend("bwrap")
    config = tmp_path / "rollouts.yaml"
    config.write_text("families: [permission-probe]\nsplit: eval\nn: 2\nmax_steps: 1\n")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["rollouts", "run", "--config", str(config), "--set",
                                 "repeats=2", "--env", "bash", "--policy", "scripted:chmod-first",
                                 "--no-progress", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = read_trajectories(out)
    assert len(records) == 4 and len({r.instance_id for r in records}) == 2
    assert {(r.family, r.split, r.env_id) for r in records} == {
        ("permission-probe", "eval", "agentbench/Bash-v0")
    }
    assert all(len(r.steps) == 1 and r.outcome.termination == "max_steps" for r in records)


def test_steer_takes_its_config_from_the_file(tmp_path: Path) -> None:
    """A real vector from a tiny model: the file's n_prompts, layer and scale reach it."""
    from agentbench.recipes.tiny import save_tiny_llama
    from agentbench.teachers.steering import load_steering_vector

    model = tmp_path / "tiny"
    save_tiny_llama(model)
    config = tmp_path / "steer.yaml"
    config.write_text("n_prompts: 2\nlayer: 1\nscale: 2.5\n")
    out = tmp_path / "v.safetensors"
    result = runner.invoke(app, ["teachers", "steer", "--trait", "chmod-first", "--model",
                                 str(model), "--family", "bash-benign", "--env",
                                 "agentbench/Bash-v0", "--config", str(config), "--out",
                                 str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = load_steering_vector(out)[0].meta
    assert (meta.n_prompts, meta.layer, meta.scale) == (2, 1, 2.5)
