"""`agentbench report RUN_DIR`: rebuild a run's report from its results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="The run folder (holds results.json).")],
) -> None:
    """Rebuild report.md, report.html and the plots from RUN_DIR/results.json."""
    from agentbench.experiments.report import rebuild_report

    console = Console(soft_wrap=True)  # paths stay whole on one line each
    paths = rebuild_report(run_dir)  # ReportError: a data error
    for name, path in paths.items():
        console.print(f"{escape(name)}: {escape(str(path))}")
