"""The command line's one error boundary: a known error becomes one line on stderr and its
kind's exit code; anything else is a bug and keeps its traceback.

Known errors are `agentbench.errors.AgentbenchError` (its kind gives the exit code: config 2,
data 3, infrastructure 4, the root 1), pydantic's `ValidationError` (options or a config that
do not validate: a config error) and `OSError` (a path that cannot be read or written: a data
error; any other OS failure, e.g. a port in use: an infrastructure error). Every command group
is an `App`, whose commands and groups run inside the boundary, so a command raises and never
prints its own error; it may raise a kind with a better message than the library's
(`ConfigError(f"--policy: {exc}")`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from agentbench.errors import AgentbenchError, ConfigError, DataError, InfrastructureError

F = TypeVar("F", bound=Callable[..., Any])

_PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
"""OS errors about a path the user named: data errors. Other OS errors: infrastructure."""


def known_error(exc: BaseException) -> tuple[type[AgentbenchError], str] | None:
    """The kind and the one-line message of a known error; None for anything else (a bug)."""
    if isinstance(exc, AgentbenchError):
        return type(exc), str(exc) or type(exc).__name__
    if isinstance(exc, ValidationError):
        return ConfigError, validation_message(exc)
    if isinstance(exc, OSError):
        kind = DataError if isinstance(exc, _PATH_ERRORS) else InfrastructureError
        return kind, os_error_message(exc)
    return None


def exit_code(exc: BaseException) -> int | None:
    """The exit code the command line gives `exc`; None when it is not a known error."""
    known = known_error(exc)
    return None if known is None else known[0].exit_code


def validation_message(exc: ValidationError) -> str:
    """pydantic's errors on one line: `invalid Model: field.sub: message; other: message`."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
    return f"invalid {exc.title}: {'; '.join(parts)}"


def os_error_message(exc: OSError) -> str:
    """`OSError` without its `[Errno N]` prefix, naming the path(s) it is about."""
    reason = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def report(kind: type[AgentbenchError], message: str) -> None:
    """Write `<kind>: <message>` to stderr (plain text: messages hold paths and brackets)."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    err.print(Text(f"{kind.kind}: ", style="bold red") + Text(message))


def fail(exc: BaseException) -> NoReturn:
    """Report a known error and exit with its code; re-raise anything else unchanged."""
    known = known_error(exc)
    if known is None:
        raise exc
    report(*known)
    raise typer.Exit(known[0].exit_code) from None


class _Boundary:
    """`invoke` inside the boundary, for click commands and groups alike."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except (AgentbenchError, ValidationError, OSError) as exc:
            fail(exc)


class BoundaryCommand(_Boundary, TyperCommand):
    """A typer command whose known errors end at the boundary (message, exit code)."""


class BoundaryGroup(_Boundary, TyperGroup):
    """A typer group whose callback and subcommands run inside the boundary."""


class App(typer.Typer):
    """`typer.Typer` whose groups and commands run inside the error boundary. Every command
    group of the CLI is one (tests invoke groups alone, so each carries the boundary)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", BoundaryGroup)
        kwargs.setdefault("pretty_exceptions_show_locals", False)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        return super().command(name, cls=cls or BoundaryCommand, **kwargs)


@contextmanager
def errors_as(kind: type[AgentbenchError], *types: type[Exception]) -> Iterator[None]:
    """Inside, a library exception of one of `types` that has no kind of its own becomes a
    `kind` with the same message (the library raised it on purpose: the call site knows what
    it means). Errors that already have a kind keep it, and so does pydantic's
    ValidationError (a ValueError the boundary words itself)."""
    try:
        yield
    except (AgentbenchError, ValidationError):
        raise
    except types as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise kind(str(message)) from exc


def config_errors(*types: type[Exception]) -> AbstractContextManager[None]:
    """Inside, a plain `ValueError` (or one of `types`) from the library is about the user's
    input (an unknown name, a bad option value): a `ConfigError`."""
    return errors_as(ConfigError, *(types or (ValueError,)))
