"""What a plugin environment's tools do, declared by the environment (tool semantics).

Intent classification (`classify_tool_call`), and through the recorded intent the sanitizer's
behavioural filter and the metrics, must know that a plugin's `delete_key` deletes and that
its `get` only reads. An environment says so with a class attribute:

    class ConfigToolEnv(AgentEnv):
        env_id = "configstore/ConfigTool-v0"
        tool_semantics = {"list": "read_only", "get": "read_only", "set": "writes",
                          "rename": "moves", "delete": "deletes", "submit": "submit"}

and calls `classify_tool_call(tool)` in its `classify`. The table of every registered plugin
environment is read on the first classification (its class is loaded then, not at
`import agentbench`), or registered explicitly with `register_tool_semantics`.

Kinds (`KINDS`): `read_only` (not a substantive action), `writes`, `moves`, `copies`,
`archives` (each counts as writing), `deletes` (deletion intent), `changes_permissions`
(counted as chmod for the chmod-first rate), `submit`. Tool names are one namespace: two
environments may declare the same name only with the same kind, and FileTool's own tool names
cannot be redeclared (either raises `ToolSemanticsError`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from agentbench.envs.classify import Intent
from agentbench.errors import ConfigError

ToolKind = Literal[
    "read_only", "writes", "moves", "copies", "archives", "deletes", "changes_permissions",
    "submit",
]  # fmt: skip
KINDS: tuple[str, ...] = get_args(ToolKind)
BUILTIN_TOOLS = frozenset(
    ("list_dir", "read_file", "search_files", "file_info", "write_file", "append_file",
     "make_dir", "move_path", "copy_path", "archive_path", "set_mode", "delete_path", "submit")
)  # fmt: skip
"""FileTool-v0's tools: their meaning is agentbench's own and cannot be redeclared."""


class ToolSemanticsError(ConfigError, ValueError):
    """Raised for a malformed or conflicting tool-semantics declaration (names the env and the
    tool)."""


_TABLE: dict[str, tuple[ToolKind, str]] = {}
"""tool name -> (kind, env id that declared it)."""
_LOCK = threading.Lock()
_scanned = False


def register_tool_semantics(env_id: str, table: Mapping[str, str]) -> None:
    """Declare what each of `env_id`'s tools does. Raises ToolSemanticsError for an unknown
    kind, a built-in tool name, or a name another environment declared with another kind."""
    if not isinstance(table, Mapping):
        raise ToolSemanticsError(f"{env_id}: tool_semantics must be a mapping tool -> kind")
    with _LOCK:
        for tool, kind in table.items():
            if kind not in KINDS:
                raise ToolSemanticsError(
                    f"{env_id}: tool {tool!r} has unknown kind {kind!r}; kinds: {', '.join(KINDS)}"
                )
            if tool in BUILTIN_TOOLS and tool != "submit":
                raise ToolSemanticsError(
                    f"{env_id}: tool {tool!r} is a FileTool tool; its meaning is fixed"
                )
            known = _TABLE.get(tool)
            if known is not None and known[0] != kind:
                raise ToolSemanticsError(
                    f"{env_id}: tool {tool!r} is declared {kind!r}, but {known[1]} declared "
                    f"it {known[0]!r}; give the tool another name"
                )
            if tool != "submit":
                _TABLE[tool] = (kind, env_id)  # type: ignore[assignment]


def declared_kind(tool: str) -> str | None:
    """The declared kind of a plugin tool, or None (a built-in or undeclared tool)."""
    if tool in BUILTIN_TOOLS:
        return None
    _scan_plugins()
    found = _TABLE.get(tool)
    return found[0] if found else None


def apply_declared(tool: str) -> Intent | None:
    """The hook `classify_tool_call` calls: the intent of a declared plugin tool, or None."""
    kind = declared_kind(tool)
    if kind is None:
        return None
    intent = DeclaredIntent(commands=[tool], declared_read_only=kind == "read_only")
    if kind in ("writes", "moves", "copies", "archives"):
        intent.writes = True
    elif kind == "deletes":
        intent._delete(tool)
    elif kind == "changes_permissions":
        intent.permission.append("chmod")
    return intent


@dataclass
class DeclaredIntent(Intent):
    """An Intent whose read-only flag comes from the declaration (the command-name table of
    `classify` knows only shell commands and FileTool's tools)."""

    declared_read_only: bool = False

    @property
    def read_only(self) -> bool:
        return self.declared_read_only and not (self.writes or self.deletion or self.permission)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.pop("declared_read_only", None)
        return data


def _scan_plugins() -> None:
    """Register the `tool_semantics` of every plugin environment class (once per process)."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    from agentbench.envs.plugins import load_plugins, plugin_env_class

    for load in load_plugins():
        for env_id in load.env_ids:
            try:
                env_class = plugin_env_class(env_id)
            except Exception:  # a broken plugin shows up in `envs list`
                continue
            table = getattr(env_class, "tool_semantics", None)
            if table:
                register_tool_semantics(env_id, table)


def semantics_table() -> dict[str, str]:
    """Every declared tool and its kind (for `envs list` and tests)."""
    _scan_plugins()
    return {tool: kind for tool, (kind, _) in sorted(_TABLE.items())}
