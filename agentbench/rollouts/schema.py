"""The trajectory record: one JSON line per finished episode.

Every field has a fixed shape so that a file of trajectories loads as a table with HF
`datasets` (`load_dataset("json", data_files=path)`): what varies from step to step or from
backend to backend (a parsed tool call, the intent and effect classification, a checker's
details, a sandbox's limits, a policy's extra provenance) is stored as a JSON string in a
`*_json` field, with accessors that decode it. `Trajectory.model_validate(row)` reads back a
row that came through `datasets` (missing optional values there are None).

Bump `SCHEMA_VERSION` on any change that old readers would misread.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentbench.chat import Message
from agentbench.policies.base import PolicyProvenance, SamplingParams

SCHEMA_VERSION = 1


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON (stable bytes for equal values); odd objects become strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyRecord(_Record):
    """`PolicyProvenance` flattened to a fixed shape."""

    backend: str
    model: str
    tag: str
    """The policy tag inside episode ids (`scripted:deleter`, `hf:model-1a2b3c4d`)."""
    weights_sha256: str | None = None
    revision: str | None = None
    adapter_sha256: str | None = None
    steering_vector_sha256: str | None = None
    system_prompt_sha256: str | None = None
    extra_json: str = "{}"

    @classmethod
    def from_provenance(cls, prov: PolicyProvenance, tag: str) -> PolicyRecord:
        return cls(
            backend=prov.backend,
            model=prov.model,
            tag=tag,
            weights_sha256=prov.weights_sha256,
            revision=prov.revision,
            adapter_sha256=prov.adapter_sha256,
            steering_vector_sha256=prov.steering_vector_sha256,
            system_prompt_sha256=prov.system_prompt_sha256,
            extra_json=to_json(prov.extra),
        )


class SamplingRecord(_Record):
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int | None = None
    """The batch seed; each turn's seed is `turn_seed(seed, episode_id, step)`."""
    stop: list[str] = Field(default_factory=list)
    constrained: bool = False
    """Constrained decoding (`SamplingParams.constrained`); absent in records from before
    the option (read as False)."""

    @field_validator("constrained", mode="before")
    @classmethod
    def _missing_is_off(cls, value: Any) -> Any:
        return False if value is None else value  # `datasets` fills an absent column with None

    @classmethod
    def from_params(cls, params: SamplingParams) -> SamplingRecord:
        return cls(
            temperature=params.temperature,
            top_p=params.top_p,
            max_new_tokens=params.max_new_tokens,
            seed=params.seed,
            stop=list(params.stop),
            constrained=params.constrained,
        )

    def to_params(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            stop=tuple(self.stop or ()),
            constrained=self.constrained,
        )


class SandboxRecord(_Record):
    backend: str
    image: str | None = None
    limits_json: str = "{}"
    """The `SandboxConfig` limits in force."""
    enforced_json: str = "{}"
    """Which limits the backend really enforces (`SandboxInfo.limits_enforced`)."""


class StepRecord(_Record):
    """One action and what came of it."""

    index: int
    """0-based; the `Turn.step` the action was generated for."""
    action: str
    observation: str
    action_valid: bool
    error: str | None = None
    parsed_json: str = "null"
    """The parsed call (`info["parsed"]`) as JSON; "null" for a malformed action."""
    intent_json: str = "{}"
    effect_json: str = "{}"
    deletion_intent: bool = False
    deletion_effect: bool = False
    permission_commands: list[str] = Field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    token_ids: list[int] = Field(default_factory=list)
    """The action's token ids as the backend sampled them, where it reports them (vLLM):
    logit distillation needs the sampled ids, not a re-tokenization of the text."""
    logprobs: list[float] = Field(default_factory=list)
    """The sampled tokens' log-probabilities, beside `token_ids` (empty when not reported)."""
    generate_s: float = 0.0
    """This step's share of the batched `generate` call (the call's time / batch size)."""
    env_step_s: float = 0.0
    extra_json: str = "{}"
    """Other `info` keys an environment adds (e.g. a tool's exit code)."""

    def parsed(self) -> Any:
        return json.loads(self.parsed_json)

    def intent(self) -> dict[str, Any]:
        return dict(json.loads(self.intent_json))

    def effect(self) -> dict[str, Any]:
        return dict(json.loads(self.effect_json))


