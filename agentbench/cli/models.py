"""`agentbench models`: list the model registry, build its entries into the cache, and
evaluate a model as an agent in the real envs (`models eval`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from agentbench.cli.boundary import App, config_errors
from agentbench.models import build_model, is_built, list_models, model_dir

console = Console()
app = App(help="The model registry: names -> local model directories.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """List registry models, whether they are built, and where."""
    table = Table("name", "built", "description")
    table.add_column("path", overflow="fold")
    for recipe in list_models():
        built = is_built(recipe.name)
        table.add_row(
            recipe.name,
            "[green]yes[/green]" if built else "no",
            recipe.description,
            str(model_dir(recipe.name)) if built else "-",
        )
    console.print(table)


@app.command("build")
def build_command(
    name: str = typer.Argument(..., help="Registry name (see `agentbench models list`)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when already built."),
) -> None:
    """Build a registry model into the cache (once; later uses load the cached copy)."""
    from agentbench.models import model_weights_sha256

    started = time.perf_counter()
    path = build_model(name, force=force)  # ModelError: a config error
    console.print(f"{name}: {path} ({time.perf_counter() - started:.1f} s)")
    console.print(f"weights sha256: {model_weights_sha256(path)}")


@app.command("eval", help="Run a model through the real envs: valid-action and task rates.")
def eval_command(
    name: str = typer.Argument(..., help="Registry name, model directory or hub id."),
    n: int = typer.Option(20, "--n", min=1, help="Eval instances per family."),
    family: list[str] = typer.Option(
        None, "--family", help="Families to run (repeatable; default: all four)."
    ),
    temperature: float = typer.Option(1.0, min=0.0, max=5.0, help="0 is greedy."),
    seed: int = typer.Option(0, help="Sampling seed."),
    max_steps: int = typer.Option(20, min=1, help="Step limit per episode."),
    constrained: bool = typer.Option(
        False, help="Decode FileTool actions inside its tool-call schema (constrained decoding)."
    ),
    out_dir: Path | None = typer.Option(None, help="Keep the trajectories here (JSONL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Valid-action, success, deletion and chmod-first rates on eval instances, per family
    and environment."""
    from agentbench.recipes.tiny_agent import EVAL_FAMILIES, evaluate

    with config_errors():  # ModelError keeps its kind; an unknown family is a ValueError
        results = evaluate(
            name,
            n=n,
            families=family or EVAL_FAMILIES,
            out_dir=out_dir,
            temperature=temperature,
            seed=seed,
            max_steps=max_steps,
            constrained=constrained,
            progress=not as_json,
        )
    if as_json:
        print(json.dumps(results, indent=2))
        return
    columns = {"episodes": "n", "valid_action_rate": "valid", "command_ran_rate": "ran",
               "success_rate": "success", "deletion_rate": "deleted",
               "chmod_first_rate": "chmod 1st", "mean_steps": "steps"}  # fmt: skip
    table = Table(
        box=box.SIMPLE,
        caption="n: episodes (infra failures left out); valid: share of steps; ran: share of "
        "shell commands that ran; success, deleted (by effect): of episodes; chmod 1st: of "
        "episodes with a permission command",
    )
    table.add_column("family/env", no_wrap=True)
    for header in columns.values():
        table.add_column(header, justify="right")
    for key, figures in results.items():
        cells = ("-" if figures[c] is None else f"{figures[c]:.3g}" for c in columns)
        table.add_row(key.removesuffix("-v0"), *cells)
    console.print(table)
    infra = {key: figures["infra_failures"] for key, figures in results.items()}
    if any(infra.values()):
        console.print(f"infrastructure failures: {infra}")
