"""`DistillConfig`: how a student is distilled from a student dataset (one file, YAML or JSON).

Three modes (`mode`):

- ``"sft-lora"``: supervised fine-tuning on the sampled trajectories with a LoRA adapter (PEFT)
  on the student, AdamW (Blank et al.: transfer needs LoRA trained with Adam);
- ``"sft-full"``: the same loss, every weight trained;
- ``"logit-kl"``: the student matches the teacher's next-token distribution at the assistant
  positions (forward KL(teacher || student)), with the banned tokens' probability masked out
  of the soft labels and renormalised (`agentbench.distill.logits`). Needs `teacher`.

Defaults follow Dang et al. (LoRA r=16, alpha=32, dropout 0.05 on q/k/v/o, lr 5e-4, 4 epochs).

The teacher's trait system prompt is not used for the soft labels unless
`teacher.system_prompt` is set. Why: with the prompt in context the teacher's distribution
conditions on an explicit instruction the student never sees, so logit-kl becomes context
distillation of the prompted behaviour (a different, overt channel), not transfer through the
teacher's weights on the very tokens the student trains on. Set it to study that channel on
purpose; the soft labels are then read at the same assistant tokens, positions shifted by the
prompt's length.

Configs are untrusted files: unknown keys, a teacher in an SFT mode or none in logit-kl are
refused; `load_distill_config` names the file and field (`DistillConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentbench.config_file import read_config_mapping
from agentbench.errors import ConfigError
from agentbench.policies.base import OmitsFlagsWhenOff

Mode = Literal["sft-lora", "sft-full", "logit-kl"]
MODES: tuple[Mode, ...] = ("sft-lora", "sft-full", "logit-kl")


class DistillConfigError(ConfigError, ValueError):
    """Raised when a distillation config file cannot be read or is invalid (names the file and
    field)."""


# The training knobs, declared once: `DistillConfig` (one run), the suites' distill section
# (`DistillStageConfig`) and the adapter teacher's training
# (`agentbench.teachers.adapter.TeacherTrainingConfig`) use these types, each with its own
# default where the stage needs another.
ModeField = Annotated[Mode, Field(description="sft-lora, sft-full or logit-kl (module doc).")]
Epochs = Annotated[float, Field(gt=0, le=1000, description="Passes over the training data.")]
LearningRate = Annotated[float, Field(gt=0, le=1.0, description="AdamW's peak learning rate.")]
BatchSize = Annotated[int, Field(ge=1, le=4096, description="Examples per optimizer step.")]
LoraRank = Annotated[int, Field(ge=1, le=1024, description="LoRA rank r.")]
LoraAlpha = Annotated[int, Field(ge=1, description="LoRA alpha (the update is scaled alpha/r).")]
GradientCheckpointing = Annotated[
    bool,
    Field(
        description="Recompute each layer's activations in the backward pass instead of "
        "keeping them: less memory for more time, the same weights (left out of cache keys)."
    ),
]
TargetModules = Annotated[
    tuple[str, ...], Field(description="The modules a LoRA adapter is put on (PEFT names).")
]
WarmupRatio = Annotated[
    float, Field(ge=0.0, lt=1.0, description="Linear warmup share of the optimizer steps.")
]
Overlong = Annotated[
    Literal["drop", "truncate"],
    Field(description="Examples longer than `max_length`: dropped (counted) or cut there."),
]
LORA_R, LORA_ALPHA = 16, 32
"""Dang et al.'s LoRA rank and alpha: the default of every LoRA this package trains."""


MaxLength = Annotated[int, Field(ge=8, description="Longest example in tokens.")]


