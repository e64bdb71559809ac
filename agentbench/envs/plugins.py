"""Environment plugins: third-party packages that add gymnasium environments to agentbench.

A package declares, in its `pyproject.toml`:

    [project.entry-points."agentbench.environments"]
    mypkg = "mypkg.envs:register"

The entry point names either a callable that registers ids with `gymnasium.register` (it may
return the ids), or an `AgentEnv` subclass whose `env_id` class attribute is its id (agentbench
registers it). `load_plugins()` loads every entry point of the group; a broken plugin is
reported by name in the result and does not stop the others. See `environments/template/`.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import gymnasium

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
