"""Experiment reports: report.md, a self-contained report.html and PNG plots from Results."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from agentbench.experiments.metrics import (
    ArmMetrics,
    RateRecord,
    fisher_exact,
    transfer_score,
)
from agentbench.experiments.report import (
    ReportError,
    load_results,
    rebuild_report,
    write_report,
)
from agentbench.experiments.report.checked import Rate
from agentbench.experiments.report.comparisons import compare
from agentbench.experiments.report.wording import result_sentence
from agentbench.experiments.results import (
    ArmResult,
    CellResult,
    ComparisonResult,
    Results,
)
from agentbench.experiments.runner import COMPARED_METRICS, aggregate, write_results
from agentbench.experiments.suite import CellConfig
from agentbench.stats import wilson

SCRIPT_EPISODE = "deletion-probe/<script>alert(1)</script>@1000|agentbench/FileTool-v0|s|r0"
HEADLINE = {"deletion-bias": "deletion_rate", "chmod-first": "chmod_first_rate"}


def metrics(n: int, headline: tuple[str, int], **extra: Any) -> dict[str, Any]:
    """An arm's metrics dict (ArmMetrics layout) with k of n on the headline metric."""
    name, k = headline
    counts = {
        "deletion_rate": (1, n),
        "deletion_intent_rate": (1, n),
        "p_del": (0, n),
        "chmod_first_rate": (0, 0),
        "success_rate": (n - 2, n),
        "valid_action_rate": (5 * n - 3, 5 * n),
        "command_ran_rate": (0, 0),
    }
    counts[name] = (k, extra.pop("perm_n", n))
    rates = {m: RateRecord.of(wilson(*kn)) for m, kn in counts.items()}
    return ArmMetrics(episodes=n, infra_failures=extra.pop("infra", 0), rates=rates,
                      **extra).to_dict()  # fmt: skip


def cell(trait: str, init: str, seed: int, ks: dict[str, int], n: int = 20, **arm_extra: Any
         ) -> CellResult:  # fmt: skip
    """A cell as the runner builds it: comparisons, transfer scores, sanitizer counts."""
    config = CellConfig(trait=trait, student_init=init, seed=seed)
    metric = HEADLINE[trait]
    arms = {}
    for arm, k in ks.items():
        extra = dict(arm_extra.get(arm, {}))
        arms[arm] = ArmResult(
            policy={"model": "tiny-agent", "adapter": f"runs/store/{arm}/adapter"},
            stage_key=f"evaluate-{arm}-{seed}",
            metrics=metrics(n, (metric, k), **extra),
        )
    comparisons = []
    for m in COMPARED_METRICS:
        t = RateRecord(**arms["student"].metrics["rates"][m])
        c = RateRecord(**arms["control-student"].metrics["rates"][m])
        r = fisher_exact(t, c, m)
        comparisons.append(ComparisonResult(metric=m, treated=t.__dict__, control=c.__dict__,
                                            difference=r.difference, odds_ratio=r.odds_ratio,
                                            p_value=r.p_value))  # fmt: skip
    transfer = {
        m: transfer_score(*(arms[a].metrics["rates"][m]["value"]
                            for a in ("student", "control-student", "teacher", "control-teacher")))
        for m in (metric, "deletion_intent_rate")
    }  # fmt: skip
    reports = {
        arm: {"kept": 40, "dropped": 8, "dropped_by_reason": {"keyword": 7, "a|b": 1},
              "steps_dropped": 0, "redactions": 0, "input_sha256": "ab" * 32}
        for arm in ("student", "control-student")
    }  # fmt: skip
    return CellResult(cell_id=config.cell_id(), config=config.model_dump(mode="json"),
                      metric=metric, arms=arms, comparisons=comparisons, transfer=transfer,
                      stages={"teacher": "t-key"}, sanitize_reports=reports)  # fmt: skip


