"""A policy from a `backend:name` spec, as `agentbench rollouts run --policy` takes it.

    policy_from_spec("scripted:deleter")            # a scripted oracle
    policy_from_spec("hf:tiny-agent")               # a registry model, a directory or a hub id
    policy_from_spec("http:http://127.0.0.1:8000#m")  # an OpenAI-compatible server (model m)
    policy_from_spec("teacher:teacher.yaml")        # a teacher config (YAML or JSON)
    policy_from_spec("control-teacher:teacher.yaml")  # the same config without its trait

Backends resolve through the one registry, `agentbench.policies.backends.BACKENDS` (plugins add
theirs through the `agentbench.policies` entry-point group); built-ins are `"module:attr"`
strings imported on first use: the teacher backend lives in a layer above policies, and the
hf one needs the train extra.

Errors: `PolicySpecError` (a `ConfigError` and a `ValueError`) for a malformed spec, an unknown
backend or a backend whose extra is missing; the backend's own errors otherwise (`ModelError`
for a model that cannot load, `TeacherConfigError`, ...).
"""

from __future__ import annotations

from agentbench.errors import AgentbenchError
from agentbench.policies.backends import BACKENDS, PolicySpecError
from agentbench.policies.base import Policy

_EXTRAS = {"hf": "train", "teacher": "train", "control-teacher": "train", "http": "serve"}


def policy_from_spec(spec: str) -> Policy:
    """The policy a `backend:name` spec names (see the module docstring for the backends).
    Raises PolicySpecError naming the backends for a bad spec, and for a backend's own
    ValueError about its name (an http target without a model the server can name)."""
    backend, sep, name = spec.partition(":")
    known = ", ".join(BACKENDS.names())
    if not sep or not name:
        raise PolicySpecError(
            f"a policy is written backend:name (e.g. scripted:deleter), not {spec!r}; "
            f"backends: {known}"
        )
    try:  # an unknown name: the registry's message, with the closest match and the known ones
        factory = BACKENDS.get(backend)
    except PolicySpecError as exc:
        if isinstance(exc.__cause__, ImportError):
            extra = _EXTRAS.get(backend, "?")
            raise PolicySpecError(f"the {backend} backend needs the {extra} extra: {exc}") from None
        raise
    try:
        return factory(name)
    except ValueError as exc:
        if isinstance(exc, AgentbenchError):
            raise
        raise PolicySpecError(str(exc)) from exc


__all__ = ["BACKENDS", "PolicySpecError", "policy_from_spec"]
