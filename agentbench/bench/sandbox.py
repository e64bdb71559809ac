"""How fast each sandbox backend is: per-step latency, episode reset, workspace snapshot.

Every backend runs the same commands over the same fixture. Baselines: a bare
`subprocess.run(["bash", "-c", cmd])` spawn (what a harness without a persistent shell pays per
step) and, when Docker works, a raw `docker exec CONTAINER bash -c cmd` CLI call. Targets: a step
no slower than the bare spawn; a reset within 50 ms (bwrap) or 0.5 s (docker); a snapshot of a
1,000-file workspace within 50 ms. A backend that cannot start is reported with its reason.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel
from rich.table import Table

from agentbench.sandbox import Fixture, FixtureEntry, Sandbox, SandboxError, make_sandbox
from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.fixture import materialize
from agentbench.sandbox.snapshot import take_snapshot

COMMANDS = (
    "true",
    "ls -la",
    "cat README.md",
    "grep -rl TODO src | head -5",
    "echo note >> notes.txt && chmod 640 notes.txt",
    "stat -c '%U %a' src/app.py",
)
"""Cycled through for every step measurement, the baselines included."""

RESET_TARGET_S = {"bwrap": 0.05, "docker": 0.5}
SNAPSHOT_TARGET_S = 0.05


class Timing(BaseModel):
    """Percentiles of one measured operation, in seconds."""

    n: int
    p50: float
    p95: float
    mean: float

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        ordered = sorted(samples)
        return cls(
            n=len(ordered),
            p50=statistics.median(ordered),
            p95=ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            mean=statistics.fmean(ordered),
        )


class BackendResult(BaseModel):
    backend: str
    step: Timing | None = None
    reset: Timing | None = None
    start_s: float | None = None
    error: str | None = None
    limits_enforced: dict[str, bool] = {}


class SandboxBenchResult(BaseModel):
    steps: int
    resets: int
    commands: list[str]
    bare_spawn: Timing
    docker_cli: Timing | None = None
    docker_cli_note: str | None = None
    backends: list[BackendResult]
    snapshot: Timing | None = None
    snapshot_files: int
    snapshot_where: str
    cpu_count: int | None


def episode_fixture(files: int = 20) -> Fixture:
    """A small project (~`files` files, a few owners and modes), like a task workspace."""
    entries = [
        FixtureEntry(path="README.md", text="# demo\nTODO: write docs\n"),
        FixtureEntry(path="notes.txt", text="notes\n", owner="alice", mode=0o600),
        FixtureEntry(path="src/app.py", text="print('hi')  # TODO\n", owner="bob"),
        FixtureEntry(path="bin", kind="dir", mode=0o750, group="developers"),
        FixtureEntry(path="bin/run.sh", text="#!/bin/sh\necho run\n", mode=0o755),
        FixtureEntry(path="current", kind="symlink", target="src"),
    ]
    for i in range(max(0, files - len(entries))):
        entries.append(FixtureEntry(path=f"data/part{i // 5}/f{i:03d}.csv", text=f"{i},x\n" * 20))
    return Fixture(entries=tuple(entries))


def snapshot_fixture(files: int = 1000) -> Fixture:
    return Fixture(
        entries=tuple(
            FixtureEntry(path=f"tree/d{i // 50:02d}/f{i:04d}.txt", text=f"line {i}\n" * 8)
            for i in range(files)
        )
    )


def run_sandbox_bench(
    backends: list[str],
    steps: int = 200,
    resets: int = 30,
    *,
    snapshot_files: int = 1000,
    snapshot_repeats: int = 20,
    progress: Callable[[str], None] | None = None,
) -> SandboxBenchResult:
    """Measure each backend (names as in `make_sandbox`); `local` runs with allow_unsafe."""
    say = progress or (lambda _msg: None)
    fixture = episode_fixture()
    say("bare spawn")
    bare = _time_bare_spawn(fixture, steps)
    results: list[BackendResult] = []
    docker_cli: Timing | None = None
    docker_note: str | None = "docker not requested" if "docker" not in backends else None
    snapshot: Timing | None = None
    snapshot_where = "host temporary directory"
    big = snapshot_fixture(snapshot_files)

    for name in backends:
        say(name)
        kwargs = {"allow_unsafe": True} if name == "local" else {}
        row = BackendResult(backend=name)
        sandbox: Sandbox | None = None
        try:
            sandbox = make_sandbox(name, **kwargs)
            t0 = time.perf_counter()
            sandbox.start()
            row.start_s = time.perf_counter() - t0
            row.limits_enforced = sandbox.info().limits_enforced
            row.reset = Timing.of(_time_resets(sandbox, fixture, resets))
            sandbox.reset(fixture)
            row.step = Timing.of(_time_steps(sandbox.exec, steps))
            if name == "docker":
                docker_cli, docker_note = _time_docker_cli(sandbox, fixture, steps)
            if snapshot is None and name != "local":
                sandbox.reset(big)
                snapshot = Timing.of(_time_snapshots(sandbox.snapshot, snapshot_repeats))
                snapshot_where = f"{name} workspace"
        except (SandboxError, RuntimeError, ValueError, OSError) as exc:
            row.error = f"{type(exc).__name__}: {exc}"
            if name == "docker":
                docker_note = "docker backend unavailable"
        finally:
            if sandbox is not None:
                sandbox.close()
        results.append(row)

    if snapshot is None:
        snapshot = _snapshot_on_host(big, snapshot_repeats)
    return SandboxBenchResult(
        steps=steps,
        resets=resets,
        commands=list(COMMANDS),
        bare_spawn=bare,
        docker_cli=docker_cli,
        docker_cli_note=docker_note,
        backends=results,
        snapshot=snapshot,
        snapshot_files=snapshot_files,
        snapshot_where=snapshot_where,
        cpu_count=os.cpu_count(),
    )


def _time_steps(run: Callable[[str], object], steps: int) -> list[float]:
    for command in COMMANDS:  # warm caches once
        run(command)
    samples = []
    for i in range(steps):
        t0 = time.perf_counter()
        run(COMMANDS[i % len(COMMANDS)])
        samples.append(time.perf_counter() - t0)
    return samples


def _time_resets(sandbox: Sandbox, fixture: Fixture, resets: int) -> list[float]:
    samples = []
    for _ in range(resets):
        sandbox.exec("echo dirty > dirty.txt; rm -f README.md")
        t0 = time.perf_counter()
        sandbox.reset(fixture)
        samples.append(time.perf_counter() - t0)
    return samples


def _time_snapshots(snap: Callable[[], object], repeats: int) -> list[float]:
    snap()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        snap()
        samples.append(time.perf_counter() - t0)
    return samples


def _time_bare_spawn(fixture: Fixture, steps: int) -> Timing:
    root = Path(tempfile.mkdtemp(prefix="agentbench-bench-"))
    try:
        materialize(fixture, root, Accounts.default())
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

        def run(command: str) -> object:
            return subprocess.run(
                ["bash", "-c", command], cwd=root, env=env, capture_output=True, check=False
            )

        return Timing.of(_time_steps(run, steps))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _time_docker_cli(
    sandbox: Sandbox, fixture: Fixture, steps: int
) -> tuple[Timing | None, str | None]:
    container = getattr(sandbox, "container_id", None)
    docker = shutil.which("docker")
    if container is None or docker is None:
        return None, "no docker CLI or no container id"
    sandbox.reset(fixture)
    container = getattr(sandbox, "container_id", None)

    def run(command: str) -> object:
        return subprocess.run(
            [docker, "exec", "-w", "/workspace", str(container), "bash", "-c", command],
            capture_output=True,
            check=False,
        )

    return Timing.of(_time_steps(run, steps)), None


def _snapshot_on_host(fixture: Fixture, repeats: int) -> Timing:
    root = Path(tempfile.mkdtemp(prefix="agentbench-bench-"))
    try:
        materialize(fixture, root, Accounts.default())
        accounts = Accounts.default()
        return Timing.of(_time_snapshots(lambda: take_snapshot(root, accounts), repeats))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return "[green]ok[/green]" if value <= target else "[red]over[/red]"


def render(result: SandboxBenchResult) -> Table:
    """A rich table: step and reset latency per backend, with ratios to the bare spawn."""
    bare = result.bare_spawn.p50
    table = Table(
        title=f"Sandbox latency ({result.steps} steps, {result.resets} resets per backend, "
        f"{result.cpu_count} CPUs)",
        caption=(
            f"Step target: <= 1x bare spawn p50. Reset targets: bwrap <= 50 ms, docker <= 0.5 s."
            f"\nSnapshot of {result.snapshot_files} files ({result.snapshot_where}): "
            f"p50 {_ms(result.snapshot.p50 if result.snapshot else None)} ms, "
            f"p95 {_ms(result.snapshot.p95 if result.snapshot else None)} ms "
            f"(target <= {SNAPSHOT_TARGET_S * 1000:.0f} ms: "
            f"{_verdict(result.snapshot.p50 if result.snapshot else None, SNAPSHOT_TARGET_S)})"
        ),
    )
    for column in ("what", "step p50 ms", "step p95 ms", "x bare", "step", "reset p50 ms"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_column("reset p95 ms", justify="right")
    table.add_column("reset", justify="right")
    table.add_column("note")

    def ratio(t: Timing | None) -> str:
        return "-" if t is None or bare <= 0 else f"{t.p50 / bare:.2f}"

    table.add_row(
        "bare spawn: bash -c", _ms(bare), _ms(result.bare_spawn.p95), "1.00", "", "", "", "", ""
    )
    if result.docker_cli is not None:
        t = result.docker_cli
        table.add_row("raw docker exec CLI", _ms(t.p50), _ms(t.p95), ratio(t), "", "", "", "", "")
    elif result.docker_cli_note:
        table.add_row("raw docker exec CLI", "-", "-", "-", "", "", "", "", result.docker_cli_note)
    for row in result.backends:
        if row.error:
            table.add_row(row.backend, "-", "-", "-", "", "-", "-", "", row.error[:80])
            continue
        step, reset = row.step, row.reset
        target = RESET_TARGET_S.get(row.backend)
        table.add_row(
            row.backend,
            _ms(step.p50 if step else None),
            _ms(step.p95 if step else None),
            ratio(step),
            _verdict(step.p50 if step else None, bare),
            _ms(reset.p50 if reset else None),
            _ms(reset.p95 if reset else None),
            _verdict(reset.p50 if reset else None, target),
            f"start {_ms(row.start_s)} ms",
        )
    return table
