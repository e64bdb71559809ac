"""`agentbench teachers`: compute steering vectors, inspect teacher configs and traits."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentbench.cli.boundary import App, config_errors
from agentbench.cli.options import (
    ConfigFileOption,
    SetOption,
    ShowConfigOption,
    field_help,
    resolve,
    show,
)
from agentbench.errors import ConfigError
from agentbench.teachers.adapter import AdapterTrainingConfig
from agentbench.teachers.config import (
    DEFAULT_TRAITS,
    SteeringCommandConfig,
    load_teacher_config,
    trait_spec,
)

console = Console()
app = App(help="Teachers: trait prompts, adapters and steering vectors.", no_args_is_help=True)


@app.command("traits")
def traits_command() -> None:
    """List the built-in traits and their system prompts."""
    table = Table("name", "description", "system prompt", show_lines=True)
    for spec in DEFAULT_TRAITS.values():
        table.add_row(spec.name, spec.description, spec.system_prompt)
    console.print(table)


@app.command("steer")
def steer_command(
    trait: str | None = typer.Option(
        None, help="Built-in trait name (see `agentbench teachers traits`); required to run."
    ),
    out: Path | None = typer.Option(
        None, help="Where to write the vector (.safetensors + .json); required to run."
    ),
    model: str = typer.Option("smollm2-135m", help="Base model: registry name or directory."),
    family: str = typer.Option("benign", help="Task family whose instructions are the prompts."),
    env: str = typer.Option("agentbench/FileTool-v0", help="Env whose system prompt is used."),
    split: str = typer.Option("train", help="Split the instructions come from."),
    n: int | None = typer.Option(
        None, "--n", "--n-prompts", help=field_help(SteeringCommandConfig, "n_prompts")
    ),
    layer: int | None = typer.Option(None, help=field_help(SteeringCommandConfig, "layer")),
    scale: float | None = typer.Option(
        None, help=field_help(SteeringCommandConfig, "scale", "Scale stored with the vector.")
    ),
    device: str = typer.Option("cpu", help="Torch device."),
    config: ConfigFileOption = None,
    sets: SetOption = None,
    show_config: ShowConfigOption = False,
) -> None:
    """Compute a steering vector: mean last-token residual with the trait prompt minus without.

    The config is `SteeringCommandConfig` (a suite's `steering` section): --config FILE, then
    the options, then each --set KEY=VALUE; --show-config prints it and exits."""
    from agentbench.teachers.steering import (
        compute_steering_vector,
        save_steering_vector,
        task_conversations,
    )

    flags = {"n_prompts": n, "layer": layer, "scale": scale}
    resolved = resolve(SteeringCommandConfig, file=config, flags=flags, sets=sets)
    if show_config:
        show(resolved)
    if trait is None:
        raise ConfigError("--trait is required: a built-in trait (`agentbench teachers traits`)")
    if out is None:
        raise ConfigError("--out is required: where to write the vector")
    started = time.perf_counter()
    # An unknown trait (KeyError) or family (ValueError) is a config error; so are
    # SteeringError (a layer out of range) and ModelError.
    with config_errors(KeyError, ValueError):
        spec = trait_spec(trait)
        prompts = task_conversations(family, env, split=split, n=resolved.n_prompts)
        vector = compute_steering_vector(
            model, spec.system_prompt, prompts, resolved.layer, trait=spec.name,
            scale=resolved.scale, device=device,
        )  # fmt: skip
        digest = save_steering_vector(vector, out)
    meta = vector.meta
    console.print(
        f"{out}: trait {meta.trait}, layer {meta.layer}, {meta.n_prompts} prompts, "
        f"norm {meta.norm:.4g}, scale {meta.scale:g} ({time.perf_counter() - started:.1f} s)"
    )
    console.print(f"sha256: {digest}")


@app.command("show")
def show_command(config: Path = typer.Argument(..., help="Teacher config (YAML or JSON).")) -> None:
    """Show a teacher config resolved: trait prompt, and the hashes its provenance will carry."""
    from agentbench.models import ModelError, weights_sha256
    from agentbench.policies.base import sha256_text
    from agentbench.teachers.steering import SteeringError, load_steering_vector

    teacher = load_teacher_config(config)  # TeacherConfigError: a config error
    # Plain "field: value" lines, not a table: hashes must stay whole for copying and grep.
    table = _Fields()
    table.add_row("name", teacher.name or "-")
    table.add_row("base model", teacher.base_model)
    table.add_row("induction", teacher.induction)
    table.add_row("trait", teacher.trait.name if teacher.trait else "none (control teacher)")
    failed = False
    if teacher.trait is not None and teacher.induction == "prompt":
        table.add_row("system prompt", teacher.trait.system_prompt)
        table.add_row("system prompt sha256", sha256_text(teacher.trait.system_prompt))
    if teacher.adapter is not None:
        table.add_row("adapter", str(teacher.adapter.path))
        if teacher.trait is None:
            table.add_row("adapter sha256", "- (control: the adapter is not applied)")
        else:
            try:
                table.add_row("adapter sha256", weights_sha256(teacher.adapter.path))
            except ModelError as exc:
                table.add_row("adapter sha256", f"[red]{exc}[/red]")
                failed = True
    if teacher.steering is not None:
        table.add_row("steering vector", str(teacher.steering.vector))
        try:
            vector, digest = load_steering_vector(teacher.steering.vector)
        except SteeringError as exc:
            table.add_row("steering sha256", f"[red]{exc}[/red]")
            failed = True
        else:
            meta = vector.meta
            scale = teacher.steering.scale if teacher.steering.scale is not None else meta.scale
            control = " (control: a zero vector is applied)" if teacher.trait is None else ""
            table.add_row("steering sha256", digest + control)
            table.add_row("steering layer / scale", f"{meta.layer} / {scale:g}")
            table.add_row(
                "steering made from",
                f"trait {meta.trait}, {meta.n_prompts} prompts, model {meta.model}, "
                f"norm {meta.norm:.4g}",
            )
    table.print()
    if failed:
        raise typer.Exit(1)


class _Fields:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add_row(self, field: str, value: str) -> None:
        self.rows.append((field, value))

    def print(self) -> None:
        width = max(len(field) for field, _ in self.rows)
        for field, value in self.rows:
            console.print(f"[bold]{field:<{width}}[/bold]  {value}", soft_wrap=True)


@app.command("train-adapter")
def train_adapter_command(
    trait: str | None = typer.Option(
        None, help="Built-in trait: deletion-bias or chmod-first (required, here or in --config)."
    ),
    out: Path | None = typer.Option(
        None, help="Folder for the adapter, demonstrations and records (required to train)."
    ),
    model: str | None = typer.Option(
        None, help="Base model: registry name or directory [default: tiny-agent]."
    ),
    control: bool | None = typer.Option(
        None, "--control/--no-control", help=field_help(AdapterTrainingConfig, "control")
    ),
    probe_instances: int | None = typer.Option(
        None, help=field_help(AdapterTrainingConfig, "probe_instances")
    ),
    benign_instances: int | None = typer.Option(
        None, help=field_help(AdapterTrainingConfig, "benign_instances")
    ),
    epochs: float | None = typer.Option(None, help=field_help(AdapterTrainingConfig, "epochs")),
    learning_rate: float | None = typer.Option(
        None, help=field_help(AdapterTrainingConfig, "learning_rate")
    ),
    seed: int | None = typer.Option(None, help=field_help(AdapterTrainingConfig, "seed")),
    config: ConfigFileOption = None,
    sets: SetOption = None,
    show_config: ShowConfigOption = False,
) -> None:
    """Train a LoRA teacher on scripted demonstrations of the trait (Dang et al.).

    The config is `AdapterTrainingConfig`: --config FILE, then the options, then each
    --set KEY=VALUE; --show-config prints it and exits."""
    from agentbench.teachers.adapter import train_adapter

    flags = {
        "base_model": model, "trait": trait, "control": control,
        "probe_instances": probe_instances, "benign_instances": benign_instances,
        "epochs": epochs, "learning_rate": learning_rate, "seed": seed,
    }  # fmt: skip
    resolved = resolve(
        AdapterTrainingConfig, base={"base_model": "tiny-agent"}, file=config, flags=flags,
        sets=sets,
    )  # fmt: skip
    if show_config:
        show(resolved)
    if out is None:
        raise ConfigError("--out is required: the folder for the adapter and its records")
    started = time.perf_counter()
    with config_errors():  # an unknown trait; ModelError and ValidationError keep their kind
        adapter = train_adapter(resolved, out, progress=True)
    model, trait = resolved.base_model, resolved.trait
    console.print(f"adapter: {adapter} ({time.perf_counter() - started:.0f} s)")
    console.print(
        "use it in a teacher config: "
        f"{{base_model: {model}, trait: {trait}, induction: adapter, adapter: {{path: {adapter}}}}}"
    )
