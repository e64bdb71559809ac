"""agentbench: a benchmark harness for subliminal learning in agentic tool use."""

from __future__ import annotations

__version__ = "0.1.0"
