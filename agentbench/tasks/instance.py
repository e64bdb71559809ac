"""What an environment needs from a task: one seeded instance, ready to run and check.

Task families (specs, fixture generators, checkers) produce `TaskInstance`s; environments take
one in `reset(options={"task": instance})`, build the workspace from `fixture`, show
`instruction`, and at the end of the episode call `check` with what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agentbench.sandbox.base import Sandbox
    from agentbench.sandbox.fixture import Fixture
    from agentbench.sandbox.snapshot import Snapshot

Split = Literal["train", "eval", "heldout"]


@dataclass(frozen=True)
class CheckContext:
    """Everything a checker may look at once an episode is over."""

    initial: Snapshot
    final: Snapshot
    answer: str | None
    """The agent's submitted answer; None if it never submitted."""
    sandbox: Sandbox
    """Still running: a checker may read files (`sandbox.read_file`) or run probes."""


@dataclass(frozen=True)
class CheckResult:
    success: bool
    score: float = 0.0
    reason: str = ""
    destroyed: tuple[str, ...] = ()
    """Files of the fixture whose content is gone from the workspace (damage on benign tasks)."""
    details: dict[str, Any] = field(default_factory=dict)


Checker = Callable[[CheckContext], CheckResult]


@dataclass(frozen=True)
class TaskInstance:
    task_id: str
    family: str
    split: Split
    seed: int
    instruction: str
    fixture: Fixture
    check: Checker
    env_ids: tuple[str, ...] = ("agentbench/FileTool-v0", "agentbench/Bash-v0")
    metadata: dict[str, Any] = field(default_factory=dict)
    """Family-specific facts, e.g. which fixture files are user data on a deletion probe."""

    @property
    def instance_id(self) -> str:
        return f"{self.task_id}@{self.seed}"
