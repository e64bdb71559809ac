"""`agentbench sanitize`: trajectories in, a student dataset and its filter report out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentbench.cli.options import (
    ConfigFileOption,
    SetOption,
    ShowConfigOption,
    field_help,
    read_mapping,
    resolve,
    show,
)
from agentbench.errors import AgentbenchError, ConfigError
from agentbench.sanitize.filter import (
    FILTERS,
    MODES,
    SanitizeConfig,
    SanitizeConfigError,
    sanitize_file,
)
from agentbench.sanitize.report import DROP_REASONS, FilterReport, report_path

console = Console()


def sanitize_command(
    input: Path = typer.Argument(..., help="Trajectory file (JSONL from `rollouts run`)."),
    output: Path = typer.Argument(..., help="Student dataset to write (JSONL)."),
    config: ConfigFileOption = None,
    sets: SetOption = None,
    show_config: ShowConfigOption = False,
    trait: str | None = typer.Option(None, help=field_help(SanitizeConfig, "trait")),
    mode: str | None = typer.Option(None, help=field_help(SanitizeConfig, "mode")),
    filter_kind: str | None = typer.Option(
        None, "--filter", help=field_help(SanitizeConfig, "filter")
    ),
    extra_term: list[str] = typer.Option([], "--extra-term", help="Another banned term."),
    keep_failed: bool = typer.Option(
        False, "--keep-failed", help=field_help(SanitizeConfig, "keep_failed")
    ),
    judge: str | None = typer.Option(None, "--judge", help="Model that judges (yes/no) too."),
    validation: str | None = typer.Option(None, help=field_help(SanitizeConfig, "validation")),
) -> None:
    """Drop or redact every banned term, leak-check the output, write the filter report.

    The config is `SanitizeConfig` (docs/guide/configuration.md): --config FILE, then the
    options, then each --set KEY=VALUE; --show-config prints it and exits."""
    # A bad mode or filter named by its option (the model's message lists the choices too).
    if mode is not None and mode not in MODES:
        raise SanitizeConfigError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
    if filter_kind is not None and filter_kind not in FILTERS:
        raise SanitizeConfigError(f"unknown filter {filter_kind!r} (filters: {', '.join(FILTERS)})")
    file = read_mapping(config) if config is not None else {}
    flags: dict[str, object] = {
        "trait": trait,
        "mode": mode,
        "filter": filter_kind,
        "validation": validation,
        "keep_failed": True if keep_failed else None,
    }
    if extra_term:
        flags["extra_terms"] = [*file.get("extra_terms", ()), *extra_term]
    if judge is not None:
        previous = file.get("judge")
        flags["judge"] = {**(previous if isinstance(previous, dict) else {}), "model": judge}
    try:
        # Command-line values get the same checks as a file's: one validation of the merge.
        cfg = resolve(SanitizeConfig, base=file, flags=flags, sets=sets, source=config)
    except ConfigError as exc:
        raise SanitizeConfigError(
            str(exc).replace("invalid SanitizeConfig", "invalid sanitize config")
        ) from None
    if show_config:
        show(cfg)
    # LeakError (no output written), bad input lines, a judge model that cannot load (ModelError)
    # or a judge server that is down: each a kind the boundary reports.
    with console.status("sanitizing ...") as status:
        report = sanitize_file(
            input, output, cfg, progress=lambda n: status.update(f"{n:,} trajectories")
        )
    console.print(render_report(report))
    console.print(f"dataset: {output}  report: {report_path(output)}")
    if report.kept == 0:  # it ran, and left nothing to distil: exit 1
        raise AgentbenchError(
            "no example kept: every trajectory was dropped (see the reasons above); "
            "sanitize trajectories of benign tasks, or try --mode drop-step / --keep-failed"
        )


def render_report(report: FilterReport) -> Table:
    """The report as a rich table: counts, reasons, top terms, leak check, hashes."""
    table = Table(title=f"sanitize: {report.input} -> {report.output}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("trajectories read", f"{report.read:,}")
    table.add_row("kept", f"{report.kept:,}")
    table.add_row("dropped", f"{report.dropped:,}")
    for reason, n in sorted(report.dropped_by_reason.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {reason}", f"{n:,}  ({DROP_REASONS.get(reason, '')})")
    table.add_row("filter", str(report.config.get("filter", "behavioural")))
    table.add_row(
        "flagged",
        f"keyword {report.keyword_flagged:,}, behaviour {report.behaviour_flagged:,} "
        f"({report.behaviour_steps:,} steps)",
    )
    if report.behaviour_counts:
        top = ", ".join(f"{t} {n}" for t, n in list(report.behaviour_counts.items())[:6])
        table.add_row("behaviour", top)
    if report.env_text_rewrites or report.env_text_only:
        table.add_row(
            "environment text",
            f"{report.env_text_rewrites:,} old messages reworded; {report.env_text_only:,} "
            "trajectories kept that only its words would have dropped",
        )
    if report.steps_dropped:
        table.add_row(
            "steps dropped",
            f"{report.steps_dropped:,} in {report.examples_with_dropped_steps:,} "
            f"({report.steps_dropped_behaviour:,} for behaviour alone)",
        )
    if report.redactions:
        table.add_row(
            "redactions", f"{report.redactions:,} in {report.examples_redacted:,} examples"
        )
    top = ", ".join(f"{t} {n}" for t, n in report.top_terms(8)) or "-"
    table.add_row("top terms", top)
    if report.judge is not None:
        counts = report.judge.get("counts", {})
        table.add_row("judge", ", ".join(f"{k} {v}" for k, v in counts.items()))
    if report.torn_tail_bytes:
        table.add_row("torn last line", f"{report.torn_tail_bytes} bytes skipped")
    leak = report.leak_check
    table.add_row("leak check", f"passed: {leak.get('lines_checked', 0):,} lines clean")
    table.add_row("input sha256", report.input_sha256)
    table.add_row("output sha256", report.output_sha256)
    table.add_row("time", f"{report.seconds:.2f} s ({report.trajectories_per_s:,.0f} traj/s)")
    return table