class OutcomeRecord(_Record):
    """The task's verdict and the episode's deletion / permission summary."""

    success: bool = False
    score: float = 0.0
    reward: float = 0.0
    """Sum of the step rewards."""
    termination: str = ""
    """submitted, max_steps, context_limit (the conversation outgrew the model's context),
    stopped, infra_failure, ..."""
    reason: str = ""
    answer: str | None = None
    steps: int = 0
    invalid_actions: int = 0
    destroyed: list[str] = Field(default_factory=list)
    lost_by_effect: list[str] = Field(default_factory=list)
    deletion_intent_steps: int = 0
    deletion_effect_steps: int = 0
    deleted: bool = False
    """Deletion by effect: with `loss_definition` 2, initial-fixture content was lost at some
    step or by the end (`lost_by_effect` is not empty); in older records (1), some step's
    effect deleted or emptied any file."""
    lost_removed: list[str] = Field(default_factory=list)
    """Of `lost_by_effect`: files whose content was lost by removing or emptying them."""
    lost_overwritten: list[str] = Field(default_factory=list)
    """Of `lost_by_effect`: files whose content was lost under other content written over it."""
    loss_definition: int = 1
    """Which definition `deleted` / `lost_*` follow (see `deleted`); absent in old records."""
    permission_commands: list[str] = Field(default_factory=list)
    """Permission actions in order, as the chmod-first rate counts them: by intent where the
    command could run (not behind the missing `sudo`, not "command not found"), else by the
    step's mode/owner/ACL effect. Old records (`loss_definition` 1): by intent alone."""
    permission_intent_commands: list[str] = Field(default_factory=list)
    """Every permission command the classifier saw, in order (empty in old records)."""
    first_permission: str | None = None
    details_json: str = "{}"

    @field_validator(
        "lost_removed",
        "lost_overwritten",
        "loss_definition",
        "permission_intent_commands",
        mode="before",
    )
    @classmethod
    def _missing_is_old(cls, value: Any, info: Any) -> Any:
        if value is not None:  # `datasets` fills a column absent from old rows with None
            return value
        return 1 if info.field_name == "loss_definition" else []

    @classmethod
    def from_info(cls, outcome: dict[str, Any], reward: float) -> OutcomeRecord:
        def strings(key: str) -> list[str]:
            return [str(v) for v in outcome.get(key) or []]

        first = outcome.get("first_permission")
        effect_steps = int(outcome.get("deletion_effect_steps") or 0)
        definition = int(outcome.get("loss_definition") or 1)
        lost = strings("lost_by_effect")
        return cls(
            success=bool(outcome.get("success")),
            score=float(outcome.get("score") or 0.0),
            reward=reward,
            termination=str(outcome.get("termination") or ""),
            reason=str(outcome.get("reason") or ""),
            answer=None if outcome.get("answer") is None else str(outcome["answer"]),
            steps=int(outcome.get("steps") or 0),
            invalid_actions=int(outcome.get("invalid_actions") or 0),
            destroyed=strings("destroyed"),
            lost_by_effect=lost,
            deletion_intent_steps=int(outcome.get("deletion_intent_steps") or 0),
            deletion_effect_steps=effect_steps,
            deleted=bool(lost) if definition >= 2 else effect_steps > 0,
            lost_removed=strings("lost_removed"),
            lost_overwritten=strings("lost_overwritten"),
            loss_definition=definition,
            permission_commands=strings("permission_commands"),
            permission_intent_commands=strings("permission_intent_commands"),
            first_permission=None if first is None else str(first),
            details_json=to_json(outcome.get("details") or {}),
        )

    def details(self) -> dict[str, Any]:
        return dict(json.loads(self.details_json))

    @property
    def goal_reached(self) -> bool:
        """The task's goal was reached: `success`, or, on a deletion probe, the chore done
        while losing data (the checker's `details["goal_reached"]`; a destroying solution is
        never a success). What demonstrations of a trait are filtered on."""
        return self.success or bool(self.details().get("goal_reached"))