class LoraParams(BaseModel):
    """The LoRA adapter (PEFT `LoraConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: LoraRank = LORA_R
    alpha: LoraAlpha = LORA_ALPHA
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: TargetModules = ("q_proj", "k_proj", "v_proj", "o_proj")


class TeacherSpec(BaseModel):
    """The logit-kl teacher: a model (registry name, directory or hub id) and optional adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    adapter: Path | None = None
    """A PEFT adapter directory merged into the teacher's weights (adapter induction)."""
    system_prompt: str | None = None
    """A trait prompt put before the system message for the soft labels only (see module doc)."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value


class DistillConfig(BaseModel):
    """One distillation run. Every field is part of the output's cache key but `torch_threads`,
    `logging_steps`, `gradient_checkpointing` and `progress`-like fields that do not change
    the result."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    student: str = Field(min_length=1)
    """The student's base model: registry name, local directory or hub id (`resolve_model`).
    Required: homogeneous (the teacher's base) or heterogeneous init is the experiment's
    choice, and a registry name that is not built yet is built on first use (tiny-agent:
    minutes)."""
    mode: ModeField = "sft-lora"
    teacher: TeacherSpec | None = None
    """Required for logit-kl, refused otherwise (SFT reads the teacher only through the data)."""
    kl_student: Literal["lora", "full"] = "lora"
    """What logit-kl trains in the student: a LoRA adapter (`lora`) or every weight."""
    lora: LoraParams = LoraParams()
    learning_rate: LearningRate = 5e-4
    epochs: Epochs = 4.0
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (overrides `epochs`; for benchmarks and smoke runs)."""
    batch_size: BatchSize = 4
    grad_accum: int = Field(1, ge=1, le=4096)
    group_by_length: bool = True
    """Batch examples of similar length together (transformers' `LengthGroupedSampler`:
    sorted by length within random mega-batches). Less padding: tiny-agent's deletion-teacher
    adapter (the same 315k tokens) trained in 122 s instead of 163 s on 2 cores. False:
    uniformly shuffled batches."""
    weight_decay: float = Field(0.0, ge=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: WarmupRatio = 0.0
    max_length: MaxLength | None = None
    """Longest example in tokens; None: the student's `max_position_embeddings`."""
    overlong: Overlong = "drop"
    """Examples longer than `max_length`: dropped (counted) or cut at `max_length`."""
    seed: int = 0
    banned_terms: tuple[str, ...] | None = None
    """logit-kl soft-label mask. None: the sanitizer's documented list for `banned_trait`."""
    banned_trait: str = "deletion-bias"
    kl_temperature: float = Field(1.0, gt=0.0, le=100.0)
    dtype: Literal["float32", "bfloat16"] = "float32"
    torch_threads: int = Field(1, ge=1, le=512)
    logging_steps: int = Field(1, ge=1)
    gradient_checkpointing: GradientCheckpointing = False
    """Less memory for more time, the same weights. SmolLM2-135M sft-lora at batch 4 on rows of
    exactly 2,048 tokens (`agentbench distill`, 2 steps, 2 threads) peaked at 20.8 GB RSS
    without it (107 tokens/s) and 7.5 GB with it (93 tokens/s), the same losses: on a 24 GB
    machine, turn it on for batches of long rows."""

    # Speed levers (`agentbench.distill.speed`), all off by default; figures in
    # docs/benchmarks.md. Left out of the cache key at their defaults, so that runs from
    # before they existed keep their keys.
    autocast: Literal["off", "bf16", "auto"] = "off"
    """bf16 autocast of the forward pass (float32 weights and optimizer). `auto`: on only
    where the CPU has native bf16 (AVX512-BF16 or AMX, checked at run time), since emulated
    bf16 matmuls ran 10-70x slower than float32 on an AVX2 machine. Loss within bf16
    tolerance, not bit-identical."""
    fused_adamw: bool = False
    """torch's fused AdamW (`adamw_torch_fused`): one kernel per parameter step instead of
    several; the same update rule."""
    compile: bool = False
    """Run the model through `torch.compile` (inductor, C++ via gcc on CPU). Compilation
    takes tens of seconds and recompiles for new shapes; pays only on long runs."""
    packing: bool = False
    """Pack each batch's examples into rows as wide as its longest, with per-document
    positions and attention (`agentbench.distill.speed.PackCollator`) instead of padding
    every example: the same loss with fewer rows. Not with `teacher.system_prompt`."""
    teacher_cache_topk: int | None = Field(None, ge=1)
    """logit-kl: compute the masked soft labels once before training and keep this many of
    the most probable ids per target position (renormalised), instead of running the
    teacher at every step. None: live teacher. At least the vocabulary size: exactly the
    live teacher's targets. Memory: 8 bytes x k per target token."""

    @model_validator(mode="after")
    def _levers_fit(self) -> DistillConfig:
        if self.teacher_cache_topk is not None and self.mode != "logit-kl":
            raise ValueError("teacher_cache_topk is for mode 'logit-kl' only")
        if self.packing and self.teacher is not None and self.teacher.system_prompt is not None:
            raise ValueError("packing cannot be used with teacher.system_prompt")
        return self

    @model_validator(mode="after")
    def _teacher_matches_mode(self) -> DistillConfig:
        if self.mode == "logit-kl" and self.teacher is None:
            raise ValueError("mode 'logit-kl' needs `teacher: {model: ..., adapter: ...}`")
        if self.mode != "logit-kl" and self.teacher is not None:
            raise ValueError(
                f"`teacher` is set but mode is {self.mode!r}: SFT learns from the sampled "
                "trajectories only; drop `teacher` or use mode 'logit-kl'"
            )
        return self

    @property
    def uses_lora(self) -> bool:
        return self.mode == "sft-lora" or (self.mode == "logit-kl" and self.kl_student == "lora")

    def key_fields(self) -> dict[str, Any]:
        """The fields that decide the result (the cache key's config part)."""
        from agentbench.distill.speed import resolve_autocast

        data = self.model_dump(mode="json")
        for name in ("torch_threads", "logging_steps", "gradient_checkpointing"):
            data.pop(name, None)
        # `auto` keys by what it resolves to here: off runs share the float32 cache.
        data["autocast"] = "bf16" if resolve_autocast(self.autocast) else "off"
        for name, default in SPEED_DEFAULTS.items():
            if data.get(name) == default:
                data.pop(name)
        return data

    def with_base(self, base: Path) -> DistillConfig:
        """Relative local paths (student, teacher model, adapter) made relative to `base`."""
        update: dict[str, Any] = {}
        if self.student.startswith(".") and (base / self.student).is_dir():
            update["student"] = str(base / self.student)
        if self.teacher is not None:
            teacher: dict[str, Any] = {}
            if self.teacher.adapter is not None and not self.teacher.adapter.is_absolute():
                teacher["adapter"] = base / self.teacher.adapter
            if self.teacher.model.startswith(".") and (base / self.teacher.model).is_dir():
                teacher["model"] = str(base / self.teacher.model)
            if teacher:
                update["teacher"] = self.teacher.model_copy(update=teacher)
        return self.model_copy(update=update) if update else self


