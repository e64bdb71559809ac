"""The rollouts stage's options: which episodes a policy runs and how it samples.

`RolloutConfig` is a suite cell's `teacher_rollouts` section as it is; `EvaluationConfig` its
`evaluation` section (the probe episodes every arm is scored on). Both are frozen and refuse
unknown keys. Their serialized form is hashed into cell ids and stage keys: a field added
later must leave the dumps of configs that do not use it unchanged (`OmitsFlagsWhenOff`, or a
serializer that drops it while unset).

`RolloutCommandConfig` is `agentbench rollouts run`'s config: the same fields and meanings
with other defaults, as TRL's `SFTConfig` re-defaults `TrainingArguments`. Each field's type,
bounds and help are declared once (the shared `Annotated` types below); each class sets only
its defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from agentbench.policies.base import Constrained, MaxNewTokens, OmitsFlagsWhenOff, Temperature

Split = Literal["train", "eval", "heldout"]
Families = Annotated[tuple[str, ...], Field(description="Task families whose instances run.")]
SplitField = Annotated[Split, Field(description="The task split the instances come from.")]
Instances = Annotated[
    int,
    Field(ge=1, le=100_000, description="Task instances per family (each runs once per repeat)."),
]
EpisodeSteps = Annotated[
    int, Field(ge=1, le=200, description="Steps before an episode is truncated.")
]
Parallel = Annotated[
    int,
    Field(
        ge=1,
        le=256,
        description="Environments stepped in lockstep (one batched model call per step).",
    ),
]


class RolloutConfig(OmitsFlagsWhenOff):
    """Episodes a policy runs: which tasks, how many, how it samples."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    families: Families = ("benign",)
    split: SplitField = "train"
    n: Instances = 32
    repeats: int = Field(1, ge=1, le=100)
    """Episodes per task instance."""
    max_steps: EpisodeSteps = 12
    temperature: Temperature = 1.0
    max_new_tokens: MaxNewTokens = 128
    parallel: Parallel = 8
    constrained: Constrained = False
    # Cell ids and stage keys hash the dump: suites that leave it off keep theirs.
    flags_omitted_when_off = ("constrained",)


class RolloutCommandConfig(RolloutConfig):
    """`agentbench rollouts run`'s config: a `RolloutConfig` (the same fields and meanings, so
    its YAML is a suite's `teacher_rollouts` section and the other way round) with defaults
    for a run from the command line rather than a suite cell on a small CPU model."""

    n: Instances = 10  # a first look, not a measurement
    max_steps: EpisodeSteps = 30  # any policy's long plans, not a tiny model's short ones
    max_new_tokens: MaxNewTokens = 256  # a full tool call from a chatty model
    parallel: Parallel = 4  # a laptop's cores, not a dedicated run's


class EvaluationConfig(RolloutConfig):
    """The probe episodes every arm is scored on. Its own type so that a suite giving only
    `n` or `max_steps` still scores the trait's probes: `families` empty (the default) means
    the trait's probe family (deletion-probe / permission-probe), not the benign tasks that
    teacher rollouts default to.

    `n: auto` with `mde: 0.2` picks the smallest n per arm at which a two-sided test at alpha
    0.05 detects a difference of 0.2 between two arms with power 0.8, the control at
    `mde_baseline` (0.5, the hardest place, unless given); `agentbench.stats.n_for_difference`."""

    families: Families = ()
    split: SplitField = "heldout"
    n: Instances = 20
    mde: float | None = Field(None, gt=0.0, lt=1.0)
    """The wanted minimum detectable difference (with `n: auto`); left out of ids when unset."""
    mde_baseline: float = Field(0.5, ge=0.0, le=1.0)
    """The control's expected rate for `mde` (0.5 when unknown: the most episodes)."""

    @model_validator(mode="before")
    @classmethod
    def _auto_n(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("n") == "auto":
            mde = data.get("mde")
            if not isinstance(mde, int | float) or isinstance(mde, bool) or not 0 < mde < 1:
                raise ValueError("n: auto needs mde, the wanted difference in (0, 1), e.g. 0.2")
            from agentbench.stats import n_for_difference

            baseline = data.get("mde_baseline", 0.5)
            if not isinstance(baseline, int | float) or not 0 <= baseline <= 1:
                raise ValueError(f"mde_baseline must be a rate in [0, 1], got {baseline!r}")
            episodes = n_for_difference(float(mde), float(baseline))
            repeats = data.get("repeats", 1)
            repeats = repeats if isinstance(repeats, int) and repeats >= 1 else 1
            return {**data, "n": -(-episodes // repeats)}  # each instance runs `repeats` times
        return data

    @model_serializer(mode="wrap")
    def _omit_flags_when_off(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # ids and stage keys hash the dump: suites without `mde` keep theirs
        data: dict[str, Any] = handler(self)
        if not self.constrained:
            data.pop("constrained", None)
        if self.mde is None:
            data.pop("mde", None)
            data.pop("mde_baseline", None)
        return data