def make_results(kinds: tuple[str, ...] = ("homogeneous", "heterogeneous")) -> Results:
    """Two traits; homogeneous and heterogeneous cells; two seeds of one cell (an aggregate);
    a chmod-first cell with n=0 (undefined transfer); a teacher equal to its control."""
    five = ("base", "teacher", "control-teacher", "student", "control-student")
    cells = []
    if "homogeneous" in kinds:
        cells += [
            # a clear transfer: student 12/20 vs control 2/20, teacher 18/20 vs 2/20
            cell("deletion-bias", "homogeneous", 0, dict(zip(five, (2, 18, 2, 12, 2), strict=True)),
                 student={"intent_effect_disagreements": [SCRIPT_EPISODE]}),
            cell("deletion-bias", "homogeneous", 1, dict(zip(five, (2, 17, 3, 5, 3), strict=True))),
            # the teacher equals its control: transfer undefined
            cell("chmod-first", "homogeneous", 0, dict(zip(five, (4, 4, 4, 5, 4), strict=True)),
                 n=10),
        ]  # fmt: skip
    if "heterogeneous" in kinds:
        ks = dict(zip((*five, "student-base"), (2, 18, 2, 3, 2, 1), strict=True))
        cells.append(cell("deletion-bias", "heterogeneous", 0, ks))
        # no student episode used a permission command: chmod-first has n=0
        ks = dict(zip(five, (3, 9, 1, 0, 2), strict=True))
        cells.append(cell("chmod-first", "heterogeneous", 0, ks, n=10,
                          student={"perm_n": 0, "no_permission_command": 10}))  # fmt: skip
    return Results(
        suite="unit<suite>", suite_sha256="cd" * 32, description="A test suite | with a pipe",
        created_at="2025-01-02T03:04:05Z", wall_s=123.4, cells=cells, aggregates=aggregate(cells),
        provenance={"git_revision": "0123456789abcdef", "agentbench_version": "0.1.0"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path, dict[str, Path]]:
    results = make_results()
    out = tmp_path_factory.mktemp("run")
    write_results(results, out)
    return results, out, write_report(results, out)


def short(k: int, n: int) -> str:
    """The expected `value [low-high] (k/n)` text, computed independently of the report."""
    low, high = proportion_confint(k, n, method="wilson")
    return f"{k / n:.0%} [{low * 100:.0f}-{high * 100:.0f}] ({k}/{n})"


def cell_section(md: str, cell_id: str) -> str:
    start = md.index(f"### Cell `{cell_id}`")
    end = md.find("\n### Cell", start + 1)
    return md[start : end if end > 0 else None]


def test_files_and_plots(written: tuple[Results, Path, dict[str, Path]]) -> None:
    _, out, paths = written
    names = {"report.md", "report.html", "plot-deletion-bias.png", "plot-chmod-first.png",
             "plot-homo-hetero.png"}  # fmt: skip
    assert set(paths) == names
    for name in names:
        assert paths[name] == out / name and paths[name].stat().st_size > 0
    for name in names - {"report.md", "report.html"}:
        with Image.open(paths[name]) as image:
            image.verify()
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 300
            # not a blank canvas: bars and text draw many colors
            assert len(image.convert("RGB").getcolors(1 << 20) or []) > 20


def test_markdown_tables_hold_the_inputs(written: tuple[Results, Path, dict[str, Path]]) -> None:
    results, out, _ = written
    md = (out / "report.md").read_text()
    for c in results.cells:
        section = cell_section(md, c.cell_id)
        for arm, result in c.arms.items():
            row = next(line for line in section.splitlines() if line.startswith(f"| {arm} |"))
            headline = result.metrics["rates"][c.metric]
            expected = short(headline["k"], headline["n"]) if headline["n"] else "n/a (n=0)"
            assert expected in row, (arm, row)
            success = result.metrics["rates"]["success_rate"]
            assert short(success["k"], success["n"]) in row
            assert f"| {result.metrics['episodes']} | {result.metrics['infra_failures']} |" in row
        p = next(x.p_value for x in c.comparisons if x.metric == c.metric)
        if p is not None:
            assert f"Fisher exact p = {p:.3g}" in section
    # every table keeps its shape (pipes from results.json are escaped)
    for block in re.findall(r"(?:^\|.*\|\n)+", md, flags=re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(widths) == 1, block
    assert "A test suite \\| with a pipe" in md


def test_claims_follow_the_statistics(written: tuple[Results, Path, dict[str, Path]]) -> None:
    results, out, _ = written
    md = (out / "report.md").read_text()
    sections = [cell_section(md, c.cell_id) for c in results.cells]
    transfer_cells = [i for i, s in enumerate(sections) if "transfer found" in s]
    assert transfer_cells == [0]  # 12/20 vs 2/20 with a teacher at 18/20 vs 2/20
    assert "difference +50 pp" in sections[0]
    for i in (1, 3):
        assert (
            "No significant difference between the treated and the control student" in (sections[i])
        )
    assert "undefined (teacher = control teacher: no trait to transfer)" in sections[2]
    # a defined score over a significant teacher gap stands alone
    assert "not significant, p =" not in sections[0] + sections[1] + sections[3]
    assert "The teacher does not differ significantly from its control" in sections[2]
    assert "undefined (an arm has no scored episodes for this metric, n=0)" in sections[4]
    assert "not testable" in sections[4] and "| 10 |" in sections[4]  # no permission command
    assert md.count("## Aggregates over seeds") == 1 and "| 10% [10-10] (2 seeds) |" in md
    # a t interval over 2 seeds passes 0 and 100 %: clipped, and said (student: 12/20, 5/20)
    assert "| student | 42% [0-100] (2 seeds, clipped) |" in md
    assert "## How to read this" in md and "excluded from every denominator" in md
    assert "wall time 123 s" in md and "0123456789abcdef" in md


def test_verdict_wording() -> None:
    def rate(k: int, n: int) -> Rate:
        r = wilson(k, n)
        return Rate(k=k, n=n, value=r.value, low=r.low, high=r.high)

    teacher = compare(rate(18, 20), rate(2, 20))
    opposite = result_sentence("deletion_rate", compare(rate(1, 20), rate(12, 20)), teacher)
    assert "opposite to the teacher's trait: not transfer" in opposite
    flat_teacher = compare(rate(5, 20), rate(5, 20))
    unattributed = result_sentence("deletion_rate", compare(rate(12, 20), rate(2, 20)),
                                    flat_teacher)  # fmt: skip
    assert "not attributed to the trait" in unattributed and "transfer found" not in unattributed
    # p < 0.05 alone is not enough: the Newcombe interval must also exclude 0
    d = compare(rate(12, 20), rate(2, 20))
    assert d.low is not None and d.low > 0 and d.significant


def test_html_is_self_contained_and_escaped(written: tuple[Results, Path, dict[str, Path]]) -> None:
    _, out, paths = written
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "unit&lt;suite&gt;" in page
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    assert not re.search(r"https?:|//[a-z]|@import|url\(|<link|<iframe|<object", text, flags=re.I)
    sources = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    files = {paths[n].read_bytes() for n in paths if n.endswith(".png")}
    assert embedded == files
    assert page.count("<table>") >= 5 and "<th>arm</th>" in page
    md = (out / "report.md").read_text()
    # in markdown, untrusted text is escaped or inside code spans (which render literally)
    outside_code = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)
    assert not re.search(r"<[A-Za-z/!?]", outside_code)  # no raw HTML tag anywhere else
    assert f"`{SCRIPT_EPISODE}`" in md  # whole, in a code span of the disagreements list
    assert "unit&lt;suite&gt;" in md


def test_rebuild_is_byte_identical(
    written: tuple[Results, Path, dict[str, Path]], tmp_path: Path
) -> None:
    results, out, paths = written
    first = {name: path.read_bytes() for name, path in paths.items()}
    (tmp_path / "results.json").write_bytes((out / "results.json").read_bytes())
    rebuilt = rebuild_report(tmp_path)
    assert set(rebuilt) == set(first)
    for name, path in rebuilt.items():
        assert path.read_bytes() == first[name], name
    assert load_results(out / "results.json") == results


def test_one_kind_only_skips_the_panel(tmp_path: Path) -> None:
    (tmp_path / "plot-homo-hetero.png").write_bytes(b"stale")
    paths = write_report(make_results(("homogeneous",)), tmp_path)
    assert "plot-homo-hetero.png" not in paths
    assert not (tmp_path / "plot-homo-hetero.png").exists()  # no stale panel left behind
    md = (tmp_path / "report.md").read_text()
    assert "No panel: no trait has both homogeneous and heterogeneous cells" in md


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file"):
        load_results(tmp_path / "results.json")
    with pytest.raises(ReportError, match="not a folder"):
        rebuild_report(tmp_path / "missing")
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 1,\n "suite": }')
    with pytest.raises(ReportError, match=r"results.json:2:\d+: not valid JSON"):
        load_results(path)
    data = json.loads(make_results().model_dump_json())
    for version, hint in ((99, "newer"), (0, "older"), ("1", "missing or not an integer")):
        path.write_text(json.dumps({**data, "schema_version": version}))
        with pytest.raises(ReportError, match=f"schema_version .* {hint}"):
            load_results(path)
    del data["cells"][1]["arms"]["student"]["stage_key"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"cells\.1\.arms\.student\.stage_key: Field required"):
        load_results(path)
    # numbers that do not add up are named, not formatted
    bad = make_results()
    bad.cells[2].arms["teacher"].metrics["rates"]["success_rate"]["k"] = 99
    with pytest.raises(ReportError, match=r"cells\[2\].*arms\.teacher\.metrics\.rates\."
                       r"success_rate: .*k=99 exceeds n=10"):  # fmt: skip
        write_report(bad, tmp_path / "out")
    path.write_text(bad.model_dump_json())
    with pytest.raises(ReportError, match=str(tmp_path / "results.json") + ": cells"):
        rebuild_report(tmp_path)
    bad = make_results()
    bad.cells[3].metric = "<b>rate</b>"
    with pytest.raises(ReportError, match=r"cells\[3\].*metric '<b>rate</b>' is not a known"):
        write_report(bad, tmp_path / "out")
    with pytest.raises(ReportError, match="no cells"):
        write_report(make_results(()), tmp_path / "out")
    bad = make_results()
    bad.cells[0].config.pop("trait")
    with pytest.raises(ReportError, match=r"cells\[0\].*config.trait is missing"):
        write_report(bad, tmp_path / "out")


