"""LoggedProgress: rows as plain lines when the console is not a terminal."""

from __future__ import annotations

import io
import time

from rich.console import Console
from rich.progress import MofNCompleteColumn, TextColumn

from agentbench.progress import LoggedProgress


def _progress(out: io.StringIO, every: float) -> LoggedProgress:
    console = Console(file=out, force_terminal=False, width=60)
    columns = (TextColumn("{task.description}"), MofNCompleteColumn())
    return LoggedProgress(*columns, console=console, log_every_s=every)


def test_logs_the_first_update_then_at_most_every_interval() -> None:
    out = io.StringIO()
    with _progress(out, every=0.2) as bar:
        task = bar.add_task("building", total=10)
        bar.update(task, completed=1)
        bar.advance(task)  # within the interval: not logged
        time.sleep(0.25)
        bar.advance(task)
        logged = out.getvalue().splitlines()
    assert [line.split() for line in logged] == [["building", "1/10"], ["building", "3/10"]]


def test_no_lines_when_disabled() -> None:
    out = io.StringIO()
    with _progress(out, every=0) as bar:
        task = bar.add_task("building", total=2)
        bar.update(task, completed=1)
        assert out.getvalue() == ""
