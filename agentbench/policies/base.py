"""The policy contract: a batch of agent turns in, a batch of action texts out.

Every backend (scripted, transformers, vLLM, an OpenAI-compatible server) implements
`Policy.generate`. The rollout engine calls it once per step with every live episode's turn, so
a model backend can batch them into one forward pass. A `Turn` carries the conversation so far
(what a model sees) and the task instance (what a scripted oracle plans from).

Conversations are chat messages in the usual format: a `system` message (the environment's
system prompt: how to act, the tool list), a `user` message (the task's instruction), then
alternating `assistant` (the action) and `user` (the observation) messages. Trait induction
(a teacher's system prompt, adapter or steering vector) lives inside a policy and never enters
the recorded conversation; it is recorded in `PolicyProvenance` instead.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

# Message and Role live in agentbench.chat (the bottom layer); they stay importable from
# here because a Turn is made of them.
from agentbench.chat import Message as Message
from agentbench.chat import Role as Role

if TYPE_CHECKING:
    from agentbench.tasks.instance import TaskInstance


class OmitsFlagsWhenOff(BaseModel):
    """A model whose boolean options named in `flags_omitted_when_off` are left out of its
    serialized form while False: options added later then leave the dumps (and the ids and
    cache keys hashed from them) of everything that does not use them as they were."""

    flags_omitted_when_off: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_flags_when_off(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.flags_omitted_when_off:
            if getattr(self, name) is False:
                data.pop(name, None)
        return data


# The sampling knobs, declared once: `SamplingParams` (a call's parameters), the suites'
# rollouts and evaluation (`agentbench.rollouts.config.RolloutConfig`) and the single-turn
# traits' teacher sampling use these types, each with its own default.
Temperature = Annotated[
    float, Field(ge=0.0, le=5.0, description="Sampling temperature; 0 means greedy decoding.")
]
MaxNewTokens = Annotated[
    int, Field(ge=1, le=32_768, description="Most tokens generated per model call (one turn).")
]
Constrained = Annotated[
    bool,
    Field(
        description="Decode only well-formed actions: where the env has an action schema "
        "(FileTool's tool calls; `agentbench.envs.action_schema`), every token is masked to "
        "what keeps the text inside it (`agentbench.policies.constrained`); transformers "
        "backends only (the rollout engine refuses it for a backend without "
        "`supports_constrained`). Free-text envs (Bash) are unaffected."
    ),
]


class SamplingParams(OmitsFlagsWhenOff):
    """How to sample. `seed` makes a batch reproducible; per-turn seeds derive from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: Temperature = 1.0
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: MaxNewTokens = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    flags_omitted_when_off = ("constrained",)  # policy tags and episode ids hash the dump

    constrained: Constrained = False


@dataclass(frozen=True)
class Turn:
    """One live episode's request for its next action."""

    episode_id: str
    env_id: str
    step: int
    messages: tuple[Message, ...]
    task: TaskInstance | None = None
    """For scripted oracles; model backends must not look at it."""


CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
"""The OpenAI API's error code for a request whose messages do not fit the model's context
(`agentbench serve` sends it; `HTTPPolicy` reads it as finish_reason "context")."""


@dataclass(frozen=True)
class Generation:
    """One action text and what producing it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length", "context", "error"] = "stop"
    """`stop`: the model ended its reply; `length`: `max_new_tokens` (or the room left in the
    context) cut it; `context`: the conversation no longer fits the model's context window,
    so nothing was generated: the agent has run out of room, and the episode ends there and
    is scored like one cut at `max_steps` (inspect_ai's token limit), not as a failure of the
    harness; `error`: the backend failed for this turn."""
    error: str | None = None
    """Set when the backend failed for this turn (finish_reason "error"): an infrastructure
    failure of the policy, never an agent action."""
    token_ids: tuple[int, ...] = ()
    """The sampled token ids, where the backend reports them (vLLM); else empty."""
    logprobs: tuple[float, ...] = ()
    """Their log-probabilities under the sampling distribution, beside `token_ids`."""

    @property
    def generated(self) -> bool:
        """Whether the model produced this text (not a failed or a context-full turn)."""
        return self.finish_reason not in ("error", "context")


def context_full(prompt_tokens: int = 0) -> Generation:
    """The turn whose conversation leaves no room for a reply (finish_reason "context")."""
    return Generation(text="", prompt_tokens=prompt_tokens, finish_reason="context")


class PolicyProvenance(BaseModel):
    """What produced the actions; recorded in every trajectory."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    model: str
    """A registry name, a local path or a hub id."""
    weights_sha256: str | None = None
    revision: str | None = None
    adapter_sha256: str | None = None
    steering_vector_sha256: str | None = None
    system_prompt_sha256: str | None = None
    """Hash of a trait-inducing system prompt (the text lives in the teacher's config)."""
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    extra: dict[str, Any] = Field(default_factory=dict)


class Policy(ABC):
    """Produces actions for a batch of turns. Not thread-safe; one caller at a time."""

    supports_constrained: ClassVar[bool] = False
    """Whether `generate` honours `SamplingParams.constrained`; the rollout engine refuses
    constrained params for a policy that would ignore them."""

    @abstractmethod
    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        """One `Generation` per turn, in order. Never raises for one bad turn: that turn gets
        a Generation with finish_reason "error" (or "context" when its conversation does not
        fit the model's context). Raises only when the backend as a whole is
        unusable (a model that cannot load, a server that is down)."""

    @abstractmethod
    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        """Model ids and hashes, trait induction hashes, and the sampling parameters."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release models, servers and sandboxes this policy holds. Safe to call twice."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def turn_seed(base: int | None, episode_id: str, step: int) -> int | None:
    """A per-turn seed derived from the batch seed, independent of batch composition."""
    if base is None:
        return None
    digest = hashlib.sha256(f"{base}|{episode_id}|{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class PolicyStats:
    """Counters a backend may expose for benchmarks."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
