"""A policy from a `backend:name` spec, as `agentbench rollouts run --policy` takes it.

    policy_from_spec("scripted:deleter")            # a scripted oracle
    policy_from_spec("hf:tiny-agent")               # a registry model, a directory or a hub id
    policy_from_spec("http:http://127.0.0.1:8000#m")  # an OpenAI-compatible server (model m)
    policy_from_spec("teacher:teacher.yaml")        # a teacher config (YAML or JSON)
    policy_from_spec("control-teacher:teacher.yaml")  # the same config without its trait

Backends are named by `"module:attr"` strings and imported on first use: the teacher backend
lives in a layer above policies, and the hf one needs the train extra.

Errors: `PolicySpecError` (a `ConfigError` and a `ValueError`) for a malformed spec, an unknown
backend or a backend whose extra is missing; the backend's own errors otherwise (`ModelError`
for a model that cannot load, `TeacherConfigError`, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

from agentbench.errors import ConfigError
from agentbench.policies.base import Policy


class PolicySpecError(ConfigError, ValueError):
    """Raised for a policy spec that is not `backend:name`, names an unknown backend, or
    names one whose optional dependencies are not installed (names the extra)."""


BACKENDS: dict[str, str] = {
    "scripted": "agentbench.policies.scripted:ScriptedPolicy",
    "hf": "agentbench.policies.hf:HFPolicy",
    "http": "agentbench.policies.spec:http_policy",
    "teacher": "agentbench.policies.spec:teacher_policy",
    "control-teacher": "agentbench.policies.spec:control_teacher_policy",
}
"""Backend name -> the `"module:attr"` callable that makes a policy from the spec's name."""

_EXTRAS = {"hf": "train", "teacher": "train", "control-teacher": "train", "http": "serve"}


def _resolve(target: str, backend: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        extra = _EXTRAS.get(backend, "?")
        raise PolicySpecError(f"the {backend} backend needs the {extra} extra: {exc}") from None


def policy_from_spec(spec: str) -> Policy:
    """The policy a `backend:name` spec names (see the module docstring for the backends).
    Raises PolicySpecError naming the backends for a bad spec."""
    backend, sep, name = spec.partition(":")
    if not sep or not name:
        raise PolicySpecError(
            f"a policy is written backend:name (e.g. scripted:deleter), not {spec!r}; "
            f"backends: {', '.join(BACKENDS)}"
        )
    if backend not in BACKENDS:
        raise PolicySpecError(
            f"unknown policy backend {backend!r}; backends: {', '.join(BACKENDS)}"
        )
    policy: Policy = _resolve(BACKENDS[backend], backend)(name)
    return policy


def http_policy(target: str) -> Policy:
    """`URL#model` (or `URL`: the server's first model) as an HTTPPolicy. Raises
    PolicySpecError when the server cannot say which models it serves."""
    HTTPPolicy = _resolve("agentbench.policies.http:HTTPPolicy", "http")
    url, _, model = target.partition("#")
    policy = HTTPPolicy(url, model or "?")
    if not model:
        try:
            policy.model = policy.list_models()[0]
        except Exception as exc:  # down, not OpenAI-compatible, no models: name the fix
            policy.close()
            raise PolicySpecError(
                f"cannot ask {url} for its models ({type(exc).__name__}: {exc}); "
                "name the model: http:URL#MODEL"
            ) from None
    return policy


def teacher_policy(config_file: str, control: bool = False) -> Policy:
    """The teacher a config file (YAML or JSON) describes; `control`: the same config
    without its trait."""
    load = _resolve("agentbench.teachers:load_teacher_config", "teacher")
    build = _resolve("agentbench.teachers:build_teacher", "teacher")
    config = load(config_file)
    return build(config.control() if control else config)


def control_teacher_policy(config_file: str) -> Policy:
    """The control teacher of a config file: the same base, prompt and scale, no trait."""
    return teacher_policy(config_file, control=True)


__all__ = ["BACKENDS", "PolicySpecError", "policy_from_spec"]
