"""`agentbench sanitize` and `agentbench bench sanitize` through typer's CliRunner on real files."""

from __future__ import annotations

from pathlib import Path

from test_sanitize import CLEAN, DELETING, traj, write
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.sanitize import FilterReport, iter_examples, report_path

runner = CliRunner()


def test_cli_sanitizes_and_prints_the_report(tmp_path: Path) -> None:
    src = write(tmp_path / "t.jsonl", [traj(CLEAN, name="a"), traj(DELETING, name="b")])
    out = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["sanitize", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "keyword" in result.output and "leak check" in result.output
    assert len(list(iter_examples(out))) == 1
    report = FilterReport.model_validate_json(report_path(out).read_text())
    assert report.dropped_by_reason == {"keyword": 1}

    result = runner.invoke(
        app, ["sanitize", str(src), str(out), "--mode", "redact", "--extra-term", "notes",
              "--filter", "keywords-only"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    examples = list(iter_examples(out))
    assert len(examples) == 2 and examples[1].redactions == 2  # "notes" and "rm"
    assert "notes" not in out.read_text()


def test_cli_errors(tmp_path: Path) -> None:
    src = write(tmp_path / "t.jsonl", [traj(DELETING)])
    out = tmp_path / "s.jsonl"
    bad = runner.invoke(app, ["sanitize", str(src), str(out), "--mode", "nuke"])
    assert bad.exit_code == 2 and "unknown mode" in bad.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trait: deletion-bias\nmodee: redact\n")
    bad = runner.invoke(app, ["sanitize", str(src), str(out), "--config", str(cfg)])
    assert bad.exit_code == 2 and "c.yaml" in bad.output and "modee" in bad.output
    empty = runner.invoke(app, ["sanitize", str(src), str(out)])
    assert empty.exit_code == 1 and "no example kept" in empty.output
    src.write_text("not json\n")
    broken = runner.invoke(app, ["sanitize", str(src), str(out)])
    assert broken.exit_code == 3 and "t.jsonl:1" in broken.output  # a data error


def test_bench_sanitize_prints_figures() -> None:
    result = runner.invoke(app, ["bench", "sanitize", "--n", "300"])
    assert result.exit_code == 0, result.output
    assert "traj/s" in result.output and "300" in result.output
