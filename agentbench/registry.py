"""One registry for every extension point: a name -> an object, or a `"module:attr"` string
loaded on first use.

    SANDBOXES: Registry[type[Sandbox]] = Registry(
        "sandbox backend", group="agentbench.sandboxes", base=Sandbox, expect="subclass",
        builtins={"bwrap": "agentbench.sandbox.bwrap:BwrapSandbox"},
    )
    SANDBOXES.get("bwrap")        # imports agentbench.sandbox.bwrap now, once
    SANDBOXES.get("bwarp")        # LookupError: ... 'bwarp'; did you mean 'bwrap'? (known: ...)

Entries come from two places. The registry's own table: the `builtins` given at construction
(mostly strings, so that naming a backend imports nothing: `import agentbench.policies.http`
does not load a model recipe) and `register()` calls (decorators such as
`@fixture_generator`). Then the installed distributions' entry points in the registry's
`group` (declared in pyproject.toml as `[project.entry-points."agentbench.<group>"]`), read
on first lookup. A name the table holds keeps its entry: a plugin cannot shadow a built-in.

Resolution checks what was loaded against `base` (`expect="subclass"`: a class deriving from
it; `"instance"`: an instance of it; `"callable"`: anything callable), so a wrong entry point
fails where it is named, with the target in the message, not deep inside a run.

Environments stay on gymnasium's registry (`gymnasium.make`), which already works this way.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator, MutableMapping
from importlib.metadata import entry_points
from typing import Any, Generic, Literal, TypeVar, cast, overload

from agentbench.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F")
D = TypeVar("D")
_MISSING: Any = object()

Expect = Literal["subclass", "instance", "callable", "any"]


class RegistryError(ConfigError, LookupError):
    """Raised when a name is not registered, a target cannot be imported, or what it names
    has the wrong kind. Callers with their own error type pass it as `error=`."""


def load_target(target: str) -> Any:
    """The object a `"module:attr"` (or `"module:attr.sub"`, or a bare `"module"`, as an entry
    point may name) string names. Raises ImportError/AttributeError (as the registry's error
    from `Registry.get`) when it is not there, ValueError when the string is malformed."""
    module_name, sep, attr = (part.strip() for part in target.partition(":"))
    if not module_name or (sep and not attr):
        raise ValueError(f"{target!r} is not a 'module:attr' reference")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(MutableMapping[str, T], Generic[T]):
    """Names -> objects of one kind, resolved lazily, with an entry-point group.

    It is a mapping (`name in reg`, `reg[name]`, `list(reg)`) so that tests can
    `monkeypatch.setitem` an entry; `reg[name]` resolves like `get` but raises KeyError for
    an unknown name, as a mapping does. `names()` never imports anything; `get()` imports
    the entry's module the first time and caches the object.
    """

    def __init__(
        self,
        kind: str,
        *,
        group: str | None = None,
        base: type | tuple[type, ...] | None = None,
        expect: Expect = "any",
        builtins: dict[str, str | T] | None = None,
        error: Callable[[str], Exception] = RegistryError,
    ) -> None:
        self.kind = kind
        """What an entry is, in words ("sandbox backend"), for messages."""
        self.group = group
        """The entry-point group plugins register in (None: built-ins only)."""
        self.base = base
        self.expect: Expect = expect
        self._error = error
        self._entries: dict[str, str | T] = dict(builtins or {})
        self._loaded: dict[str, T] = {}
        self._plugins: dict[str, str] | None = None
        self._lock = threading.RLock()

    # -- registration ----------------------------------------------------------------------

    def register(self, name: str, obj: str | T, *, replace: bool = False) -> None:
        """Add `name` -> an object or a `"module:attr"` string. Raises ValueError when the name
        is taken (unless `replace`) or empty."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty name, not {name!r}")
        with self._lock:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if not isinstance(obj, str):
                self._check(name, obj, where="registered object")
            self._entries[name] = obj
            self._loaded.pop(name, None)

    def decorator(self, name: str | None = None) -> Callable[[F], F]:
        """`@REG.decorator("name")` registers a function or class under `name` (default: its
        `__name__`) and returns it unchanged."""

        def wrap(obj: F) -> F:
            self.register(name or str(getattr(obj, "__name__", "")), cast(T, obj))
            return obj

        return wrap

    def unregister(self, name: str) -> None:
        """Remove a registered name (a no-op for one that is not there)."""
        with self._lock:
            self._entries.pop(name, None)
            self._loaded.pop(name, None)

    # -- lookup ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every known name, sorted: registered ones and entry points (nothing is imported)."""
        return sorted({*self._entries, *self._entry_points()})

    def target(self, name: str) -> str | None:
        """The `"module:attr"` string `name` resolves through, or None for an object registered
        directly. Raises like `get` for an unknown name."""
        value = self._raw(name)
        return value if isinstance(value, str) else None

    @overload
    def get(self, name: str) -> T: ...
    @overload
    def get(self, name: str, default: D) -> T | D: ...
    def get(self, name: str, default: Any = _MISSING) -> Any:
        """The object registered as `name`, imported on first use. Raises the registry's error
        (default `RegistryError`) for an unknown name, with the known ones and the closest
        match, or for a target that cannot be imported or has the wrong kind. With a
        `default`, an unknown name returns it instead (as `Mapping.get` does)."""
        if default is not _MISSING and name not in self:
            return default
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            value = self._raw(name)
            if isinstance(value, str):
                try:
                    obj = cast(T, load_target(value))
                except (ImportError, AttributeError, ValueError) as exc:
                    raise self._error(
                        f"{self.kind} {name!r} names {value!r}, which cannot be loaded: {exc}"
                    ) from exc
                self._check(name, obj, where=value)
            else:
                obj = value
            self._loaded[name] = obj
            return obj

    def unknown_message(self, name: str) -> str:
        """The message for an unknown name: the closest match (difflib) and the known names."""
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(known) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {listed})"

    def refresh(self) -> None:
        """Forget the entry points read so far (after installing a distribution)."""
        with self._lock:
            self._plugins = None
            for name in [n for n in self._loaded if n not in self._entries]:
                del self._loaded[name]

    # -- MutableMapping --------------------------------------------------------------------

    def __getitem__(self, name: str) -> T:
        # Mapping semantics (`in`, `monkeypatch.setitem`) need a KeyError.
        if name not in self:
            raise KeyError(name)
        return self.get(name)

    def __setitem__(self, name: str, obj: T) -> None:
        self.register(name, obj, replace=True)

    def __delitem__(self, name: str) -> None:
        if name not in self._entries:
            raise KeyError(name)
        self.unregister(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={self.names()})"

    # -- internals -------------------------------------------------------------------------

    def _raw(self, name: str) -> str | T:
        if name in self._entries:
            return self._entries[name]
        plugin = self._entry_points().get(name)
        if plugin is None:
            raise self._error(self.unknown_message(name))
        return plugin

    def _entry_points(self) -> dict[str, str]:
        if self.group is None:
            return {}
        if self._plugins is None:
            self._plugins = {ep.name: ep.value for ep in entry_points(group=self.group)}
        return self._plugins

    def _check(self, name: str, obj: object, *, where: str) -> None:
        base = self.base
        if self.expect == "callable":
            ok = callable(obj)
            wanted = "a callable"
        elif self.expect == "subclass" and base is not None:
            ok = isinstance(obj, type) and issubclass(obj, base)
            wanted = f"a subclass of {_names(base)}"
        elif self.expect == "instance" and base is not None:
            ok = isinstance(obj, base)
            wanted = f"an instance of {_names(base)}"
        else:
            return
        if not ok:
            raise self._error(f"{self.kind} {name!r} ({where}) is {obj!r}, not {wanted}")


def _names(base: type | tuple[type, ...]) -> str:
    types = base if isinstance(base, tuple) else (base,)
    return " or ".join(t.__name__ for t in types)


__all__ = ["Registry", "RegistryError", "load_target"]
