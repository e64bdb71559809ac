"""`agentbench models`: list the model registry and build its entries into the cache."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from agentbench.models import ModelError, build_model, is_built, list_models, model_dir

console = Console()
app = typer.Typer(
    help="The model registry: names -> local model directories.", no_args_is_help=True
)


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
    try:
        path = build_model(name, force=force)
    except ModelError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{name}: {path} ({time.perf_counter() - started:.1f} s)")
    console.print(f"weights sha256: {model_weights_sha256(path)}")
