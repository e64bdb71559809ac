"""`agentbench distill DATA [OUT]`: distill a student from a sanitized student dataset.

Mounted by `agentbench.cli` as `app.command("distill", ...)(distill_command)`; `app` here
holds the same command alone (for tests).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from agentbench.cli.boundary import App
from agentbench.cli.options import (
    ConfigFileOption,
    SetOption,
    ShowConfigOption,
    field_help,
    resolve,
    show,
)
from agentbench.distill.config import DistillConfig, DistillConfigError
from agentbench.errors import ConfigError, DataError

console = Console()
app = App(help="Distil a student from a student dataset.", no_args_is_help=True)


def distill_command(
    data: Path = typer.Argument(..., help="Student dataset (JSONL, from `agentbench sanitize`)."),
    out: Path | None = typer.Argument(
        None, help="Output directory (default: content-addressed under the agentbench cache)."
    ),
    config: ConfigFileOption = None,
    sets: SetOption = None,
    show_config: ShowConfigOption = False,
    mode: str | None = typer.Option(None, help=field_help(DistillConfig, "mode")),
    student: str | None = typer.Option(
        None, help=field_help(DistillConfig, "student", "Student base: registry name or directory.")
    ),
    teacher: str | None = typer.Option(None, help="logit-kl teacher: registry name or directory."),
    teacher_adapter: Path | None = typer.Option(None, help="PEFT adapter merged into the teacher."),
    epochs: float | None = typer.Option(None, help=field_help(DistillConfig, "epochs")),
    lr: float | None = typer.Option(None, "--lr", help=field_help(DistillConfig, "learning_rate")),
    seed: int | None = typer.Option(
        None, help=field_help(DistillConfig, "seed", "Seed: data order and adapter init.")
    ),
    batch_size: int | None = typer.Option(None, help=field_help(DistillConfig, "batch_size")),
    max_length: int | None = typer.Option(None, help=field_help(DistillConfig, "max_length")),
    max_steps: int | None = typer.Option(None, help=field_help(DistillConfig, "max_steps")),
    threads: int | None = typer.Option(
        None, help=field_help(DistillConfig, "torch_threads", "torch threads.")
    ),
    gradient_checkpointing: bool | None = typer.Option(
        None,
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help=field_help(DistillConfig, "gradient_checkpointing"),
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a finished run matches."),
    progress: bool = typer.Option(True, "--progress/--quiet", help="Show a progress bar."),
) -> None:
    """Distil a student (SFT LoRA, full SFT or masked logit KL); prints a summary table.

    The config is `DistillConfig` (docs/guide/configuration.md): --config FILE, then the
    options, then each --set KEY=VALUE; --show-config prints it and exits."""
    from agentbench.distill.manifest import MANIFEST, distill, read_manifest

    flags: dict[str, Any] = {
        "mode": mode,
        "student": student,
        "epochs": epochs,
        "learning_rate": lr,
        "seed": seed,
        "batch_size": batch_size,
        "max_length": max_length,
        "max_steps": max_steps,
        "torch_threads": threads,
        "gradient_checkpointing": gradient_checkpointing,
    }
    if teacher is not None:
        flags["teacher"] = {"model": teacher, "adapter": teacher_adapter}
    elif teacher_adapter is not None:
        raise ConfigError("--teacher-adapter needs --teacher")
    try:
        cfg = resolve(DistillConfig, file=config, flags=flags, sets=sets)
    except ConfigError as exc:  # the distill kind, so that callers can tell it apart
        raise DistillConfigError(str(exc)) from None
    if config is not None:  # relative paths in a file are relative to the file
        cfg = cfg.with_base(config.resolve().parent)
    if show_config:
        show(cfg)
    started = time.time()
    # DistillConfigError, DistillDataError and DistillError carry their kinds to the boundary.
    where = distill(cfg, data, out, force=force, progress=progress)
    manifest = read_manifest(where)
    if manifest is None:  # distill always writes one; a vanished directory is not ours
        raise DataError(f"{where} has no readable {MANIFEST}")
    reused = (where / MANIFEST).stat().st_mtime < started
    console.print(summary_table(manifest.model_dump(), where, reused))


def summary_table(manifest: dict[str, Any], where: Path, reused: bool) -> Table:
    """The run at a glance: data, model, steps, loss, throughput, output."""
    data, train, output = manifest["data"], manifest["train"], manifest["output"]
    teacher = manifest.get("teacher") or {}
    table = Table("", "", title="distillation" + (" (reused finished run)" if reused else ""))

    def loss(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, int | float) else "-"

    dropped = data["dropped_too_long"] + data["dropped_no_targets"]
    rows = [
        ("mode", manifest["mode"]),
        ("student", manifest["student"]["model"]),
        ("teacher", str(teacher.get("model", "-"))),
        ("examples", f"{data['kept']} kept of {data['examples']} ({dropped} dropped, "
                     f"{data['truncated']} truncated; max_length {data['max_length']})"),
        ("steps / epochs", f"{train['steps']} / {train['epochs']:g}"),
        ("loss first -> last", f"{loss(train['loss_first'])} -> {loss(train['loss_last'])}"),
        ("tokens seen (targets)", f"{train['tokens_seen']} ({train['target_tokens_seen']})"),
        ("tokens/s", f"{train['tokens_per_s']:.0f}"),
        ("train wall s", f"{train['wall_s']:.1f}"),
        ("output", f"{output['kind']} sha256 {output['weights_sha256'][:16]}"),
        ("directory", str(where)),
    ]  # fmt: skip
    banned = manifest.get("banned")
    if banned:
        rows.insert(
            3, ("banned tokens", f"{banned['count']} everywhere, {banned['continuation_rules']} "
                                 f"in context ({len(banned['unmaskable_terms'])} terms unmaskable)")
        )  # fmt: skip
    for key, value in rows:
        table.add_row(key, value)
    return table


app.command("distill")(distill_command)
