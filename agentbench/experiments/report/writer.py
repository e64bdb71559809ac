"""Reading results.json and writing the report files: `report.md`, a self-contained
`report.html` and the PNG plots beside them.

Errors: `ReportError` names the file and field of bad input (a missing or unreadable file, bad
JSON, another schema version, fields that do not validate, a cell that cannot be reported).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from agentbench.experiments.report._files import write_atomic
from agentbench.experiments.report.checked import (
    Cell,
    ReportError,
    checked_cells,
    validation_errors,
)
from agentbench.experiments.report.compose import build_blocks, file_slug
from agentbench.experiments.report.document import Code, Para
from agentbench.experiments.report.dose import dose_traits
from agentbench.experiments.report.plots import plot_dose, plot_homo_hetero, plot_trait
from agentbench.experiments.report.render import render_html, render_markdown
from agentbench.experiments.results import RESULTS_SCHEMA_VERSION, Results


def write_report(results: Results, out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html and the plots into `out_dir`; returns name -> path.

    Raises `ReportError` for results that cannot be reported (a cell without a trait, a rate
    with k > n or a value outside [0, 1], ...), naming the field.
    """
    from agentbench.provenance import git_revision

    cells = checked_cells(results)
    if not cells:
        raise ReportError("results.json: no cells; the suite expanded to nothing or did not run")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    images: dict[str, bytes] = {}
    plots: dict[str, str] = {}
    by_trait: dict[str, list[Cell]] = {}
    for cell in cells:
        by_trait.setdefault(cell.trait, []).append(cell)
    used: set[str] = set()
    for trait, members in by_trait.items():
        name = f"plot-{file_slug(trait)}.png"
        while name in used:  # two traits with the same slug
            name = name[: -len(".png")] + "-x.png"
        used.add(name)
        images[name] = plot_trait(members, out_dir / name)
        plots[trait] = name
        paths[name] = out_dir / name
    mixed = {t: m for t, m in by_trait.items() if len({c.student_init for c in m}) > 1}
    if mixed:
        name = "plot-homo-hetero.png"
        images[name] = plot_homo_hetero(mixed, out_dir / name)
        plots["homo-hetero"] = name
        paths[name] = out_dir / name
    for trait, members in dose_traits(results, cells).items():
        name = f"plot-dose-{file_slug(trait)}.png"
        while name in used:
            name = name[: -len(".png")] + "-x.png"
        used.add(name)
        images[name] = plot_dose(results, members, out_dir / name)
        plots[f"dose:{trait}"] = name
        paths[name] = out_dir / name
    stale = out_dir / "plot-homo-hetero.png"
    if not mixed and stale.exists():
        stale.unlink()  # a rebuilt report must not leave an old panel beside it

    blocks = build_blocks(results, cells, plots)
    content = hashlib.sha256(results.model_dump_json().encode()).hexdigest()
    blocks.append(Para((
        "Rendered from results.json (content sha256 ", Code(content[:16]), ") by agentbench "
        "report at git revision ", Code(git_revision() or "unknown"), ".",
    )))  # fmt: skip
    markdown = render_markdown(blocks)
    write_atomic(out_dir / "report.md", markdown.encode())
    paths["report.md"] = out_dir / "report.md"
    page = render_html(blocks, f"Experiment report: {results.suite}", images)
    write_atomic(out_dir / "report.html", page.encode())
    paths["report.html"] = out_dir / "report.html"
    return dict(sorted(paths.items()))


def load_results(path: str | Path) -> Results:
    """Read results.json. Raises `ReportError` for a missing file, bad JSON, another schema
    version, or fields that do not validate (each named)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file; run `agentbench run SUITE` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object at the top level")
    version = data.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        if isinstance(version, int) and version > RESULTS_SCHEMA_VERSION:
            hint = "newer than this agentbench reads; upgrade agentbench"
        elif isinstance(version, int):
            hint = "older than this agentbench reads; re-run the suite to rewrite it"
        else:
            hint = "missing or not an integer; is this a results.json?"
        raise ReportError(
            f"{path}: schema_version {version!r} (expected {RESULTS_SCHEMA_VERSION}): {hint}"
        )
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        named = validation_errors(str(path), exc).replace(f"{path}.", f"{path}: ")
        raise ReportError(named) from None


def rebuild_report(run_dir: str | Path) -> dict[str, Path]:
    """Read run_dir/results.json and rewrite the report files beside it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder; pass the run folder that holds results.json")
    results = load_results(run_dir / "results.json")
    try:
        return write_report(results, run_dir)
    except ReportError as exc:
        named = str(exc).replace("results.json:", f"{run_dir / 'results.json'}:")
        raise ReportError(named) from None
