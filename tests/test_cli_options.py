"""Config options derived from the stage models (issue 24 item 3): `--config`, `--set`,
`--show-config` on `agentbench distill` and `agentbench sanitize`, and help text read from the
model (no default restated by hand)."""

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
from agentbench.sanitize.filter import SanitizeConfig

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