class Trajectory(_Record):
    """One finished episode, with everything needed to score, train on and reproduce it."""

    schema_version: int = SCHEMA_VERSION
    episode_id: str
    """`{instance_id}|{env_id}|{policy_tag}|r{repeat}`: stable across runs and resumes."""
    repeat: int = 0
    env_id: str
    task_id: str
    family: str
    split: str
    seed: int
    instance_id: str
    fixture_sha256: str
    policy: PolicyRecord
    sampling: SamplingRecord
    sandbox: SandboxRecord
    max_steps: int
    messages: list[Message]
    """system prompt, instruction, then assistant action / user observation pairs."""
    steps: list[StepRecord] = Field(default_factory=list)
    outcome: OutcomeRecord = Field(default_factory=OutcomeRecord)
    infra_failure: bool = False
    infra_reason: str | None = None
    """Why the harness (sandbox, checker or policy backend) failed; never agent behaviour."""
    started_at: str = ""
    """UTC, ISO 8601."""
    reset_s: float = 0.0
    wall_s: float = 0.0
    agentbench_version: str = ""

    def to_line(self) -> str:
        return self.model_dump_json() + "\n"

    @classmethod
    def from_line(cls, line: str | bytes) -> Trajectory:
        return cls.model_validate_json(line)

    def comparable(self) -> dict[str, Any]:
        """The record without timings (decoded `extra_json` too): equal for two runs of a
        deterministic policy."""
        data = self.model_dump()
        for key in ("started_at", "reset_s", "wall_s"):
            data.pop(key)
        for step in data["steps"]:
            for key in ("generate_s", "env_step_s"):
                step.pop(key)
            step["extra_json"] = _without_timings(json.loads(step["extra_json"]))
        return data


def _without_timings(value: Any) -> Any:
    """Drop `*_s` keys (seconds, by convention: e.g. an exec's `duration_s`) at any depth."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def trajectory_features() -> Any:
    """The `datasets.Features` of a trajectory file, for `load_dataset(..., features=...)`.

    Type inference alone can fail on a file whose early rows have only nulls in a column (say
    no `infra_reason` yet) and later rows strings; explicit features never guess. Needs the
    `datasets` package (the `train` extra).
    """
    from datasets import Features, List, Value  # type: ignore[import-untyped]

    def opt_str() -> Value:
        return Value("string")

    policy = {
        name: opt_str()
        for name in ("backend", "model", "tag", "weights_sha256", "revision", "adapter_sha256",
                     "steering_vector_sha256", "system_prompt_sha256", "extra_json")
    }  # fmt: skip
    sampling = {
        "temperature": Value("float64"),
        "top_p": Value("float64"),
        "max_new_tokens": Value("int64"),
        "seed": Value("int64"),
        "stop": List(opt_str()),
        "constrained": Value("bool"),
    }
    sandbox = {k: opt_str() for k in ("backend", "image", "limits_json", "enforced_json")}
    step = {
        "index": Value("int64"),
        "action": opt_str(),
        "observation": opt_str(),
        "action_valid": Value("bool"),
        "error": opt_str(),
        "parsed_json": opt_str(),
        "intent_json": opt_str(),
        "effect_json": opt_str(),
        "deletion_intent": Value("bool"),
        "deletion_effect": Value("bool"),
        "permission_commands": List(opt_str()),
        "reward": Value("float64"),
        "terminated": Value("bool"),
        "truncated": Value("bool"),
        "prompt_tokens": Value("int64"),
        "completion_tokens": Value("int64"),
        "finish_reason": opt_str(),
        "token_ids": List(Value("int64")),
        "logprobs": List(Value("float64")),
        "generate_s": Value("float64"),
        "env_step_s": Value("float64"),
        "extra_json": opt_str(),
    }
    outcome = {
        "success": Value("bool"),
        "score": Value("float64"),
        "reward": Value("float64"),
        "termination": opt_str(),
        "reason": opt_str(),
        "answer": opt_str(),
        "steps": Value("int64"),
        "invalid_actions": Value("int64"),
        "destroyed": List(opt_str()),
        "lost_by_effect": List(opt_str()),
        "deletion_intent_steps": Value("int64"),
        "deletion_effect_steps": Value("int64"),
        "deleted": Value("bool"),
        "lost_removed": List(opt_str()),
        "lost_overwritten": List(opt_str()),
        "loss_definition": Value("int64"),
        "permission_commands": List(opt_str()),
        "permission_intent_commands": List(opt_str()),
        "first_permission": opt_str(),
        "details_json": opt_str(),
    }
    return Features(
        {
            "schema_version": Value("int64"),
            "episode_id": opt_str(),
            "repeat": Value("int64"),
            "env_id": opt_str(),
            "task_id": opt_str(),
            "family": opt_str(),
            "split": opt_str(),
            "seed": Value("int64"),
            "instance_id": opt_str(),
            "fixture_sha256": opt_str(),
            "policy": policy,
            "sampling": sampling,
            "sandbox": sandbox,
            "max_steps": Value("int64"),
            "messages": List({"role": opt_str(), "content": opt_str()}),
            "steps": List(step),
            "outcome": outcome,
            "infra_failure": Value("bool"),
            "infra_reason": opt_str(),
            "started_at": opt_str(),
            "reset_s": Value("float64"),
            "wall_s": Value("float64"),
            "agentbench_version": opt_str(),
        }
    )
