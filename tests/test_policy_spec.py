"""`policy_from_spec`: the `backend:name` specs `rollouts run --policy` takes, as library code
(it lived in the rollouts CLI module as `make_policy`)."""

from __future__ import annotations

import socket

import pytest

from agentbench.errors import ConfigError
from agentbench.policies.scripted import ScriptedPolicy
from agentbench.policies.spec import BACKENDS, PolicySpecError, policy_from_spec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_scripted_spec_is_the_scripted_policy() -> None:
    policy = policy_from_spec("scripted:deleter")
    try:
        assert isinstance(policy, ScriptedPolicy)
    finally:
        policy.close()


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("deleter", "a policy is written backend:name"),
        ("scripted:", "a policy is written backend:name"),
        ("nope:x", "unknown policy backend 'nope'"),
    ],
)
def test_a_bad_spec_is_a_config_error_naming_the_backends(spec: str, said: str) -> None:
    with pytest.raises(PolicySpecError) as info:
        policy_from_spec(spec)
    assert said in str(info.value)
    assert all(backend in str(info.value) for backend in BACKENDS.names())
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_an_http_spec_names_its_model_or_asks_the_server() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    policy = policy_from_spec(f"http:{url}#m")  # a named model: no request yet
    try:
        assert policy.backend == "http" and getattr(policy, "model", None) == "m"
    finally:
        policy.close()
    with pytest.raises(PolicySpecError, match="name the model: http:URL#MODEL"):
        policy_from_spec(f"http:{url}")
