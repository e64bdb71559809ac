"""The `agentbench` command line: a thin layer over the library API."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from agentbench import __version__
from agentbench.bench.distill import bench_distill_command
from agentbench.bench.executor import bench_executor_command
from agentbench.bench.sanitize import bench_sanitize_command
from agentbench.cli.bundle import (
    bench_replay_command,
    bundle_command,
    submit_command,
    verify_command,
)
from agentbench.cli.distill import distill_command
from agentbench.cli.envs import app as envs_app
from agentbench.cli.leaderboard import app as leaderboard_app
from agentbench.cli.models import app as models_app
from agentbench.cli.rollouts import app as rollouts_app
from agentbench.cli.run import run_command
from agentbench.cli.sanitize import sanitize_command
from agentbench.cli.tasks import app as tasks_app
from agentbench.cli.teachers import app as teachers_app
from agentbench.cli.traits import app as traits_app
from agentbench.experiments.report import report_command
from agentbench.serve import serve_command

console = Console()
# Tables are wider than the 80 columns rich assumes when output is not a terminal (CI logs).
wide_console = Console(width=max(console.width, 150))
SMOKE_DIR = Path("runs/smoke")
app = typer.Typer(
    name="agentbench",
    help="A benchmark harness for subliminal learning in agentic tool use.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
sandbox_app = typer.Typer(
    help="Build and inspect the sandboxes agents run in.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(bench_app, name="bench")
app.add_typer(envs_app, name="envs", help="The tool-use environments (gymnasium).")
app.add_typer(tasks_app, name="tasks", help="Task families: benign tasks and probes.")
app.add_typer(rollouts_app, name="rollouts", help="Run policies in the environments; trajectories.")
app.add_typer(models_app, name="models", help="The model registry and the embedded models.")
app.add_typer(
    teachers_app, name="teachers", help="Teachers: trait induction by prompt, adapter or steering."
)
app.add_typer(
    traits_app, name="traits", help="Trait experiments of Cloud et al. (MLP aux-logit control)."
)
app.command("serve", help="Serve a model behind an OpenAI-compatible API (127.0.0.1).")(
    serve_command
)
app.command(
    "sanitize",
    help="Drop or redact banned terms in trajectories: a leak-checked student dataset + report.",
)(sanitize_command)
app.command(
    "distill",
    help="Distil a student from a sanitized student dataset (SFT LoRA, full SFT, masked logit KL).",
)(distill_command)
app.command(
    "run", help="Run a suite: teacher, rollouts, sanitize, distill, evaluate; cached by stage."
)(run_command)
app.command(
    "report", help="Rebuild a run's report (report.md, report.html, PNG plots) from results.json."
)(report_command)


@app.command()
def version() -> None:
    """Print the agentbench version."""
    console.print(__version__)


@sandbox_app.command("build")
def sandbox_build(
    docker: bool = typer.Option(False, "--docker", help="Also import the Docker image."),
    mirror: str | None = typer.Option(None, help="Debian mirror for debootstrap."),
) -> None:
    """Build the sandbox root file system (and the Docker image) from Debian packages."""
    from agentbench.sandbox.rootfs import RootfsError, ensure_rootfs

    try:
        root = ensure_rootfs(mirror=mirror)
    except RootfsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"root file system: {root}")
    if docker:
        from agentbench.sandbox.image import ensure_image

        console.print(f"docker image: {ensure_image()}")


@sandbox_app.command("info")
def sandbox_info(
    backend: str = typer.Option("bwrap", help="Sandbox backend: bwrap, docker, local."),
    unsafe_local: bool = typer.Option(False, help="Allow the unisolated 'local' backend."),
) -> None:
    """Start a sandbox, print what it enforces and what it looks like from inside."""
    from agentbench.sandbox import SandboxStartError, make_sandbox

    kwargs = {"allow_unsafe": True} if backend == "local" and unsafe_local else {}
    try:
        with make_sandbox(backend, **kwargs) as sandbox:
            info = sandbox.info()
            console.print(f"backend: {info.backend}  image: {info.image}")
            for limit, enforced in sorted(info.limits_enforced.items()):
                mark = "[green]yes[/green]" if enforced else "[yellow]no[/yellow]"
                console.print(f"  {limit:<12} enforced: {mark}")
            result = sandbox.exec("id; hostname; ls /; getent group analysts")
            console.print(result.stdout)
    except (SandboxStartError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@sandbox_app.command("clean")
def sandbox_clean(
    docker: bool = typer.Option(True, help="Also remove leftover Docker containers."),
) -> None:
    """Remove what killed runs left behind: workspace mounts and Docker containers."""
    from agentbench.sandbox.workspace import remove_stale_workspaces

    for path in remove_stale_workspaces():
        console.print(f"removed workspace {path}")
    if docker:
        try:
            from agentbench.sandbox.docker import remove_leftovers

            for container_id in remove_leftovers():
                console.print(f"removed container {container_id[:12]}")
        except Exception as exc:  # no SDK, no daemon: nothing of Docker's to clean
            console.print(f"docker: skipped ({type(exc).__name__}: {exc})")


@bench_app.command("sandbox")
def bench_sandbox(
    backends: str = typer.Option("bwrap,docker,local", help="Comma-separated backends."),
    steps: int = typer.Option(200, min=10, help="Commands timed per backend."),
    resets: int = typer.Option(30, min=3, help="Episode resets timed per backend."),
) -> None:
    """Per-step latency, reset time and snapshot time of each sandbox backend."""
    from agentbench.bench.sandbox import render, run_sandbox_bench

    result = run_sandbox_bench([b.strip() for b in backends.split(",") if b.strip()], steps, resets)
    wide_console.print(render(result))


@app.command()
def smoke(
    per_task: int = typer.Option(2, min=1, help="Seeded instances of each task."),
    split: str = typer.Option("eval", help="Task split: train, eval or heldout."),
    sandbox: str = typer.Option("bwrap", help="Sandbox backend: bwrap, docker, local."),
    out: Path = typer.Option(SMOKE_DIR, help="Where results.json is written."),
) -> None:
    """Scripted agents on every task family in both environments, with Wilson 95 % CIs."""
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agentbench.progress import LoggedProgress
    from agentbench.sandbox import SandboxStartError
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

        try:
            report = run_smoke(per_task=per_task, split=split, backend=sandbox, on_episode=advance)
        except (SandboxStartError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None

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


@bench_app.command("rollouts")
def bench_rollouts(
    model: str = typer.Option("smollm2-135m", help="Registry name or model directory."),
    batch_size: int = typer.Option(8, min=1, help="Episodes in lockstep = generate batch."),
    max_new_tokens: int = typer.Option(24, min=1, help="New tokens per action."),
    max_steps: int = typer.Option(2, min=1, help="Steps per episode."),
    family: str = typer.Option("benign", help="Task family the episodes come from."),
    sandbox: str = typer.Option("bwrap", help="Sandbox backend."),
    max_context: int | None = typer.Option(None, help="Override the model's context length."),
) -> None:
    """Harness rollout tokens/s against raw batched model.generate on the same prompts."""
    from agentbench.bench.rollouts import render, run_rollout_bench

    result = run_rollout_bench(
        model,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_steps=max_steps,
        family=family,
        sandbox=sandbox,
        max_context=max_context,
        progress=console.log,
    )
    wide_console.print(render(result))


# Benchmarks whose code lives with the stage they measure.
bench_app.command(
    "sanitize", help="Sanitizer trajectories/s and memory on a synthetic trajectory file."
)(bench_sanitize_command)
bench_app.command("distill", help="Training tokens/s of each distillation mode on CPU.")(
    bench_distill_command
)
bench_app.command("executor", help="Ray's per-stage overhead and a 4-cell suite's speed-up.")(
    bench_executor_command
)
bench_app.command("replay", help="Replay throughput (episodes/s) of each sandbox backend.")(
    bench_replay_command
)
# Leaderboard: result bundles, their verification, submission and the server.
app.command("bundle", help="Write a run's result bundle (or `bundle schema`).")(bundle_command)
app.command("verify", help="Verify a bundle: recompute, replay, track rules.")(verify_command)
app.command("submit", help="Upload a bundle to a leaderboard server.")(submit_command)
app.add_typer(leaderboard_app, name="leaderboard", help="The leaderboard server and its page.")


def _quiet_libraries() -> None:
    """Library deprecation chatter is not for users of the CLI (tests still see it)."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for module in ("transformers", "torch", "peft", "trl", "accelerate"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)


def main() -> None:
    from agentbench.provenance import git_revision

    _quiet_libraries()
    git_revision()  # the code this process runs (artifacts written later record it)
    app()
