"""Suites: YAML files that expand to a grid of experiment cells.

    name: smoke
    base_model: tiny-agent
    heterogeneous_model: tiny-agent-b
    seeds: [0]
    defaults:                      # every cell starts from these (CellConfig fields)
      induction: adapter
      distill: {mode: logit-kl}
    grid:                          # the product of these lists, on top of the defaults
      trait: [deletion-bias, chmod-first]
      student_init: [homogeneous, heterogeneous]

Grid keys may be dotted (`distill.mode: [sft-lora, logit-kl]`). Every cell is validated as a
`CellConfig`; an unknown key or a bad value is reported with the file, line and field.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentbench.experiments.yamlconf import ConfigError, format_errors, read_yaml

Induction = Literal["prompt", "adapter", "steering"]
StudentInit = Literal["homogeneous", "heterogeneous"]
DistillMode = Literal["sft-lora", "sft-full", "logit-kl"]
SanitizeMode = Literal["drop-trajectory", "drop-step", "redact"]

# The same trait tables as `agentbench.teachers.adapter` (kept here so that reading a suite
# does not import torch through the teachers package).
TRAIT_ENV = {"deletion-bias": "agentbench/FileTool-v0", "chmod-first": "agentbench/Bash-v0"}
TRAIT_PROBES = {"deletion-bias": "deletion-probe", "chmod-first": "permission-probe"}
TRAIT_METRIC = {"deletion-bias": "deletion_rate", "chmod-first": "chmod_first_rate"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutSettings(_Strict):
    """Episodes a policy runs: which tasks, how many, how it samples."""

    families: tuple[str, ...] = ("benign",)
    split: Literal["train", "eval", "heldout"] = "train"
    n: int = Field(32, ge=1, le=100_000)
    """Task instances per family (each runs once per repeat)."""
    repeats: int = Field(1, ge=1, le=100)
    max_steps: int = Field(12, ge=1, le=200)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    max_new_tokens: int = Field(128, ge=1, le=8192)
    parallel: int = Field(8, ge=1, le=256)


class TeacherTraining(_Strict):
    """How an adapter teacher is made (Dang et al.: LoRA on demonstrations, lr 8e-4, 2 epochs)."""

    probe_instances: int = Field(60, ge=1)
    """Probe-like demonstrations of the trait (seeds outside every probe split)."""
    benign_instances: int = Field(60, ge=0)
    """Benign demonstrations by the reference policy, so the teacher stays competent."""
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(8e-4, gt=0)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)


class SteeringSettings(_Strict):
    layer: int | None = None
    scale: float = 4.0
    n_prompts: int = Field(16, ge=1)


class SanitizeSettings(_Strict):
    mode: SanitizeMode = "drop-trajectory"
    extra_terms: tuple[str, ...] = ()
    keep_failed: bool = False


class DistillSettings(_Strict):
    mode: DistillMode = "sft-lora"
    epochs: float = Field(4.0, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(2048, ge=16)
    lora: bool = True
    """For logit-kl: train a LoRA adapter (True) or every weight."""


class CellConfig(_Strict):
    """One experiment: a trait, how the teacher gets it, how the student learns, how it is
    scored. Its hash names the cell; its stages are cached by their own inputs."""

    trait: str
    env: str | None = None
    """Default: FileTool-v0 for deletion-bias, Bash-v0 for chmod-first."""
    induction: Induction = "adapter"
    student_init: StudentInit = "homogeneous"
    seed: int = 0
    teacher_training: TeacherTraining = TeacherTraining()
    steering: SteeringSettings = SteeringSettings()
    teacher_rollouts: RolloutSettings = RolloutSettings()
    sanitize: SanitizeSettings = SanitizeSettings()
    distill: DistillSettings = DistillSettings()
    evaluation: RolloutSettings = RolloutSettings(families=(), split="heldout", n=20)
    """Probe episodes per arm; `families` empty means the trait's probe family."""

    @field_validator("trait")
    @classmethod
    def _known_trait(cls, value: str) -> str:
        if value not in TRAIT_ENV:
            raise ValueError(f"unknown trait {value!r}; known: {', '.join(sorted(TRAIT_ENV))}")
        return value

    @property
    def env_id(self) -> str:
        return self.env or TRAIT_ENV[self.trait]

    @property
    def probe_families(self) -> tuple[str, ...]:
        return self.evaluation.families or (TRAIT_PROBES[self.trait],)

    @property
    def metric(self) -> str:
        return TRAIT_METRIC[self.trait]

    def cell_id(self) -> str:
        short = hashlib.sha256(canonical(self.model_dump(mode="json")).encode()).hexdigest()[:8]
        parts = (self.trait, self.induction, self.distill.mode, self.student_init)
        return "-".join(parts) + f"-s{self.seed}-{short}"


