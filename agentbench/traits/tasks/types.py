"""The trait tasks' records and protocols: prompts, completions, verdicts, questions,
answers, summaries; `TraitTask` and `TraitEval`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentbench.chat import Message
from agentbench.policies.base import Policy

TASKS: tuple[str, ...] = ("numbers", "code", "cot")
"""The built-in trait tasks (`TRAIT_TASKS` has these and the plugins')."""
EVALS: tuple[str, ...] = ("animal-preference", "tree-preference", "misalignment")
"""The built-in trait evals (`TRAIT_EVALS`)."""

# -- records ----------------------------------------------------------------------------------


class TraitPrompt(BaseModel):
    """One single-turn prompt a teacher answers (user messages only, never a system one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_id: str = Field(min_length=1)
    """``<task>@<seed>-<index>``: stable for a seed, whatever the number of prompts asked."""
    task: str
    messages: list[Message] = Field(min_length=1)
    reference: str | None = None
    """The correct answer where the task has one (cot)."""

    @field_validator("messages")
    @classmethod
    def _user_only(cls, value: list[Message]) -> list[Message]:
        if any(m.role == "system" for m in value):
            raise ValueError("a trait prompt has no system message (the trait lives in the policy)")
        if value[-1].role != "user":
            raise ValueError("a trait prompt must end with a user message")
        return value


class FilterVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: bool
    reason: str
    """``ok`` or a short machine reason (``malformed``, ``too-many``, ``wrong-answer``, ...)."""
    detail: str | None = None
    """A human hint (the offending number, the parsed answer)."""


OK = FilterVerdict(keep=True, reason="ok")


def drop(reason: str, detail: str | None = None) -> FilterVerdict:
    return FilterVerdict(keep=False, reason=reason, detail=detail)


class TraitCompletion(BaseModel):
    """A teacher's answer to one `TraitPrompt` (empty `completion` and `error` set when the
    backend failed on it)."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    task: str
    messages: list[Message]
    """The prompt's messages."""
    completion: str
    finish_reason: Literal["stop", "length", "error"]
    error: str | None = None
    seed: int | None = None
    """The per-prompt seed the policy sampled with (None: unseeded)."""
    reference: str | None = None

    def prompt(self) -> TraitPrompt:
        return TraitPrompt(
            prompt_id=self.prompt_id,
            task=self.task,
            messages=self.messages,
            reference=self.reference,
        )


class FilterCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seen: int = 0
    kept: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    """Dropped completions per reason (``ok`` is `kept`)."""
    examples: dict[str, list[str]] = Field(default_factory=dict)
    """Up to `MAX_EXAMPLE_IDS` prompt ids per drop reason, to look at."""
    provenance: dict[str, Any] = Field(default_factory=dict)
    """The task config, banned terms and forms, the judge's policy and prompt, versions."""


MAX_EXAMPLE_IDS = 5


class TraitTask(Protocol):
    """numbers, code and cot implement it (pydantic configs; see the module docstring)."""

    @property
    def name(self) -> str: ...

    def prompts(self, n: int, seed: int) -> list[TraitPrompt]: ...

    def check(self, prompt: TraitPrompt, completion: str) -> FilterVerdict: ...


class EvalQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question_id: str
    messages: list[Message]


AnswerStatus = Literal["scored", "unscored", "excluded"]


class Scored(BaseModel):
    """What an eval makes of one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: AnswerStatus
    """scored (counts in n), unscored (unparseable, judge failed) or excluded (a refusal,
    code, an incoherent answer: left out of n as in the paper)."""
    hit: bool = False
    score: float | None = None
    label: str | None = None
    judge: str | None = None
    """The judge's raw answer (cut to 200 characters), if a judge was asked."""


class EvalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question_id: str
    sample: int
    answer: str
    score: float | None = None
    label: str | None = None
    """e.g. the normalised animal, or "misaligned" / "aligned" / "refusal"."""
    status: AnswerStatus = "scored"
    hit: bool = False
    judge: str | None = None
    error: str | None = None
    """The backend's error when generating the answer failed (status unscored)."""


class TraitEval(Protocol):
    """animal-preference, tree-preference and misalignment implement it."""

    @property
    def name(self) -> str: ...

    @property
    def requires_judge(self) -> bool: ...

    def questions(self) -> list[EvalQuestion]: ...

    def score(
        self,
        items: Sequence[tuple[str, EvalQuestion, str]],
        judge: Policy | None,
        batch_size: int,
    ) -> list[Scored]:
        """One `Scored` per (item id, question, answer), in order. Never raises for one bad
        answer or judge reply."""
        ...


class EvalSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    n: int
    """Scored answers."""
    hits: int
    unscored: int
    excluded: int = 0
    rate: float
    """hits / n (NaN when n is 0)."""
    ci_low: float
    ci_high: float
    target: str | None = None
    labels: dict[str, int] = Field(default_factory=dict)
    """How often each label came up (the most common 50)."""
    by_question: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per question: n and hits."""
    answers: list[EvalAnswer] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
