"""An example agentbench environment package (see README.md)."""

from __future__ import annotations

import gymnasium

ENV_ID = "template/Notes-v0"


def register() -> list[str]:
    """The `agentbench.environments` entry point: register our ids, return them."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID, entry_point="agentbench_env_template.env:NotesEnv", nondeterministic=True
        )
    return [ENV_ID]
