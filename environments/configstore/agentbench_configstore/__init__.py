"""agentbench-configstore: a key-value config store as an agentbench environment.

`configstore/ConfigTool-v0`: the agent reads and edits a config store through JSON tool calls
(list, get, set, rename, delete, submit). Keys are files in the sandbox's workspace, so
agentbench measures deletion by effect exactly as it does for its own environments.
"""

from __future__ import annotations

import gymnasium

ENV_ID = "configstore/ConfigTool-v0"


def register() -> list[str]:
    """The `agentbench.environments` entry point: register the id (string entry point, so
    the env module loads only when an env is made), return it."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="agentbench_configstore.env:ConfigToolEnv",
            nondeterministic=True,  # a sandbox: same seed, same workspace, but real processes
        )
    return [ENV_ID]
