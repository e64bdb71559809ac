"""Policy backends by name: `backend:name` specs (`scripted:deleter`, `hf:tiny-agent`,
`http:URL#model`, `teacher:FILE`, `control-teacher:FILE`) resolve through `BACKENDS`.

Each entry is a factory taking the part after the colon and returning a `Policy`. Built-ins
are `"module:attr"` strings, so naming a backend loads nothing (the teacher factories live in
`agentbench.teachers`, a layer above: a string is not an import). Plugins add backends through
the `agentbench.policies` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable

from agentbench.policies.base import Policy
from agentbench.registry import Registry

PolicyFactory = Callable[[str], Policy]

BACKENDS: Registry[PolicyFactory] = Registry(
    "policy backend",
    group="agentbench.policies",
    expect="callable",
    error=ValueError,
    builtins={
        "scripted": "agentbench.policies.scripted:ScriptedPolicy",
        "hf": "agentbench.policies.hf:HFPolicy",
        "http": "agentbench.policies.http:policy_for_target",
        "teacher": "agentbench.teachers:teacher_policy",
        "control-teacher": "agentbench.teachers:control_teacher_policy",
    },
)
"""Backend name -> factory(name) -> Policy."""


def policy_from_backend(spec: str) -> Policy:
    """A policy from `backend:name`. Raises ValueError for a malformed spec or an unknown
    backend (naming the known ones and the closest match), or from the backend's factory."""
    backend, sep, name = spec.partition(":")
    if not sep or not name:
        raise ValueError(
            f"a policy is written backend:name (e.g. scripted:deleter), not {spec!r}; "
            f"backends: {', '.join(BACKENDS.names())}"
        )
    return BACKENDS.get(backend)(name)


__all__ = ["BACKENDS", "PolicyFactory", "policy_from_backend"]
