"""`agentbench traits`: the trait experiments of Cloud et al. (today: the MLP control)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentbench.cli.boundary import App, validation_message
from agentbench.errors import ConfigError

# The table is wider than the 80 columns rich assumes when output is not a terminal (CI logs).
console = Console(width=max(Console().width, 150))
app = App(
    help="Trait experiments of Cloud et al.: the MLP auxiliary-logit control.",
    no_args_is_help=True,
)


@app.callback()
def traits() -> None:
    """Trait experiments of Cloud et al. (a group, so that `mlp` stays a subcommand)."""


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


@app.command("mlp")
def mlp_command(
    config: Path | None = typer.Option(
        None, "--config", help="MLPConfig YAML/JSON (its mapping or an `mlp:` section)."
    ),
    m: list[int] | None = typer.Option(
        None, "--m", help="Auxiliary logits; repeat for a grid (default: the config's)."
    ),
    loss: list[str] | None = typer.Option(
        None, "--loss", help="Student loss kl|mse; repeatable (default: the config's)."
    ),
    init: list[str] | None = typer.Option(
        None, "--init", help="Student init same|different; repeatable (default: both)."
    ),
    seeds: int | None = typer.Option(
        None, "--seeds", min=1, help="Use seeds 0..N-1 (default: the config's seed list)."
    ),
    out: Path = typer.Option(Path("runs/traits-mlp"), "--out", help="Output folder."),
) -> None:
    """Train digit teachers with m auxiliary logits, distil students on noise, test on digits.

    Writes OUT/results.json (cells, per-seed runs, provenance) and OUT/mlp.png.
    """
    from pydantic import ValidationError

    from agentbench.provenance import file_sha256
    from agentbench.traits.mlp import (
        MLPConfig,
        MLPSweep,
        load_mlp_config,
        run_mlp_grid,
        write_grid_results,
    )

    cfg = MLPConfig() if config is None else load_mlp_config(config)  # MLPConfigError
    try:  # the overrides, by the config's own rules, so that errors name the option
        sweep = MLPSweep.model_validate(
            {"m": m or None, "loss": loss or None, "init": init or None}
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid option (--m/--loss/--init): {validation_message(exc)}") from exc
    seed_list = list(range(seeds)) if seeds is not None else None
    started = time.perf_counter()
    try:  # MLPConfigError (e.g. scikit-learn is not installed) keeps its kind
        result = run_mlp_grid(cfg, sweep.m, sweep.loss, sweep.init, seed_list)
    except ValueError as exc:  # a grid the config rules refuse (e.g. --m 1 with --loss kl)
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid option: {exc}") from exc
    if config is not None:
        result.provenance["config_file"] = {
            "path": str(config),
            "sha256": file_sha256(config),
        }
    json_path, png_path = write_grid_results(result, out)

    table = Table(
        "cell",
        "n seeds",
        "mean acc %",
        "95% t CI",
        "pooled Wilson CI",
        "teacher %",
        "init %",
        title="MLP auxiliary-logit control (student test accuracy on digits)",
    )
    for cell in result.cells:
        table.add_row(
            cell.name,
            str(len(cell.seeds)),
            _percent(cell.mean),
            f"[{_percent(cell.t_ci.low)}, {_percent(cell.t_ci.high)}]",
            f"[{_percent(cell.wilson_ci.low)}, {_percent(cell.wilson_ci.high)}] (n={cell.n})",
            _percent(cell.teacher_mean),
            _percent(cell.init_mean),
        )
    console.print(table)
    console.print(f"wrote {json_path} and {png_path} ({time.perf_counter() - started:.1f} s)")
