"""Policies: what chooses an agent's actions (scripted oracles, local models, servers)."""

from __future__ import annotations

from agentbench.policies.base import (
    Generation,
    Message,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
    sha256_text,
    turn_seed,
)

__all__ = [
    "Generation",
    "Message",
    "Policy",
    "PolicyProvenance",
    "SamplingParams",
    "Turn",
    "sha256_text",
    "turn_seed",
]
