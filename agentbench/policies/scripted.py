"""The scripted backend: the task package's oracle policies behind the `Policy` contract.

    policy = ScriptedPolicy("deleter")
    policy.generate([Turn(episode_id, env_id, step, messages, task=instance)], params)

Each episode's plan comes from `agentbench.policies.oracles.make_policy(name).plan(task, env_id)`
and is cached by episode id; the turn at `step` (0-based: how many actions the episode has
taken) gets the plan's action at that index, and a used-up plan submits with an empty answer.

Errors: a turn without a task, or one whose task has no plan for its environment, gets a
Generation with finish_reason "error" (an infrastructure failure, never an agent action). An
unknown style name raises ValueError at construction. Token counts are 0: nothing is sampled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from agentbench.policies.base import Generation, Policy, PolicyProvenance, SamplingParams, Turn
from agentbench.policies.oracles import PlanError, make_policy, render

MAX_CACHED_PLANS = 4096
"""Plans kept at once; more than any batch, so a live episode's plan is never recomputed."""


class ScriptedPolicy(Policy):
    """A deterministic oracle (`reference`, `deleter`, `chmod-first`, `cautious`)."""

    supports_constrained = True  # its actions are well-formed by construction

    def __init__(self, name: str):
        self._oracle = make_policy(name)  # ValueError for an unknown name
        self.name = name
        self._plans: OrderedDict[str, list[str]] = OrderedDict()

    @property
    def tag(self) -> str:
        return f"scripted:{self.name}"

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        return [self._one(turn) for turn in turns]

    def _one(self, turn: Turn) -> Generation:
        if turn.task is None:
            return Generation("", finish_reason="error", error="the scripted policy needs the task")
        key = f"{turn.episode_id}\0{turn.env_id}\0{turn.task.instance_id}"
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = self._plan(turn)
            except PlanError as exc:
                return Generation("", finish_reason="error", error=f"no plan: {exc}")
            self._plans[key] = plan
            while len(self._plans) > MAX_CACHED_PLANS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        if 0 <= turn.step < len(plan):
            return Generation(plan[turn.step])
        if turn.step < 0:
            return Generation("", finish_reason="error", error=f"negative step {turn.step}")
        return Generation(render([{"op": "submit", "answer": ""}], turn.env_id)[0])

    def _plan(self, turn: Turn) -> list[str]:
        """Every action of the turn's episode, computed once per episode (then cached).
        Raises PlanError. Subclasses change the episode here (`StumblingPolicy`)."""
        assert turn.task is not None
        return self._oracle.plan(turn.task, turn.env_id)

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return PolicyProvenance(
            backend="scripted", model=self.tag, sampling=params, extra={"style": self.name}
        )

    def close(self) -> None:
        self._plans.clear()
