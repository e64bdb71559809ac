"""The gymnasium environments: `agentbench/FileTool-v0` and `agentbench/Bash-v0`.

Importing this package (or `agentbench`) registers both ids with gymnasium, then loads the
third-party environments of the `agentbench.environments` entry point group (`load_plugins()`;
`AGENTBENCH_NO_PLUGINS=1` skips that); env classes load only when `gymnasium.make` builds one.
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

if TYPE_CHECKING:
    from agentbench.sandbox.self_check import SelfCheckReport

FILETOOL_ID = "agentbench/FileTool-v0"
BASH_ID = "agentbench/Bash-v0"
BUILTIN_ENVS = {
    FILETOOL_ID: "agentbench.envs.filetool:FileToolEnv",
    BASH_ID: "agentbench.envs.bash:BashEnv",
}


def register_envs() -> None:
    """Register the built-in ids with gymnasium (idempotent)."""
    for env_id, entry_point in BUILTIN_ENVS.items():
        if env_id not in gymnasium.registry:
            # No max_episode_steps: the env truncates itself at `max_steps` and scores that.
            gymnasium.register(id=env_id, entry_point=entry_point, nondeterministic=True)


def make(env_id: str, **kwargs: Any) -> gymnasium.Env[Any, Any]:
    """`gymnasium.make`, loading plugin environments first when `env_id` is not known yet."""
    if env_id not in gymnasium.registry:
        from agentbench.envs.plugins import load_plugins

        load_plugins()
    return gymnasium.make(env_id, **kwargs)


def system_prompt(env_id: str) -> str:
    """An environment's task-neutral system prompt (its tool documentation); starts no sandbox.

    Student datasets store the env id instead of this text (it names every tool, the delete
    tool included) and training rebuilds the system message from here.
    """
    env = make(env_id)
    try:
        return str(getattr(env.unwrapped, "system_prompt", ""))
    finally:
        env.close()


@functools.lru_cache(maxsize=64)
def _action_schema_text(env_id: str) -> str | None:
    if env_id not in gymnasium.registry:
        from agentbench.envs.plugins import load_plugins

        load_plugins()
    spec = gymnasium.spec(env_id)  # gymnasium's error for an unknown id
    entry = spec.entry_point
    env_class = load_env_creator(entry) if isinstance(entry, str) else entry
    method = getattr(env_class, "action_schema", None)
    schema = method() if callable(method) else None
    return None if schema is None else json.dumps(schema, sort_keys=True)


def action_schema(env_id: str) -> dict[str, Any] | None:
    """The JSON schema of an environment's well-formed actions (`AgentEnv.action_schema`), or
    None for free-text actions; starts nothing. Raises gymnasium's error for an unknown id."""
    text = _action_schema_text(env_id)
    return None if text is None else dict(json.loads(text))


def check_agent_env(env: Any, **kwargs: Any) -> SelfCheckReport:
    """Check an environment (a gymnasium id or an env) against what agentbench reads and
    return the report; see `agentbench.envs.check.check_agent_env` for the arguments, the
    checks and the errors."""
    from agentbench.envs.check import check_agent_env as check

    return check(env, **kwargs)


register_envs()
if os.environ.get("AGENTBENCH_NO_PLUGINS", "") in ("", "0"):
    # After the built-ins, so a plugin's module may import agentbench.envs.* while it loads; a
    # broken plugin is recorded (see `agentbench envs list`), never fatal to the import.
    from agentbench.envs.plugins import load_plugins as _load_plugins

    _load_plugins()

__all__ = [
    "BASH_ID",
    "BUILTIN_ENVS",
    "FILETOOL_ID",
    "action_schema",
    "check_agent_env",
    "make",
    "register_envs",
    "system_prompt",
]
