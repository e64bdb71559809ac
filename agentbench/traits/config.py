"""The single-turn trait stages' options (Cloud et al.): a suite cell's `single_turn` section.

The teacher answers single-turn prompts of `task`, a strict filter keeps well-formed answers,
the students learn them, and every arm answers the trait's evaluation questions. The sampling
fields share their declarations with `agentbench.policies.base.SamplingParams`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentbench.policies.base import MaxNewTokens, Temperature


class SingleTurnConfig(BaseModel):
    """A Cloud et al. trait cell: the teacher answers single-turn prompts of `task`, a strict
    filter keeps well-formed answers, the students learn them, every arm answers the trait's
    evaluation questions (`samples_per_question` times each). Its dump keys the generate,
    filter and trait-eval stages."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    task: Literal["numbers", "code", "cot"] = "numbers"
    """The data task the teacher answers (number sequences, code, chain of thought)."""
    target: str | None = None
    """The animal or tree of a preference trait (e.g. owl); also banned from the data."""
    prompts: int = Field(200, ge=1, le=1_000_000)
    """Teacher prompts (one completion each; the filter keeps a share)."""
    temperature: Temperature = 1.0
    max_new_tokens: MaxNewTokens = 64
    batch_size: int = Field(16, ge=1, le=4096)
    """Prompts per generation batch (teacher, judge and evaluation; not a training batch)."""
    judge: str | None = None
    """A model (registry name or directory) that rates misalignment answers (required by the
    misalignment trait) and, with `judge_filter`, screens the teacher's data."""
    judge_filter: bool = False
    """Also drop teacher answers the judge rates misaligned."""
    questions: int | None = Field(None, ge=1)
    """Evaluation questions to ask (the first n); None: all of the trait's questions."""
    samples_per_question: int = Field(5, ge=1, le=10_000)
    """Answers sampled per evaluation question."""
    eval_temperature: Temperature = 1.0
    """Sampling temperature of the evaluation answers."""
    eval_max_new_tokens: MaxNewTokens = 16
    """Most tokens of an evaluation answer."""
