"""The gymnasium environments: `agentbench/FileTool-v0` and `agentbench/Bash-v0`.

Importing this package (or `agentbench`) registers both ids with gymnasium; the env classes
themselves load only when `gymnasium.make` builds one. Third-party environments register
through the `agentbench.environments` entry point group (`load_plugins()`).
"""

from __future__ import annotations

from typing import Any

import gymnasium

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


register_envs()

__all__ = ["BASH_ID", "BUILTIN_ENVS", "FILETOOL_ID", "make", "register_envs", "system_prompt"]