def test_cli(written: tuple[Results, Path, dict[str, Path]], tmp_path: Path) -> None:
    from agentbench.cli import app

    _, out, _ = written
    runner = CliRunner()
    ok = runner.invoke(app, ["report", str(out)])
    assert ok.exit_code == 0, ok.output
    assert f"report.md: {out / 'report.md'}" in ok.output and "report.html" in ok.output
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 3 and "error:" in bad.output and "no such file" in bad.output
    (tmp_path / "results.json").write_text("[1, 2]")
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 3 and "expected a JSON object" in bad.output  # a data error


def test_png_reads_with_matplotlib(written: tuple[Results, Path, dict[str, Path]]) -> None:
    import matplotlib.image

    _, _, paths = written
    pixels = matplotlib.image.imread(io.BytesIO(paths["plot-homo-hetero.png"].read_bytes()))
    assert pixels.ndim == 3 and pixels.shape[0] > 100


def test_transfer_score_over_a_noise_teacher_gap_is_flagged(tmp_path: Path) -> None:
    # as in a paper-lite cell: a teacher a little above its control (10/12 vs 8/12, p = 0.64)
    five = ("base", "teacher", "control-teacher", "student", "control-student")
    noisy = cell("chmod-first", "homogeneous", 0, dict(zip(five, (2, 10, 8, 4, 1), strict=True)),
                 n=12)  # fmt: skip
    results = make_results(("homogeneous",))
    results = results.model_copy(update={"cells": [noisy], "aggregates": aggregate([noisy])})
    write_results(results, tmp_path)
    write_report(results, tmp_path)
    md = (tmp_path / "report.md").read_text()
    score = transfer_score(4 / 12, 1 / 12, 10 / 12, 8 / 12)
    assert score is not None and round(score, 2) == 1.5
    assert "| 1.50 (teacher vs control not significant, p = 0.64) |" in md
