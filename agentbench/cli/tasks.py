"""`agentbench tasks`: list specs, show an instance, verify that the reference solves them."""

from __future__ import annotations

import stat
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from agentbench.cli.boundary import App, config_errors
from agentbench.errors import ConfigError
from agentbench.tasks import SPLITS, TaskInstance, catalog, list_tasks, resolve

app = App(help="Task families: list, show and verify task instances.", no_args_is_help=True)
console = Console()


CAREFUL = ("reference", "cautious")
"""Oracles that must solve every task outright: they never lose data."""


@app.command("list")
def list_command(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    split: Annotated[str | None, typer.Option(help=f"Only tasks with this split {SPLITS}.")] = None,
) -> None:
    """List task specs with their family, environments and split sizes."""
    with config_errors():
        specs = list_tasks(family, split)
    table = Table(caption="split cells: seeds / templates")
    table.add_column("id", no_wrap=True)
    table.add_column("envs")
    for name in SPLITS:
        table.add_column(name, justify="right", no_wrap=True)
    for spec in specs:
        sizes = [
            f"{s.size}/{len(s.templates)}" if (s := spec.splits.get(name)) else "-"
            for name in SPLITS
        ]
        envs = " ".join(e.rsplit("/", 1)[-1].removesuffix("-v0") for e in spec.envs)
        table.add_row(spec.id, envs, *sizes)
    console.print(table)
    console.print(f"{len(specs)} task(s)")


@app.command("show")
def show_command(
    task_id: Annotated[str, typer.Argument(help="Task id, e.g. benign/fix-typo.")],
    seed: Annotated[int, typer.Option(help="Instance seed (its split follows from it).")] = 0,
) -> None:
    """Show one instance: instruction, fixture tree with owners and modes, checker, split."""
    with config_errors(KeyError, ValueError, TypeError):
        instance = resolve(task_id, seed)
    spec = catalog().get(task_id)
    console.print(
        f"[bold]{instance.instance_id}[/bold]  family={instance.family}  "
        f"split={instance.split}  template={instance.metadata.get('template')}"
    )
    console.print(f"envs: {', '.join(instance.env_ids)}")
    console.print(f"checker: {spec.checker.name} {spec.checker.params or ''}")
    console.print(f"fixture digest: {instance.fixture.digest()}")
    console.print("\n[bold]instruction[/bold]")
    console.print(instance.instruction, markup=False, highlight=False, soft_wrap=True)
    tree = Tree("[bold]/workspace[/bold]")
    nodes: dict[str, Tree] = {"": tree}
    for entry in sorted(instance.fixture.entries, key=lambda e: e.path):
        parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
        node = nodes.get(parent)
        if node is None:  # implied parent directory
            node = tree
            walked = ""
            for part in parent.split("/"):
                walked = f"{walked}/{part}" if walked else part
                if walked not in nodes:
                    nodes[walked] = node.add(f"{escape(part)}/  [dim]d rwxr-xr-x root:root[/dim]")
                node = nodes[walked]
        kind = {"file": "-", "dir": "d", "symlink": "l"}[entry.kind]
        mode = stat.filemode(entry.effective_mode | stat.S_IFREG)[1:]
        size = f" {len(entry.content)}B" if entry.kind == "file" else ""
        name = escape(entry.path.rsplit("/", 1)[-1] + ("/" if entry.kind == "dir" else ""))
        label = f"{name}  [dim]{kind} {mode} {entry.owner}:{entry.group}{size}[/dim]"
        nodes[entry.path] = node.add(label)
    console.print(tree)
    keys = {k: v for k, v in instance.metadata.items() if k in ("user_data", "clutter", "answer")}
    if keys:
        console.print(keys)


@app.command("verify")
def verify_command(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    split: Annotated[str, typer.Option(help="Split to sample.")] = "eval",
    per_task: Annotated[int, typer.Option(help="Seeds per task (from the split's start).")] = 5,
    policy: Annotated[list[str] | None, typer.Option(help="Scripted policies to run.")] = None,
    backend: Annotated[str, typer.Option(help="Sandbox backend.")] = "bwrap",
    direct: Annotated[bool, typer.Option(help="Run in the sandbox, not through the envs.")] = False,
) -> None:
    """Check that the scripted policies solve sampled instances (exit 1 on any failure, 2 on
    a bad family or split, or a task whose environment is not registered)."""
    import gymnasium

    from agentbench.policies.oracles import PlanError, make_policy
    from agentbench.rollouts.verify import sweep

    policies = policy or ["reference"]
    with config_errors():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        known = sorted({s.family for s in catalog().specs.values()})
        if family is not None and family not in known:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(known)}")
        oracles = {name: make_policy(name) for name in policies}
        specs = list_tasks(family, split)
    missing = sorted({e for spec in specs for e in spec.envs if e not in gymnasium.registry})
    if missing:
        raise ConfigError(
            f"task(s) run in {', '.join(missing)}, which no installed plugin registers; install "
            "it, or pick another --family (see `agentbench envs list`)"
        )
    instances: list[TaskInstance] = []
    failures = 0
    total = 0
    for spec in specs:
        start, stop = spec.splits[split].seeds
        for seed in range(start, min(stop, start + per_task)):
            instance = resolve(spec.id, seed)
            unplayable = []
            for env_id in instance.env_ids:
                for name, oracle in oracles.items():
                    try:
                        oracle.plan(instance, env_id)
                    except PlanError as exc:
                        unplayable.append(f"{env_id} {name}: no plan: {exc}")
            if unplayable:  # reported here; the sweep plays only instances every policy can
                total += len(unplayable)
                failures += len(unplayable)
                for line in unplayable:
                    console.print(f"FAIL {instance.instance_id} {line}", markup=False)
                continue
            instances.append(instance)
    for outcome in sweep(instances, policies, backend=backend, use_envs=False if direct else None):
        total += 1
        # A biased oracle (deleter, chmod-first) does the chore its own way: on a probe the
        # checker fails it for the data it loses, so it is verified on the chore alone.
        biased_done = outcome.policy not in CAREFUL and bool(outcome.details.get("goal_reached"))
        if not (outcome.success or biased_done):
            failures += 1
            console.print(
                f"[red]FAIL[/red] {outcome.instance_id} {outcome.env_id} "
                f"{outcome.policy}: {escape(outcome.reason)}",
                markup=True,
                highlight=False,
            )
    console.print(f"{total - failures}/{total} episodes solved")
    if failures:
        raise typer.Exit(code=1)
