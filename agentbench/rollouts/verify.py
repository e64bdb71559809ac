"""Run a scripted policy on task instances and check the outcome: the solvability sweep.

It sits above the environments and the scripted oracles (`agentbench.policies.oracles`)
it runs, hence in the rollouts layer rather than in `agentbench.tasks`.

Two ways to play a plan:
- `run_in_env`: through the real environment (`gymnasium.make(env_id)`, `reset(options=
  {"task": instance})`, one `step` per action); the outcome is `info["outcome"]`.
- `run_direct`: straight in a sandbox, for Bash plans (and FileTool plans replayed as the
  equivalent shell commands); used where the environments are not importable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentbench.policies.oracles import BASH, make_policy, render
from agentbench.sandbox.base import Sandbox
from agentbench.tasks.instance import CheckContext, TaskInstance


@dataclass
class Outcome:
    instance_id: str
    env_id: str
    policy: str
    success: bool
    reason: str
    destroyed: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def envs_available() -> bool:
    try:
        import gymnasium

        import agentbench.envs  # noqa: F401  (registers the environments)

        gymnasium.spec("agentbench/Bash-v0")
        gymnasium.spec("agentbench/FileTool-v0")
    except Exception:
        return False
    return True


def run_direct(sandbox: Sandbox, instance: TaskInstance, env_id: str, policy: str) -> Outcome:
    """Reset `sandbox` to the fixture, run the plan's shell form, call the checker."""
    steps = make_policy(policy).steps(instance)
    make_policy(policy).plan(instance, env_id)  # raises PlanError if the env cannot run it
    sandbox.reset(instance.fixture)
    initial = sandbox.snapshot()
    answer: str | None = None
    failed: list[str] = []
    for step, action in zip(steps, render(steps, BASH), strict=True):
        if step["op"] == "submit":
            answer = str(step.get("answer", ""))
            break
        result = sandbox.exec(action)
        if not result.ok:
            failed.append(action)
    ctx = CheckContext(initial=initial, final=sandbox.snapshot(), answer=answer, sandbox=sandbox)
    check = instance.check(ctx)
    return Outcome(
        instance.instance_id,
        env_id,
        policy,
        check.success,
        check.reason,
        check.destroyed,
        {**check.details, "failed_actions": failed},
    )


def run_in_env(env: Any, instance: TaskInstance, env_id: str, policy: str) -> Outcome:
    """Play the plan through a gymnasium env made for `env_id`; read `info["outcome"]`."""
    from agentbench.envs.runner import run_episode

    actions = make_policy(policy).plan(instance, env_id)
    episode = run_episode(env, actions, task=instance)
    outcome = episode.outcome or {}
    invalid = [
        (step.action[:120], step.info.get("error"))
        for step in episode.steps
        if not step.info.get("action_valid", True)
    ]
    return Outcome(
        instance.instance_id,
        env_id,
        policy,
        bool(outcome.get("success")),
        str(outcome.get("reason", "the episode did not end")),
        tuple(outcome.get("destroyed", ())),
        {
            **dict(outcome.get("details", {})),
            "invalid_actions": invalid,
            "infra_failure": episode.infra_failure,
            "intents": [step.info.get("intent", {}) for step in episode.steps],
            "first_permission": outcome.get("first_permission"),
            "lost_by_effect": outcome.get("lost_by_effect"),
        },
    )


def sweep(
    instances: Iterable[TaskInstance],
    policies: Iterable[str] = ("reference",),
    *,
    backend: str = "bwrap",
    use_envs: bool | None = None,
) -> Iterator[Outcome]:
    """Every (instance, env, policy) outcome, reusing one sandbox or env per env id."""
    from agentbench.sandbox import make_sandbox

    use_envs = envs_available() if use_envs is None else use_envs
    policies = list(policies)
    envs: dict[str, Any] = {}
    kwargs = {"allow_unsafe": True} if backend == "local" else {}
    sandbox = make_sandbox(backend, **kwargs)
    try:
        sandbox.start()
        for instance in instances:
            for env_id in instance.env_ids:
                for policy in policies:
                    if not use_envs:
                        yield run_direct(sandbox, instance, env_id, policy)
                        continue
                    if env_id not in envs:
                        import gymnasium

                        import agentbench.envs  # noqa: F401  (registers the ids)

                        # Both envs share the one sandbox: each reset rebuilds its workspace.
                        envs[env_id] = gymnasium.make(env_id, sandbox=sandbox, max_steps=60)
                    yield run_in_env(envs[env_id], instance, env_id, policy)
    finally:
        for env in envs.values():
            env.close()
        sandbox.close()
