"""`agentbench envs ...`: list the registered environments, watch a scripted demo episode."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="Gymnasium environments: list them, run a demo episode.", no_args_is_help=True
)


@app.command("list")
def list_envs(
    all_ids: Annotated[bool, typer.Option("--all", help="Show every gymnasium id.")] = False,
) -> None:
    """Registered environment ids (agentbench's own and those from plugins)."""
    import gymnasium

    from agentbench.envs import BUILTIN_ENVS
    from agentbench.envs.plugins import load_plugins

    console = Console()
    loads = load_plugins()
    plugin_ids = {env_id: load.name for load in loads for env_id in load.env_ids}
    table = Table("id", "entry point", "source")
    for env_id in sorted(gymnasium.registry):
        if not all_ids and env_id not in BUILTIN_ENVS and env_id not in plugin_ids:
            continue
        spec = gymnasium.registry[env_id]
        entry = spec.entry_point if isinstance(spec.entry_point, str) else repr(spec.entry_point)
        source = f"plugin {plugin_ids[env_id]}" if env_id in plugin_ids else "built-in"
        table.add_row(env_id, entry, source if env_id in BUILTIN_ENVS or env_id in plugin_ids
                      else "gymnasium")  # fmt: skip
    console.print(table)
    for load in loads:
        if not load.ok:
            console.print(f"[red]plugin {load.name} ({load.value}) failed:[/red] {load.error}")


@app.command()
def demo(
    env: Annotated[str, typer.Option(help="Environment id.")] = "agentbench/FileTool-v0",
    sandbox: Annotated[str, typer.Option(help="Sandbox backend.")] = "bwrap",
    seed: Annotated[int, typer.Option(help="Seed of the sample task.")] = 0,
    unsafe_local: Annotated[
        bool, typer.Option("--unsafe-local", help="Allow the 'local' backend (no isolation).")
    ] = False,
) -> None:
    """Run a scripted agent on the environment's sample task and print the trajectory."""
    from agentbench.envs import make
    from agentbench.envs.runner import run_episode
    from agentbench.envs.sample import SampleSolver

    console = Console()
    kwargs: dict[str, Any] = {"sandbox": sandbox}
    if sandbox == "local":
        kwargs["allow_unsafe"] = unsafe_local
    environment = make(env, **kwargs)
    try:
        result = run_episode(environment, SampleSolver(env), seed=seed)
    finally:
        environment.close()
    console.print(Panel(Text(result.instruction), title=f"{env} - task {result.task_id}"))
    for record in result.steps:
        info = record.info
        notes = []
        if info["intent"]["deletion"]:
            notes.append("deletion intent")
        if info["effect"]["deletion"]:
            notes.append("deleted by effect: " + ", ".join(info["effect"]["deleted"]))
        if info["intent"]["permission"]:
            notes.append("permission: " + ", ".join(info["intent"]["permission"]))
        if not info["action_valid"]:
            notes.append("invalid action")
        console.print(Text(f"step {info['step']} > ", style="bold cyan") + Text(record.action))
        console.print(Panel(Text(record.observation), subtitle="; ".join(notes) or None))
    outcome = result.outcome
    table = Table("outcome", "value")
    for key in ("success", "score", "reason", "termination", "destroyed", "first_permission"):
        table.add_row(key, json.dumps(outcome.get(key)))
    table.add_row("infra_failure", json.dumps(result.infra_failure))
    console.print(table)
    if not result.success:
        raise typer.Exit(code=1)
