"""`agentbench envs ...`: list the registered environments, check one against the contract,
watch a scripted demo episode."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentbench.cli.boundary import App, config_errors

app = App(help="Gymnasium environments: list, check, demo.", no_args_is_help=True)


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
    env: Annotated[
        str, typer.Option(help="Environment: a gymnasium id, bash, filetool or a bare name.")
    ] = "agentbench/FileTool-v0",
    sandbox: Annotated[str, typer.Option(help="Sandbox backend.")] = "bwrap",
    seed: Annotated[int, typer.Option(help="Seed of the sample task.")] = 0,
    unsafe_local: Annotated[
        bool, typer.Option("--unsafe-local", help="Allow the 'local' backend (no isolation).")
    ] = False,
) -> None:
    """Run a scripted agent on the environment's sample task and print the trajectory.

    A plugin environment plays the scripted reference policy on the first task instance that
    runs in it. Exits 1 when the episode fails or has an invalid action or an infrastructure
    failure, 2 when the environment cannot run a demo at all.
    """
    from agentbench.envs import BUILTIN_ENVS, make
    from agentbench.envs.plugins import resolve_env_id
    from agentbench.envs.runner import PolicyLike, run_episode
    from agentbench.envs.sample import SampleSolver

    console = Console()
    with config_errors():  # an unknown environment, or one that cannot run a demo
        env = resolve_env_id(env)
        task, agent = (None, SampleSolver(env)) if env in BUILTIN_ENVS else _plugin_demo(env, seed)
    kwargs: dict[str, Any] = {"sandbox": sandbox}
    if sandbox == "local":
        kwargs["allow_unsafe"] = unsafe_local
    environment = make(env, **kwargs)
    policy: PolicyLike = agent
    try:
        result = run_episode(environment, policy, task=task, seed=seed)
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
    invalid = sum(1 for r in result.steps if not r.info.get("action_valid", True))
    if invalid:
        console.print(f"[red]{invalid} invalid action(s)[/red]")
    if not result.success or invalid or result.infra_failure:
        raise typer.Exit(code=1)


@app.command("check")
def check(
    env: Annotated[str, typer.Argument(help="Environment: a gymnasium id or a bare name.")],
    sandbox: Annotated[str, typer.Option(help="Sandbox backend.")] = "bwrap",
    seed: Annotated[int, typer.Option(help="Seed of the default task.")] = 0,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="An action to step (repeatable).")
    ] = None,
) -> None:
    """Check an environment against what agentbench reads (`agentbench.envs.check_agent_env`:
    gymnasium's check_env plus the info, outcome, reset and scoring rules). Exits 1 when a
    check fails."""
    from agentbench.envs import check_agent_env
    from agentbench.envs.plugins import resolve_env_id

    with config_errors():  # an unknown environment
        env = resolve_env_id(env)
    report = check_agent_env(env, sandbox=sandbox, seed=seed, actions=action or ())
    Console().print(str(report), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


def _plugin_demo(env_id: str, seed: int) -> tuple[Any, list[str]]:
    """The first task instance that runs in a plugin env, and the reference plan's actions.
    Raises ValueError when no task runs there or the env cannot render plans."""
    from agentbench import tasks
    from agentbench.policies.oracles import PlanError, make_policy

    for spec in tasks.list_tasks():
        if env_id not in spec.envs or not spec.splits:
            continue
        split = next(iter(spec.splits.values()))
        instance = tasks.resolve(spec.id, split.seeds[0] + seed % split.size)
        try:
            return instance, make_policy("reference").plan(instance, env_id)
        except PlanError as exc:
            raise ValueError(f"cannot demo {env_id}: {exc}") from None
    raise ValueError(
        f"cannot demo {env_id}: no task runs in it (a plugin ships task specs whose envs list "
        "it; see docs/extending/task-family.md)"
    )