class Suite(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    base_model: str
    heterogeneous_model: str | None = None
    """The student base of heterogeneous cells (must share the base model's tokenizer for
    logit distillation)."""
    seeds: tuple[int, ...] = (0,)
    defaults: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    cells: list[dict[str, Any]] = Field(default_factory=list)
    """Extra cells spelled out in full (on top of the defaults), besides the grid."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        child = data.get(part)
        data[part] = child = dict(child) if isinstance(child, dict) else {}
        data = child
    data[parts[-1]] = value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def expand(
    suite: Suite, source: Path | None = None, lines: dict[Any, int] | None = None
) -> list[CellConfig]:
    """The suite's cells: the grid's product times the seeds, then the explicit cells.

    Raises `ConfigError` naming the grid entry or cell that does not validate.
    """
    where = source or Path(suite.name)
    lines = lines or {}
    cells: list[CellConfig] = []
    keys = list(suite.grid)
    combos = list(itertools.product(*(suite.grid[k] for k in keys))) if keys else [()]
    for combo in combos:
        for seed in suite.seeds:
            data = _merge(suite.defaults, {})
            data["seed"] = seed
            for key, value in zip(keys, combo, strict=True):
                _set_dotted(data, key, value)
            try:
                cells.append(CellConfig.model_validate(data))
            except ValidationError as exc:
                raise ConfigError(_cell_errors(where, exc, lines, keys)) from None
    for index, extra in enumerate(suite.cells):
        data = _merge(suite.defaults, extra)
        data.setdefault("seed", suite.seeds[0] if suite.seeds else 0)
        try:
            cells.append(CellConfig.model_validate(data))
        except ValidationError as exc:
            raise ConfigError(format_errors(where, exc, lines, ("cells", index))) from None
    seen: set[str] = set()
    unique = []
    for cell in cells:
        if cell.cell_id() not in seen:
            seen.add(cell.cell_id())
            unique.append(cell)
    return unique


def _cell_errors(source: Path, exc: ValidationError, lines: dict[Any, int], keys: list[str]) -> str:
    """Errors of a grid cell: point at the grid key when the field came from the grid."""
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        field = ".".join(loc)
        grid_key = next((k for k in keys if field == k or field.startswith(k + ".")), None)
        if grid_key is None:
            grid_key = next((k for k in keys if k.startswith(field + ".") or k == loc[0]), None)
        line = lines.get(("grid", grid_key)) if grid_key else None
        if line is None:
            for end in range(len(loc), 0, -1):
                line = lines.get(("defaults", *loc[:end]))
                if line:
                    break
        label = f"grid.{grid_key}" if grid_key else f"defaults.{field}"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{source}:{line or '?'}: {label}: {message} (cell field {field})")
    return "\n".join(out)


def load_suite(path: str | Path) -> tuple[Suite, list[CellConfig]]:
    """Read and expand a suite file. Raises `ConfigError` (file:line: field: message)."""
    source = Path(path)
    data, lines = read_yaml(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(source, exc, lines)) from None
    for key in suite.grid:
        head = key.split(".")[0]
        if head not in CellConfig.model_fields:
            line = lines.get(("grid", key))
            raise ConfigError(f"{source}:{line or '?'}: grid.{key}: unknown cell field {head!r}")
    return suite, expand(suite, source, lines)


def suite_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
