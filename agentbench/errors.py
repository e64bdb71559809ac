"""The root of agentbench's errors, and the three kinds a user can act on.

Every error agentbench raises on purpose derives from `AgentbenchError` through one kind:

- `ConfigError` (exit code 2): what the user asked for cannot be done as asked: an unknown
  name, a bad option or config file, a model or policy that cannot be used. Fix the input.
- `DataError` (exit code 3): a file or record the command reads is missing, malformed or
  fails a check (a trajectory file, a student dataset, results.json, a bundle). Fix or
  regenerate the data.
- `InfrastructureError` (exit code 4): the machinery failed, not the input: a sandbox that
  cannot start, a server that cannot be reached. Retrying may help.

Library classes keep their names and their `ValueError` / `RuntimeError` bases beside the
kind (multiple inheritance), so `except ValueError` callers keep working. The command line
maps each kind to a one-line message and its exit code (`agentbench.cli.boundary`); exit code
1 stays for a command that ran and found a failure (an episode, a check, a verification).

This is a bottom module: it imports nothing from agentbench.
"""

from __future__ import annotations

from typing import ClassVar


class AgentbenchError(Exception):
    """Root of the errors agentbench raises on purpose; its message is written for a user.

    Raised directly only where no kind fits (a stage that failed on a remote worker); catch
    it to handle every known error at once. Exit code 1."""

    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"


class ConfigError(AgentbenchError):
    """Raised when what was asked cannot be done as asked: an unknown name, an invalid option
    or config file, a model or policy that cannot be used. Exit code 2 (a usage error)."""

    exit_code: ClassVar[int] = 2
    kind: ClassVar[str] = "config error"


class DataError(AgentbenchError):
    """Raised when a file or record being read is missing, malformed or fails a check
    (trajectories, a student dataset, results.json, a bundle). Exit code 3."""

    exit_code: ClassVar[int] = 3
    kind: ClassVar[str] = "data error"


class InfrastructureError(AgentbenchError):
    """Raised when the machinery fails rather than the input: a sandbox that cannot start or
    broke, a root file system that cannot be built, a server that cannot be reached. Retrying
    (or fixing the host) may help. Exit code 4."""

    exit_code: ClassVar[int] = 4
    kind: ClassVar[str] = "infrastructure error"


KINDS: tuple[type[AgentbenchError], ...] = (
    AgentbenchError,
    ConfigError,
    DataError,
    InfrastructureError,
)
"""The root and its kinds, in the order the docs list them."""

__all__ = ["KINDS", "AgentbenchError", "ConfigError", "DataError", "InfrastructureError"]
