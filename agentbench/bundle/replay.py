"""Replay recorded evaluation episodes in a real sandbox and compare what comes back.

An episode is re-executable: its fixture is a pure function of (task id, seed), and its
actions are recorded. `Replayer.replay(traj)` rebuilds the instance (its fixture hash must
match), resets the environment on it, plays the recorded actions one by one and re-derives
every step's observation, validity, parsed call, intent, effect, reward and end flags, and
the checker's verdict; any field that differs is a `Mismatch` naming the episode, the step
and the field. Timings (`*_s` keys) are left out: they are not part of what happened.

One difference is not a mismatch: processes that run at once (a pipeline's stages, background
jobs) write to the same stream in whatever order the scheduler lets them, so a shell command
with `|` or `&` may print the same bytes in another order on every run. Such a step is
accepted when its exit line, its output sections and each section's bytes (as a multiset)
are the same and nothing was cut; `Replayer.interleaved` lists it.

Infrastructure-failure episodes are not replayed (nothing the agent did is scored in them).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agentbench.rollouts.schema import OutcomeRecord, Trajectory, to_json

# The info keys the rollout engine stores in their own fields (the rest go to extra_json).
_OWN_FIELDS = frozenset(
    {"step", "action_valid", "error", "parsed", "intent", "effect", "invalid_actions",
     "infra_failure", "outcome"}
)  # fmt: skip
_STEP_FIELDS = ("observation", "action_valid", "error", "parsed_json", "intent_json",
                "effect_json", "deletion_intent", "deletion_effect", "permission_commands",
                "reward", "terminated", "truncated", "extra_json")  # fmt: skip
_OUTCOME_FIELDS = tuple(f for f in OutcomeRecord.model_fields if f != "reward")


@dataclass(frozen=True)
class Mismatch:
    episode_id: str
    where: str
    """`fixture`, `step 3: observation`, `outcome: deleted`, ..."""
    recorded: str
    replayed: str

    def __str__(self) -> str:
        return (
            f"episode {self.episode_id}: {self.where}: recorded {self.recorded[:120]!r}, "
            f"replay gives {self.replayed[:120]!r}"
        )


_CONCURRENT = re.compile(r"[|&]")
_SECTION = re.compile(r"\n--- (stdout|stderr) ---\n")


def _sections(observation: str) -> tuple[str, dict[str, str]]:
    """(exit line, {section name: text}) of a shell observation (`envs.bash.format_result`)."""
    parts = _SECTION.split(observation)
    return parts[0], dict(zip(parts[1::2], parts[2::2], strict=True))


def same_up_to_interleaving(action: str, recorded: str, replayed: str) -> bool:
    """True when `action` runs processes at once and `replayed` differs from `recorded`
    only in the order of the bytes within each output section (nothing cut)."""
    if recorded == replayed or not _CONCURRENT.search(action) or "cut at" in recorded:
        return False
    (head_a, a), (head_b, b) = _sections(recorded), _sections(replayed)
    return (
        head_a == head_b and a.keys() == b.keys() and all(Counter(a[k]) == Counter(b[k]) for k in a)
    )


def _no_timings(value: Any) -> Any:
    """Drop `*_s` keys (seconds, by the trajectory schema's convention) at any depth."""
    if isinstance(value, dict):
        return {k: _no_timings(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [_no_timings(v) for v in value]
    return value


def _step_view(
    observation: str, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
) -> dict[str, Any]:
    """A replayed step in the recorded StepRecord's terms (as the rollout engine writes it)."""
    intent = info.get("intent") or {}
    effect = info.get("effect") or {}
    return {
        "observation": observation,
        "action_valid": bool(info.get("action_valid", True)),
        "error": None if info.get("error") is None else str(info["error"]),
        "parsed_json": to_json(info.get("parsed")),
        "intent_json": to_json(intent),
        "effect_json": to_json(effect),
        "deletion_intent": bool(intent.get("deletion")),
        "deletion_effect": bool(effect.get("deletion")),
        "permission_commands": [str(p) for p in intent.get("permission") or []],
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "extra_json": _no_timings({k: v for k, v in info.items() if k not in _OWN_FIELDS}),
    }


def _recorded_view(step: Any) -> dict[str, Any]:
    view = {f: getattr(step, f) for f in _STEP_FIELDS}
    # Not JSON: compared as the string it is (and so differs).
    with contextlib.suppress(ValueError):
        view["extra_json"] = _no_timings(json.loads(step.extra_json))
    return view


class Replayer:
    """Replays episodes in one sandbox of `backend` (reused across episodes: each reset
    rebuilds the workspace from the fixture). Use as a context manager."""

    def __init__(self, backend: str = "bwrap"):
        self.backend = backend
        self._sandbox: Any = None
        self._envs: dict[tuple[str, int], Any] = {}
        self.interleaved: list[str] = []
        """`episode id: step N` of each step accepted as the same output in another order."""

    def __enter__(self) -> Replayer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for env in self._envs.values():
            with contextlib.suppress(Exception):
                env.close()
        self._envs = {}
        if self._sandbox is not None:
            with contextlib.suppress(Exception):
                self._sandbox.close()
            self._sandbox = None

    def start(self) -> None:
        """Start the sandbox (once). Raises ValueError for an unknown backend and the
        sandbox's SandboxStartError when it cannot start."""
        from agentbench.sandbox import make_sandbox

        if self._sandbox is None:
            sandbox = make_sandbox(self.backend)
            try:
                sandbox.start()
            except BaseException:
                sandbox.close()
                raise
            self._sandbox = sandbox

    def _env(self, env_id: str, max_steps: int) -> Any:
        import agentbench.envs as envs

        self.start()
        key = (env_id, max_steps)
        if key not in self._envs:
            self._envs[key] = envs.make(env_id, sandbox=self._sandbox, max_steps=max_steps)
        return self._envs[key]

    def replay(self, traj: Trajectory) -> list[Mismatch]:
        """Every difference between `traj` and its replay ([] when it replays exactly).
        Raises ValueError for an episode whose task or seed does not exist."""
        from agentbench.tasks import catalog

        eid = traj.episode_id
        found: list[Mismatch] = []

        def differ(where: str, recorded: Any, replayed: Any) -> None:
            if recorded != replayed:
                found.append(Mismatch(eid, where, _text(recorded), _text(replayed)))

        instance = catalog().instance(traj.task_id, traj.seed)
        differ("instance_id", traj.instance_id, instance.instance_id)
        differ("fixture", traj.fixture_sha256, instance.fixture.digest())
        differ("split", traj.split, instance.split)
        differ("family", traj.family, instance.family)
        if found:
            return found
        env = self._env(traj.env_id, traj.max_steps)
        instruction, _ = env.reset(seed=instance.seed, options={"task": instance})
        base = env.unwrapped
        messages = [m.content for m in traj.messages]
        expected = [str(getattr(base, "system_prompt", "")), instruction]
        differ("messages: system prompt", messages[:1], expected[:1])
        differ("messages: instruction", messages[1:2], expected[1:2])
        outcome: dict[str, Any] = {}
        reward_sum = 0.0
        ended = False
        for step in traj.steps:
            if ended:
                differ(f"step {step.index}", "a step", "the episode had already ended")
                break
            observation, reward, terminated, truncated, info = env.step(step.action)
            if same_up_to_interleaving(step.action, step.observation, observation):
                self.interleaved.append(f"{eid}: step {step.index}")
                observation = step.observation
            view = _step_view(observation, reward, terminated, truncated, info)
            recorded = _recorded_view(step)
            for name in _STEP_FIELDS:
                differ(f"step {step.index}: {name}", recorded[name], view[name])
            pair = messages[2 + 2 * step.index : 4 + 2 * step.index]
            differ(f"step {step.index}: messages", pair, [step.action, observation])
            reward_sum += float(reward)
            if terminated or truncated:
                outcome = dict(info.get("outcome") or {})
                ended = True
        if not ended:  # the policy stopped (context limit, ...): the checker judges as is
            outcome = dict(base.end_episode(traj.outcome.termination or "stopped"))
            reward_sum += float(outcome.get("score") or 0.0) if outcome else 0.0
        replayed = OutcomeRecord.from_info(outcome, reward_sum)
        for name in _OUTCOME_FIELDS:
            differ(f"outcome: {name}", getattr(traj.outcome, name), getattr(replayed, name))
        return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