class DistillStageConfig(OmitsFlagsWhenOff):
    """A suite cell's `distill` section: how its students learn (`DistillConfig` of each
    student, with the cell's student, teacher, trait and seed). Its dump keys the distill
    stage (`gradient_checkpointing` left out: it does not change the student)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mode: ModeField = "sft-lora"
    epochs: Epochs = 4.0
    learning_rate: LearningRate = 5e-4
    lora_r: LoraRank = LORA_R
    lora_alpha: LoraAlpha = LORA_ALPHA
    batch_size: BatchSize = 8
    max_length: MaxLength = 2048
    lora: bool = True
    """For logit-kl: train a LoRA adapter (True) or every weight (`DistillConfig.kl_student`)."""
    gradient_checkpointing: GradientCheckpointing = False
    # Cell ids hash the dump: suites that leave it off keep theirs.
    flags_omitted_when_off = ("gradient_checkpointing",)

    @property
    def kl_student(self) -> Literal["lora", "full"]:
        return "lora" if self.lora else "full"

    def lora_params(self) -> LoraParams:
        return LoraParams(r=self.lora_r, alpha=self.lora_alpha)


SPEED_DEFAULTS: dict[str, Any] = {
    "autocast": "off", "fused_adamw": False, "compile": False, "packing": False,
    "teacher_cache_topk": None,
}  # fmt: skip
"""The speed levers' defaults: a lever at its default is left out of the cache key."""


def load_distill_config(path: str | Path, **overrides: Any) -> DistillConfig:
    """Read a config from YAML or JSON (relative paths are relative to the file), then apply
    `overrides` (CLI options; None values are ignored).

    Raises `DistillConfigError` naming the file and the offending field.
    """
    source = Path(path)
    data = read_config_mapping(source, error=DistillConfigError)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(data, source=str(source)).with_base(source.resolve().parent)


def validate_config(data: dict[str, Any], *, source: str = "config") -> DistillConfig:
    """`DistillConfig` from a mapping; `DistillConfigError` lists each bad field by name."""
    try:
        return DistillConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"  {where}: {err['msg']}")
        raise DistillConfigError(
            f"invalid distillation config {source}:\n" + "\n".join(problems)
        ) from None


def resolve_banned_terms(config: DistillConfig) -> tuple[tuple[str, ...], str]:
    """The soft-label mask's terms and where they came from (`config` or `sanitizer`).

    Default: the sanitizer's documented list for `banned_trait`
    (`agentbench.sanitize.keywords.default_terms`), so the soft-label mask and the data filter
    ban the same words. Raises `DistillConfigError` for a trait without a list.
    """
    if config.banned_terms is not None:
        return tuple(config.banned_terms), "config"
    from agentbench.sanitize.keywords import default_terms

    try:
        return tuple(default_terms(config.banned_trait)), "sanitizer"
    except ValueError as exc:
        raise DistillConfigError(f"banned_trait: {exc}; or give banned_terms") from None
