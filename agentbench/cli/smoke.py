"""`agentbench smoke`: scripted agents on every task family in both environments."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from agentbench.cli.boundary import config_errors

console = Console()
# Tables are wider than the 80 columns rich assumes when output is not a terminal (CI logs).
wide_console = Console(width=max(console.width, 150))
SMOKE_DIR = Path("runs/smoke")


def smoke_command(
    per_task: int = typer.Option(2, min=1, help="Seeded instances of each task."),
    split: str = typer.Option("eval", help="Task split: train, eval or heldout."),
    sandbox: str = typer.Option("bwrap", help="Sandbox backend: bwrap, docker, local."),
    out: Path = typer.Option(SMOKE_DIR, help="Where results.json is written."),
) -> None:
    """Scripted agents on every task family in both environments, with Wilson 95 % CIs."""
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agentbench.progress import LoggedProgress
    from agentbench.smoke import CellCounts, run_smoke, write_report

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with LoggedProgress(*columns, log_every_s=10) as bar:
        task = bar.add_task("starting", total=None)
        done = 0

        def advance(cell: CellCounts) -> None:
            nonlocal done
            done += 1
            where = f"{cell.family} / {cell.env_id.removeprefix('agentbench/')} / {cell.policy}"
            bar.update(task, description=f"{done} episodes  ({where})")

        with config_errors():  # a bad split or backend, an env that no plugin registers
            report = run_smoke(per_task=per_task, split=split, backend=sandbox, on_episode=advance)

    table = Table(
        title=f"scripted smoke run: split={split}, {per_task} seed(s) per task; "
        "rates with Wilson 95 % CIs",
        caption="n: scored episodes (infrastructure failures excluded); perm n: episodes with a "
        "permission command, the chmod-first denominator",
    )
    labels = ("family", "env", "policy")
    numbers = ("n", "infra", "success", "deletion (effect)", "deletion (intent)", "perm n",
               "chmod-first")  # fmt: skip
    for column in labels:
        table.add_column(column)
    for column in numbers:
        table.add_column(column, justify="right")
    for cell in report.cells:
        rates = cell.rates()
        table.add_row(
            cell.family,
            cell.env_id.removeprefix("agentbench/"),
            cell.policy,
            str(cell.scored),
            str(cell.infra_failures),
            rates["success"].short(),
            rates["deletion_rate"].short(),
            rates["deletion_intent_rate"].short(),
            str(cell.with_permission_command),
            rates["chmod_first_rate"].short(),
        )
    wide_console.print(table)
    for reason, count in report.skipped.items():  # a policy with no plan there: not run
        console.print(f"skipped {count} instance(s): {reason}", markup=False)
    path = write_report(report, out)
    console.print(f"wall time {report.wall_time_s:.1f} s; results: {path}")
