"""Policy backends by name: `backend:name` specs (`scripted:deleter`, `hf:tiny-agent`,
`http:URL#model`, `teacher:FILE`, `control-teacher:FILE`) resolve through `BACKENDS`.

Each entry is a factory taking the part after the colon and returning a `Policy`. Built-ins
are `"module:attr"` strings, so naming a backend loads nothing (the teacher factories live in
`agentbench.teachers`, a layer above: a string is not an import). Plugins add backends through
the `agentbench.policies` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable

from agentbench.errors import ConfigError
from agentbench.policies.base import Policy
from agentbench.registry import Registry


class PolicySpecError(ConfigError, ValueError):
    """Raised for a policy spec that is not `backend:name`, names an unknown backend, or
    names one whose optional dependencies are not installed (names the extra)."""


PolicyFactory = Callable[[str], Policy]

BACKENDS: Registry[PolicyFactory] = Registry(
    "policy backend",
    group="agentbench.policies",
    expect="callable",
    error=PolicySpecError,
    builtins={
        "scripted": "agentbench.policies.scripted:ScriptedPolicy",
        "hf": "agentbench.policies.hf:HFPolicy",
        "http": "agentbench.policies.http:policy_for_target",
        "teacher": "agentbench.teachers:teacher_policy",
        "control-teacher": "agentbench.teachers:control_teacher_policy",
    },
)
"""Backend name -> factory(name) -> Policy."""


__all__ = ["BACKENDS", "PolicyFactory", "PolicySpecError"]
