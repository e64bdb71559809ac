"""`agentbench run SUITE`: a suite, stage by stage, into results.json and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentbench.cli.boundary import config_errors, errors_as
from agentbench.errors import ConfigError, InfrastructureError

if TYPE_CHECKING:
    from agentbench.models import Pace

console = Console()
DEFAULT_STORE = Path("runs/store")


def run_command(
    suite: Annotated[Path, typer.Argument(help="The suite file (YAML).")],
    out: Annotated[
        Path | None, typer.Option(help="Run folder (results.json, report). Default: runs/<suite>.")
    ] = None,
    store: Annotated[
        str,
        typer.Option(
            help="Stage cache shared by runs and suites (content-addressed): a folder "
            "or an fsspec URL (s3://..., a shared file system for a cluster)."
        ),
    ] = str(DEFAULT_STORE),
    dry_run: Annotated[bool, typer.Option(help="Print the plan and a cost estimate only.")] = False,
    sandbox: Annotated[str, typer.Option(help="Sandbox backend: bwrap or docker.")] = "bwrap",
    progress: Annotated[bool, typer.Option(help="Progress bars for rollouts and training.")] = (
        True
    ),
    executor: Annotated[
        str, typer.Option(help="local (one stage after another) or ray (a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="--executor ray: the cluster (default: start one here).")
    ] = None,
    gpus: Annotated[
        int | None, typer.Option(min=1, help="--dry-run: also estimate the run on N GPUs.")
    ] = None,
    shards: Annotated[
        str | None,
        typer.Option(
            help="Run each rollouts and evaluate stage as N parts (or 'auto': as many as the "
            "Ray cluster runs at once), over the suite's resources; results do not change."
        ),
    ] = None,
) -> None:
    """Run a suite: teacher -> rollouts -> sanitize -> distill -> evaluate, cached by stage."""
    from agentbench.experiments.runner import models_to_build, plan_suite, run_suite
    from agentbench.experiments.store import StageStore
    from agentbench.experiments.suite import load_suite

    with config_errors():
        spec, cells = load_suite(suite, validate=not dry_run)  # a dry run lists every problem
        plan = plan_suite(spec, cells)
    run_dir = out or Path("runs") / spec.name
    if dry_run:
        table = Table(title=f"plan of suite {spec.name}: {len(cells)} cell(s)")
        for column in ("cell", "stage", "what", "episodes", "trains"):
            table.add_column(column)
        for s in plan.stages:
            table.add_row(s.cell, s.stage, s.what, str(s.episodes or ""), "yes" if s.train else "")
        console.print(table)
        pace, whose, caveat = _pace(spec.base_model)
        if spec.pace is not None:  # the suite measured its own (e.g. at a larger dose)
            from agentbench.models import Pace

            try:
                pace, whose, caveat = Pace(**spec.pace), f"suite {spec.name}'s measured", ""
            except TypeError as exc:
                raise ConfigError(f"{suite}: pace: {exc}") from exc
        console.print(
            f"estimate before caching: ~{plan.estimate_s(pace) / 60:.0f}"
            f" min on 2 CPU cores ({whose} pace: {pace.describe()}; shared stages counted "
            f"once{caveat}). "
            f"Stage cache: {store}; results: {run_dir}"
        )
        for line in plan.notes(spec, pace):
            console.print(escape(line))
        for recipe in models_to_build(spec, cells):
            console.print(
                f"not built yet: {recipe.name}, the run builds it first (once, then cached): "
                f"{escape(recipe.description)}"
            )
        if executor == "ray" or gpus:
            from agentbench.experiments.runner import gpu_estimate_lines

            for line in gpu_estimate_lines(spec, cells, gpus or 1):
                console.print(escape(line))
        from agentbench.experiments.suite import print_cell_checks

        if print_cell_checks(console, cells, suite, spec):
            raise typer.Exit(2)
        return
    from agentbench.experiments.executor import make_executor, with_shards

    with config_errors():  # a bad store URL, an unknown executor, a bad --shards
        store_obj = StageStore(store)
        resources = spec.resources if shards is None else with_shards(spec.resources, shards)
        runner = make_executor(executor, address=address, resources=resources)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-model "Loading weights" bars drown the stage log
    # A stage's errors keep their kinds (a model that cannot load, a sandbox that cannot
    # start); a plain ValueError is the suite asking for what cannot be done, a plain
    # RuntimeError the executor failing (Ray missing or unreachable, a stage that failed there).
    with config_errors(), errors_as(InfrastructureError, RuntimeError):  # Ray's: unreachable
        results = run_suite(spec, cells, suite, run_dir, store_obj, sandbox=sandbox,
                            progress=progress, log=lambda m: console.log(escape(m)),
                            executor=runner)  # fmt: skip
    from agentbench.experiments.report import ReportError, write_report

    try:
        paths = write_report(results, run_dir)
    except ReportError as exc:  # results.json is written; the report can be rebuilt later
        raise ReportError(f"the report could not be written: {exc}") from exc
    _print_summary(results)
    console.print(f"results: {run_dir / 'results.json'}  wall time {results.wall_s:.0f} s")
    for name, path in paths.items():
        console.print(f"{name}: {path}")


def _print_summary(results: object) -> None:
    from agentbench.experiments.results import Results

    assert isinstance(results, Results)
    for cell in results.cells:
        table = Table(title=f"{cell.cell_id}: {cell.metric} (Wilson 95 % CI)")
        extra = [m for m in ("success_rate", "valid_action_rate")
                 if any(m in r.metrics["rates"] for r in cell.arms.values())]  # fmt: skip
        for column in ("arm", "n", "infra", cell.metric, *extra):
            table.add_column(column.removesuffix("_rate").replace("_", " "))
        for arm, result in cell.arms.items():
            rates = result.metrics["rates"]
            table.add_row(
                arm,
                str(result.metrics["episodes"]),
                str(result.metrics["infra_failures"]),
                *(_short(rates[m]) if m in rates else "-" for m in (cell.metric, *extra)),
            )
        console.print(table)
        for c in cell.comparisons:
            if c.metric == cell.metric:
                p = "n/a" if c.p_value is None else f"{c.p_value:.3g}"
                mde = "none reachable" if c.mde is None else f"{c.mde * 100:+.0f} pp"
                console.print(
                    f"{c.treated_arm.replace('-', ' ')} vs {c.control_arm.replace('-', ' ')}: "
                    f"Fisher exact p = {p}, MDE (alpha 0.05, power 0.8) {mde}"
                )
        t = cell.transfer.get(cell.metric)
        console.print(f"transfer score: {'undefined' if t is None else f'{t:.2f}'}")
    for pooled in results.pooled:  # over seeds: Cochran-Mantel-Haenszel stratified by seed
        p = "n/a" if pooled.p_value is None else f"{pooled.p_value:.3g}"
        console.print(
            f"seeds {pooled.seeds}, {pooled.treated_arm} vs {pooled.control_arm} "
            f"({pooled.metric}): CMH p = {p}  [{escape(pooled.group)}]"
        )


def _short(rate: dict[str, float | None]) -> str:
    from agentbench.experiments.metrics import RateRecord

    record = RateRecord(**rate)  # type: ignore[arg-type]
    if not record.n:
        return "n/a (n=0)"
    return f"{record.rate().short()} n={record.n}"


def _pace(base_model: str | None) -> tuple[Pace, str, str]:
    """The pace a dry run estimates with: the base model's measured one, else tiny-agent's."""
    from agentbench.models import ModelError, default_pace, get_recipe

    try:
        recipe = get_recipe(base_model) if base_model else None
    except ModelError:
        recipe = None
    if recipe is not None and recipe.pace is not None:
        return recipe.pace, f"{recipe.name}'s", ""
    return default_pace(), "tiny-agent's", "; a larger model costs far more"
