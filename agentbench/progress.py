"""Progress bars that still report when nobody watches a terminal.

rich's `Progress` redraws in place on a terminal, but writes nothing to a log file or a CI
console until it stops: a 30-minute model build under `nohup` looks hung. `LoggedProgress` is a
`rich.progress.Progress` that, when its console is not a terminal, also prints each task's row
as a plain line on its first update and then at most every `log_every_s` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, ProgressColumn, TaskID


class LoggedProgress(Progress):
    """`rich.progress.Progress` that logs a line per task every `log_every_s` off a terminal."""

    def __init__(
        self, *columns: str | ProgressColumn, log_every_s: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(*columns, **kwargs)
        self.log_every_s = log_every_s
        self._logged_at: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        if self.console.is_terminal or self.log_every_s <= 0:
            return
        now = time.monotonic()
        with self._lock:
            last = self._logged_at.get(task_id)
            if last is not None and now - last < self.log_every_s:
                return
            self._logged_at[task_id] = now
            task = self._tasks.get(task_id)
        if task is not None:
            self.console.print(self.make_tasks_table([task]))


def step_bar(label: str, fields: str, **kwargs: Any) -> LoggedProgress:
    """The project's bar over counted steps: `label`, the bar, done/total, `fields` (a
    `TextColumn` template such as "loss {task.fields[loss]:.3f}"), elapsed and remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return LoggedProgress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        **kwargs,
    )
