"""agentbench: a benchmark harness for subliminal learning in agentic tool use."""

from __future__ import annotations

# Registers agentbench/FileTool-v0 and agentbench/Bash-v0 with gymnasium (string entry points
# only: the environment modules load when an env is made).
from agentbench import envs as _envs  # noqa: F401
from agentbench._version import __version__ as __version__
