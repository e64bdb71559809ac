"""`agentbench bench`: benchmarks that print figures (the code they time lives with the stage
it measures, in `agentbench.bench`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentbench.cli.boundary import App, errors_as
from agentbench.errors import ConfigError, InfrastructureError

console = Console()
# Tables are wider than the 80 columns rich assumes when output is not a terminal (CI logs).
wide_console = Console(width=max(console.width, 150))
app = App(help="Benchmarks that print figures.", no_args_is_help=True)


@app.command("sandbox")
def sandbox_command(
    backends: str = typer.Option("bwrap,docker,local", help="Comma-separated backends."),
    steps: int = typer.Option(200, min=10, help="Commands timed per backend."),
    resets: int = typer.Option(30, min=3, help="Episode resets timed per backend."),
) -> None:
    """Per-step latency, reset time and snapshot time of each sandbox backend."""
    from agentbench.bench.sandbox import render, run_sandbox_bench

    result = run_sandbox_bench([b.strip() for b in backends.split(",") if b.strip()], steps, resets)
    wide_console.print(render(result))


@app.command("rollouts")
def rollouts_command(
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


@app.command("sanitize", help="Sanitizer trajectories/s and memory on a synthetic trajectory file.")
def sanitize_command(
    n: int = typer.Option(100_000, min=10, help="Trajectories in the large synthetic file."),
    validation: str = typer.Option("fields", help="Input validation: fields or full."),
) -> None:
    """Sanitizer trajectories/s on a synthetic file and peak RSS at n/10 and n (flat memory)."""
    from agentbench.bench.sanitize import render, run_sanitize_bench

    if validation not in ("fields", "full"):
        raise typer.BadParameter("validation must be 'fields' or 'full'")
    Console(width=150).print(render(run_sanitize_bench(n, validation=validation)))


@app.command("distill", help="Training tokens/s and MFU of each distillation mode; speed levers.")
def distill_command(
    model: list[str] = typer.Option(
        [], "--model", help="Model to time (repeatable; default: tiny model and smollm2-135m)."
    ),
    steps: int = typer.Option(4, min=1, help="Optimizer steps per run."),
    batch_size: int = typer.Option(2, min=1, help="Examples per step."),
    threads: int = typer.Option(2, min=1, help="torch threads."),
    full_on_large: bool = typer.Option(False, help="Also time a full fine-tune of SmolLM2."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
    modes: bool = typer.Option(True, help="Time each distillation mode (the first table)."),
    levers: list[str] = typer.Option(
        [],
        "--levers",
        help="Also compare the speed levers on these workloads (repeatable: "
        "build, logit-kl, sft-lora, generate; see agentbench.bench.levers).",
    ),
    repeats: int = typer.Option(2, min=1, help="Interleaved repeats of each lever run."),
    compile_model: bool = typer.Option(True, "--compile/--no-compile", help="Time torch.compile."),
) -> None:
    """Training tokens/s and MFU of each distillation mode (tiny model and SmolLM2-135M, CPU),
    and the CPU speed levers against the float32 baseline."""
    from agentbench.bench.distill import bench_distill, bench_table
    from agentbench.bench.levers import bench_levers, levers_table
    from agentbench.distill.flops import cpu_description

    wide = Console(width=200)
    wide.print(f"[dim]cpu: {cpu_description()}[/dim]")
    out: list[dict[str, object]] = []
    if modes:
        wide.print("[dim]forced distill runs, a few steps each; SmolLM2 takes minutes[/dim]")
        rows = bench_distill(
            model or None, steps=steps, batch_size=batch_size, threads=threads,
            full_on_large=full_on_large,
        )  # fmt: skip
        wide.print(bench_table(rows))
        out += [r.model_dump() for r in rows]
    if levers:
        lever_rows = bench_levers(
            repeats=repeats, threads=threads, workloads=levers, compile_model=compile_model
        )
        wide.print(levers_table(lever_rows))
        out += [r.model_dump() for r in lever_rows]
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2) + "\n")


@app.command(
    "executor", help="Ray's per-stage overhead, a 4-cell suite's and a sharded stage's speed-up."
)
def executor_command(
    n: int = typer.Option(20, min=1, help="Empty stages timed for the per-stage overhead."),
    cells: int = typer.Option(4, min=1, help="Cells (independent chains) of the suite."),
    work_s: float = typer.Option(2.0, min=0.01, help="CPU seconds of a model stage."),
    episodes: int = typer.Option(
        16, min=0, help="Episodes of the sharded rollout stage (0: leave it out)."
    ),
) -> None:
    """Ray's per-stage overhead against local, the speed-up of a 4-cell suite on 2
    workers, and that of a rollout stage sharded into 2 parts on 2 workers."""
    from agentbench.bench.executor import render, run_executor_bench

    try:
        with errors_as(InfrastructureError, RuntimeError):  # Ray could not start its cluster
            print(render(run_executor_bench(n, cells, work_s, episodes)))
    except ImportError as exc:  # Ray is an optional extra
        raise ConfigError(f"the executor benchmark needs Ray (the ray extra): {exc}") from exc


@app.command("replay", help="Replay throughput (episodes/s) of each sandbox backend.")
def replay_command(
    file: Annotated[Path, typer.Argument(help="A bundle whose episodes are replayed.")],
    backends: Annotated[str, typer.Option(help="Comma-separated backends.")] = "bwrap,docker",
    limit: Annotated[int, typer.Option(min=1, help="Episodes replayed per backend.")] = 100,
) -> None:
    """Replay throughput (episodes/s) of each sandbox backend on a bundle's episodes."""
    from agentbench.bundle import read_archive
    from agentbench.bundle.replay import Replayer
    from agentbench.rollouts.schema import Trajectory

    files = read_archive(file.read_bytes())  # BundleError, OSError: data errors
    trajs = [
        Trajectory.model_validate_json(line)
        for name in sorted(files) if name.startswith("episodes/")
        for line in files[name].splitlines() if line.strip()
    ][:limit]  # fmt: skip
    trajs = [t for t in trajs if not t.infra_failure]
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        began = time.monotonic()
        mismatched = 0
        try:
            with Replayer(backend) as replayer:
                for traj in trajs:
                    mismatched += bool(replayer.replay(traj))
        except Exception as exc:  # a backend that is not there: say so, measure the others
            console.print(f"{backend}: skipped ({type(exc).__name__}: {exc})", highlight=False)
            continue
        wall = time.monotonic() - began
        console.print(
            f"{backend}: {len(trajs)} episodes in {wall:.2f} s = "
            f"{len(trajs) / wall:.2f} episodes/s (one sandbox, sandbox start included); "
            f"{mismatched} mismatched",
            highlight=False,
        )
