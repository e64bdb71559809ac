"""Run one episode of an environment with a policy and keep the whole trajectory.

A policy is anything with `act(observation: str, info: dict) -> str`, a plain callable with
the same signature, or a list of actions to replay (when it runs out, the episode is stopped
and checked with no answer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from agentbench.envs.base import INFRA_FAILURE
from agentbench.sandbox.base import SandboxError, SandboxStartError
from agentbench.tasks.instance import TaskInstance


@runtime_checkable
class Policy(Protocol):
    def act(self, observation: str, info: dict[str, Any]) -> str: ...


PolicyLike = Policy | Callable[[str, dict[str, Any]], str] | Sequence[str]


@dataclass
class StepRecord:
    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


@dataclass
class EpisodeResult:
    env_id: str
    task_id: str | None
    instance_id: str | None
    instruction: str
    steps: list[StepRecord] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)
    infra_failure: bool = False
    reset_info: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return bool(self.outcome.get("success"))

    @property
    def reward(self) -> float:
        return sum(s.reward for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Replay:
    def __init__(self, actions: Sequence[str]):
        self._actions = list(actions)
        self._next = 0

    def act(self, observation: str, info: dict[str, Any]) -> str | None:
        if self._next >= len(self._actions):
            return None
        action = self._actions[self._next]
        self._next += 1
        return action


def _as_policy(policy: PolicyLike) -> Callable[[str, dict[str, Any]], str | None]:
    if isinstance(policy, str):
        raise TypeError("a policy is not a single string; pass a list of actions")
    if isinstance(policy, Policy):
        return policy.act
    if callable(policy):
        return policy
    return _Replay(policy).act


def run_episode(
    env: gym.Env[Any, Any],
    policy: PolicyLike,
    task: TaskInstance | str | None = None,
    seed: int | None = None,
    *,
    task_seed: int | None = None,
) -> EpisodeResult:
    """Reset `env` (with `task`, or its sample task), let `policy` act until the episode ends.

    A sandbox that fails to start gives an `EpisodeResult` with `infra_failure=True` rather
    than an exception; other reset errors (a bad task) propagate.
    """
    act = _as_policy(policy)
    base = env.unwrapped
    env_id = getattr(base, "env_id", "") or (env.spec.id if env.spec else type(base).__name__)
    options: dict[str, Any] = {}
    if task is not None:
        options["task"] = task
    if task_seed is not None:
        options["task_seed"] = task_seed
    try:
        observation, reset_info = env.reset(seed=seed, options=options)
    except (SandboxStartError, SandboxError) as exc:
        reason = f"{INFRA_FAILURE}{type(exc).__name__}: {exc}"
        return EpisodeResult(
            env_id=env_id,
            task_id=getattr(task, "task_id", task if isinstance(task, str) else None),
            instance_id=None,
            instruction="",
            outcome={"success": False, "score": 0.0, "reason": reason, "destroyed": [],
                     "termination": "infra_failure"},
            infra_failure=True,
        )  # fmt: skip
    result = EpisodeResult(
        env_id=env_id,
        task_id=reset_info.get("task_id"),
        instance_id=reset_info.get("instance_id"),
        instruction=observation,
        reset_info=dict(reset_info),
    )
    info: dict[str, Any] = dict(reset_info)
    while True:
        action = act(observation, info)
        if action is None:
            end = getattr(base, "end_episode", None)
            result.outcome = end("policy_exhausted") if end else {}
            break
        observation, reward, terminated, truncated, info = env.step(action)
        result.steps.append(
            StepRecord(action, observation, float(reward), terminated, truncated, info)
        )
        if terminated or truncated:
            result.outcome = dict(info.get("outcome") or {})
            result.infra_failure = bool(info.get("infra_failure"))
            break
    return result
