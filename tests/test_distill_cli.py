"""`agentbench distill` from the command line: a real LoRA run on a small data file, the summary
table, reuse of a finished run, and clear errors for bad configs and data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from typer.testing import CliRunner

from agentbench.bench.distill import synthetic_examples, write_examples
from agentbench.cli.distill import app
from agentbench.distill.manifest import read_manifest

torch.set_num_threads(1)
runner = CliRunner()


def test_cli_distills_and_reuses(tmp_path: Path) -> None:
    data = write_examples(tmp_path / "data.jsonl", synthetic_examples(2, steps=1))
    out = tmp_path / "student"
    config = tmp_path / "distill.yaml"
    config.write_text("student: tiny-random-llama\nmode: sft-lora\nmax_length: 4096\n")
    args = [str(data), str(out), "--config", str(config), "--max-steps", "1", "--seed", "3"]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "sft-lora" in result.output and "2 kept of 2" in result.output
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest.seed == 3 and manifest.train["steps"] == 1  # CLI options override the file
    assert (out / "adapter_model.safetensors").is_file()
    again = runner.invoke(app, [*args, "--quiet"])
    assert again.exit_code == 0 and "reused finished run" in again.output
    # Off a terminal the progress bar still reports: a plain line with steps and the loss.
    args[1] = str(tmp_path / "shown")
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"distill .*1/1 steps\s+loss \d", shown.output), shown.output


def said(result: Any) -> str:
    """The CLI's output with the console's line wrapping undone (long tmp paths wrap)."""
    return " ".join(result.output.split())


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    data = write_examples(tmp_path / "data.jsonl", synthetic_examples(1, steps=1))
    bad = tmp_path / "bad.yaml"
    bad.write_text("student: tiny-random-llama\nepochs: 0\nlora: {r: 0}\n")
    result = runner.invoke(app, [str(data), "--config", str(bad)])
    assert result.exit_code == 2  # config errors: 2, data errors: 3
    assert str(bad) in said(result) and "epochs" in said(result) and "lora.r" in said(result)
    result = runner.invoke(app, [str(tmp_path / "none.jsonl"), "--student", "tiny-random-llama"])
    assert result.exit_code == 3 and "no such student dataset" in said(result)
    result = runner.invoke(app, [str(data)])
    assert result.exit_code == 2 and "student: Field required" in said(result)
    result = runner.invoke(app, [str(data), "--student", "s", "--mode", "logit-kl"])
    assert result.exit_code == 2 and "needs `teacher" in said(result)
    result = runner.invoke(
        app, [str(data), "--student", "s", "--mode", "sft-full", "--teacher", "tiny-random-llama"]
    )
    assert result.exit_code == 2 and "teacher` is set but mode is 'sft-full'" in said(result)
    result = runner.invoke(app, [str(data), "--teacher-adapter", str(tmp_path)])
    assert result.exit_code == 2 and "--teacher-adapter needs --teacher" in said(result)
    result = runner.invoke(
        app, [str(data), str(tmp_path / "o"), "--student", "tiny-random-llama", "--quiet"]
    )
    assert result.exit_code == 3 and "0 of 1 examples fit max_length=256" in said(result)
    assert json.loads(data.read_text())["family"] == "benign"
