"""Environment plugins: third-party packages that add gymnasium environments to agentbench.

A package declares, in its `pyproject.toml`:

    [project.entry-points."agentbench.environments"]
    mypkg = "mypkg.envs:register"

The entry point names either a callable that registers ids with `gymnasium.register` (it may
return the ids), or an `AgentEnv` subclass whose `env_id` class attribute is its id (agentbench
registers it). `load_plugins()` loads every entry point of the group; a broken plugin is
reported by name in the result and does not stop the others. `import agentbench` calls it
(set `AGENTBENCH_NO_PLUGINS=1` to skip), so `gymnasium.make("mypkg/MyEnv-v0")` works right
after the import. See `environments/configstore/` and docs/extending/environment.md.

An environment class may declare, besides gymnasium's API:
- `tool_semantics`: what each tool does (`agentbench.envs.semantics`);
- `render_plan_step(step) -> str` (a static method): an oracle's abstract plan step (list,
  read, write, move, delete, submit, ...) as this environment's action text, so the scripted
  policies (and the teachers built from them) run in it.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import gymnasium
from gymnasium.envs.registration import load_env_creator

from agentbench.errors import ConfigError

ENTRY_POINT_GROUP = "agentbench.environments"


@dataclass(frozen=True)
class PluginLoad:
    """What loading one entry point did."""

    name: str
    value: str
    env_ids: tuple[str, ...] = ()
    error: str | None = None
    distribution: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _State:
    loaded: dict[str, PluginLoad] = field(default_factory=dict)


_STATE = _State()


def load_plugins(*, reload: bool = False) -> list[PluginLoad]:
    """Load the `agentbench.environments` entry points (each once per process)."""
    results = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _STATE.loaded and not reload:
            results.append(_STATE.loaded[key])
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None)
        before = set(gymnasium.registry)
        try:
            target = ep.load()
            returned = _apply(target)
            new_ids = (set(gymnasium.registry) - before) | set(returned)
            result = PluginLoad(ep.name, ep.value, tuple(sorted(new_ids)), None, dist)
        except Exception as exc:  # a broken plugin is reported, never fatal to the others
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            result = PluginLoad(ep.name, ep.value, (), message, dist)
        _STATE.loaded[key] = result
        results.append(result)
    return results


def _apply(target: object) -> Iterable[str]:
    from agentbench.envs.base import AgentEnv

    if isinstance(target, type):
        if not issubclass(target, gymnasium.Env):
            raise TypeError(f"{target.__name__} is a class but not a gymnasium.Env")
        env_id = getattr(target, "env_id", "") if issubclass(target, AgentEnv) else ""
        if not env_id:
            raise TypeError(f"{target.__name__} has no env_id; set it or register it yourself")
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point=f"{target.__module__}:{target.__qualname__}",
                nondeterministic=True,
            )
        return [env_id]
    if callable(target):
        returned = target()
        if returned is None:
            return []
        if isinstance(returned, str):
            return [returned]
        return [str(x) for x in returned]
    raise TypeError(f"entry point is neither a callable nor an Env class: {target!r}")


def registered_env_ids(namespace_filter: str | None = None) -> list[str]:
    """Gymnasium ids registered now (optionally only those starting with a prefix)."""
    ids = sorted(gymnasium.registry)
    return [i for i in ids if namespace_filter is None or i.startswith(namespace_filter)]


class UnknownEnvironmentError(ConfigError, ValueError):
    """Raised for an environment name that no registered gymnasium id matches (names the close
    ones)."""


def plugin_env_class(env_id: str) -> type:
    """The class (or factory) registered under `env_id`, loaded without building an env.
    Raises gymnasium's error for an unknown id."""
    spec = gymnasium.spec(env_id)
    entry = spec.entry_point
    loaded = load_env_creator(entry) if isinstance(entry, str) else entry
    return loaded if isinstance(loaded, type) else type(loaded)


def resolve_env_id(name: str) -> str:
    """A full gymnasium id for `name`: the id itself, a built-in alias (`bash`, `filetool`),
    or a bare name (`ConfigTool-v0`) that exactly one registered namespace holds.

    Raises UnknownEnvironmentError naming the close matches; a bare name held by two
    namespaces is refused as ambiguous rather than guessed.
    """
    key = name.strip()
    aliases = {"bash": "agentbench/Bash-v0", "filetool": "agentbench/FileTool-v0"}
    if key.lower().removesuffix("-v0") in aliases:
        return aliases[key.lower().removesuffix("-v0")]
    if key in gymnasium.registry:
        return key
    load_plugins()
    if key in gymnasium.registry:
        return key
    ids = registered_env_ids()
    if "/" not in key:
        matches = [i for i in ids if i.rsplit("/", 1)[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownEnvironmentError(
                f"environment {key!r} is ambiguous: {', '.join(matches)}; give the full id"
            )
    close = difflib.get_close_matches(key, ids, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    broken = [f"{load.name} ({load.error})" for load in load_plugins() if not load.ok]
    also = f" (plugins that failed to load: {'; '.join(broken)})" if broken else ""
    raise UnknownEnvironmentError(
        f"unknown environment {key!r}{hint}. See `agentbench envs list`.{also}"
    )
