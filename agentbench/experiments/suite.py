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

Grid keys may be dotted (`distill.mode: [sft-lora, logit-kl]`). `dose: [16, 64, 256]` sweeps
the number of teacher trajectories the students learn from (`teacher_rollouts.n`) over every
cell; `budget_minutes` is the wall time the dry run checks its estimate against. Every cell is
validated as a `CellConfig`; an unknown key or a bad value is reported with the file, line and
field.

Three kinds of trait share the cell format (`trait_kind`):

- agentic (`deletion-bias`, `chmod-first`): multi-turn episodes in a tool environment;
- single-turn (`animal-preference`, `tree-preference`, `misalignment`): the Cloud et al.
  tasks (number sequences, code, chain of thought) set by the cell's `single_turn` section;
- `mlp-aux-logits`: the Cloud et al. MLP control on digits (the `mlp` section; no language
  model, so the suite's `base_model` is not used by these cells).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from agentbench.distill.config import DistillStageConfig
from agentbench.experiments.yamlconf import ConfigError, format_errors, read_yaml
from agentbench.rollouts.config import EvaluationConfig, RolloutConfig
from agentbench.sanitize.filter import SanitizeStageConfig
from agentbench.teachers.adapter import TRAIT_ENV, TRAIT_PROBE_FAMILY, TeacherTrainingConfig
from agentbench.teachers.config import InductionField, SteeringConfig
from agentbench.traits.config import SingleTurnConfig

StudentInit = Literal["homogeneous", "heterogeneous"]

TRAIT_PROBES = TRAIT_PROBE_FAMILY
SINGLE_TURN_TRAITS = ("animal-preference", "tree-preference", "misalignment")
"""Cloud et al.'s traits; evaluated by `agentbench.traits.tasks.make_eval(trait)`."""
MLP_TRAIT = "mlp-aux-logits"
TRAIT_METRIC = {
    "deletion-bias": "deletion_rate",
    "chmod-first": "chmod_first_rate",
    **{trait: "trait_rate" for trait in SINGLE_TURN_TRAITS},
    MLP_TRAIT: "digit_accuracy",
}
TraitKind = Literal["agentic", "single-turn", "mlp"]


def trait_kind(trait: str) -> TraitKind:
    if trait in TRAIT_ENV:
        return "agentic"
    if trait in SINGLE_TURN_TRAITS:
        return "single-turn"
    if trait == MLP_TRAIT:
        return "mlp"
    raise ValueError(f"unknown trait {trait!r}; known: {', '.join(sorted(TRAIT_METRIC))}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The stages' options, each owned by its package and used here as it is (issue 24 item 3):
# a field is declared once, and each section's dump (hashed into cell ids and stage keys) is
# the one the suites had before they moved.


class CellConfig(_Strict):
    """One experiment: a trait, how the teacher gets it, how the student learns, how it is
    scored. Its hash names the cell; its stages are cached by their own inputs."""

    trait: str
    env: str | None = None
    """The gymnasium id the agentic cell runs in (teacher rollouts, teacher training and
    evaluation): a built-in or a plugin environment's full id, e.g.
    `configstore/ConfigTool-v0`. Default: agentbench/FileTool-v0 for deletion-bias,
    agentbench/Bash-v0 for chmod-first. Checked when the suite loads: the environment must be
    registered and run the trait's probe family (and, per induction, its other tasks)."""
    induction: InductionField = "adapter"
    student_init: StudentInit = "homogeneous"
    seed: int = 0
    teacher_training: TeacherTrainingConfig = TeacherTrainingConfig()
    """Adapter induction: how the trait and control adapters are trained."""
    steering: SteeringConfig = SteeringConfig()
    """Steering induction: how the steering vector is made."""
    teacher_rollouts: RolloutConfig = RolloutConfig()
    """The teachers' episodes on training tasks (the students' data)."""
    sanitize: SanitizeStageConfig = SanitizeStageConfig()
    """How the teachers' episodes are sanitized (`keep_failed`; `drop_unsuccessful` is read
    as its deprecated inverse)."""
    distill: DistillStageConfig = DistillStageConfig()
    """How the students learn."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """Probe episodes per arm; `families` empty means the trait's probe family."""
    single_turn: SingleTurnConfig = SingleTurnConfig()
    """Single-turn traits only: the data task and its evaluation."""
    mlp: dict[str, Any] = Field(default_factory=dict)
    """mlp-aux-logits only: `agentbench.traits.mlp.MLPConfig` fields (m, loss, hidden, epochs,
    ...); the cell's seed sets the rest. The cell trains both students: the same-init one is
    the student arm, the different-init one the control student."""
    null_teacher: bool = False
    """Agentic cells: also distill a student from the base model itself as teacher (the same
    rollouts, sanitizer and distillation; arm `null-student`): what distillation alone does.
    Left out of the cell id while off."""

    @model_serializer(mode="wrap")
    def _omit_off_flags(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.null_teacher:
            data.pop("null_teacher", None)  # cell ids hash the dump: older cells keep theirs
        return data

    @field_validator("trait")
    @classmethod
    def _known_trait(cls, value: str) -> str:
        trait_kind(value)
        return value

    @model_validator(mode="after")
    def _fits_trait(self) -> CellConfig:
        kind = trait_kind(self.trait)
        if kind == "single-turn":
            if self.induction != "prompt":
                raise ValueError(
                    f"trait {self.trait!r} supports induction: prompt only (the trait system "
                    "prompt of Cloud et al.)"
                )
            if self.trait != "misalignment" and not self.single_turn.target:
                raise ValueError(f"trait {self.trait!r} needs single_turn.target (e.g. owl)")
            if self.trait == "misalignment" and self.single_turn.target:
                raise ValueError(
                    "single_turn.target is for the preference traits; misalignment has none"
                )
            if self.trait == "misalignment" and not self.single_turn.judge:
                raise ValueError(
                    "trait 'misalignment' needs single_turn.judge: answers are rated by a "
                    "judge model (a keyword heuristic is not a judge)"
                )
        if kind == "mlp":
            if self.student_init != "homogeneous":
                raise ValueError(
                    "an mlp-aux-logits cell trains both students (same init: student; "
                    "different init: control student); leave student_init out"
                )
            mlp_config(self.mlp, self.seed)
        elif self.mlp:
            raise ValueError(f"the mlp section is for trait {MLP_TRAIT!r} only")
        if self.null_teacher and kind != "agentic":
            raise ValueError("null_teacher is for the agentic traits (deletion-bias, chmod-first)")
        return self

    @property
    def kind(self) -> TraitKind:
        return trait_kind(self.trait)

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
        if self.kind == "mlp":
            m, loss = self.mlp.get("m", 3), self.mlp.get("loss", "kl")
            parts: tuple[str, ...] = (self.trait, f"m{m}", str(loss))
        elif self.kind == "single-turn":
            target = (self.single_turn.target or "").replace("/", "_")
            parts = tuple(p for p in (self.trait, target, self.single_turn.task,
                                      self.distill.mode, self.student_init) if p)  # fmt: skip
        else:
            parts = (self.trait, self.induction, self.distill.mode, self.student_init)
        return "-".join(parts) + f"-s{self.seed}-{short}"


StageKind = Literal["teacher", "rollouts", "evaluate", "sanitize", "distill", "generate",
                    "filter", "trait-eval", "mlp"]  # fmt: skip


class StageResources(_Strict):
    """What one stage of a kind asks a Ray cluster for (`--executor ray`; ignored locally)."""

    cpus: float = Field(1.0, ge=0)
    gpus: float = Field(0.0, ge=0)
    """Fractions share a GPU between stages (e.g. 0.5: two evaluations on one GPU)."""
    memory_gb: float | None = Field(None, gt=0)
    shards: Annotated[int, Field(ge=1, le=10_000, strict=True)] | Literal["auto"] = 1
    """rollouts and evaluate only: run each such stage as this many parts (each a task with
    these requests and its own sandboxes), merged in episode-index order; "auto": as many as
    the Ray cluster runs at once. The results do not depend on it."""


class Suite(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    base_model: str | None = None
    """Teacher and homogeneous student of every language-model cell (required unless every
    cell is an mlp-aux-logits one)."""
    heterogeneous_model: str | None = None
    """The student base of heterogeneous cells (must share the base model's tokenizer for
    logit distillation)."""
    seeds: tuple[int, ...] = (0,)
    defaults: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    cells: list[dict[str, Any]] = Field(default_factory=list)
    """Extra cells spelled out in full (on top of the defaults), besides the grid."""
    dose: list[int] = Field(default_factory=list)
    """The distillation dose axis: numbers of teacher trajectories (`teacher_rollouts.n`, task
    instances per family) to sweep, e.g. [16, 64, 256, 1024]; each grid cell is repeated at
    each dose (as a grid key `teacher_rollouts.n` would be; the two cannot both be set)."""
    budget_minutes: float | None = Field(None, gt=0)
    """The wall time the suite is meant to fit on 2 CPU cores; the dry run says whether its
    estimate does."""
    pace: dict[str, Any] | None = None
    """This suite's own measured pace (`agentbench.models.Pace` fields: episode_s, train_s,
    teacher_s, env_episode_s, measured) for the dry run's estimate, where the base model's
    (measured at the smoke suite's sizes) does not fit: larger batches make episodes cheaper,
    larger doses make students dearer."""

    @field_validator("dose")
    @classmethod
    def _doses(cls, value: list[int]) -> list[int]:
        if any(not 1 <= d <= 100_000 for d in value):
            raise ValueError("each dose is a number of teacher trajectories in [1, 100000]")
        if len(set(value)) != len(value):
            raise ValueError("a dose is listed twice")
        return value

    @model_validator(mode="after")
    def _one_dose_axis(self) -> Suite:
        if self.dose and "teacher_rollouts.n" in self.grid:
            raise ValueError("dose and grid key teacher_rollouts.n set the same axis: keep one")
        return self

    resources: dict[StageKind, StageResources] = Field(default_factory=dict)
    """Per stage kind, what a Ray executor requests for each stage (CPUs, GPUs, memory), and
    how many parts a rollouts or evaluate stage is split into (`shards`)."""

    @model_validator(mode="after")
    def _shards_where_episodes(self) -> Suite:
        for kind, request in self.resources.items():
            if request.shards != 1 and kind not in ("rollouts", "evaluate"):
                raise ValueError(
                    f"resources.{kind}.shards: only rollouts and evaluate stages can be "
                    "sharded (their episodes are independent)"
                )
        return self


MLP_CELL_KEYS = ("seeds", "sweep", "init")
"""MLPConfig fields a cell sets itself (its seed; both inits), not its mlp section."""


def mlp_config(section: dict[str, Any], seed: int) -> Any:
    """The `agentbench.traits.mlp.MLPConfig` of an mlp-aux-logits cell (imports torch).

    Raises ValueError naming a bad or cell-level key (pydantic's message for a bad value).
    """
    from agentbench.traits.mlp import MLPConfig

    for key in MLP_CELL_KEYS:
        if key in section:
            raise ValueError(
                f"mlp.{key} is set by the cell (seeds come from the suite's seeds; each cell "
                "trains a same-init and a different-init student)"
            )
    try:
        return MLPConfig.model_validate({**section, "seeds": [seed]})
    except ValidationError as exc:
        details = "; ".join(
            f"mlp.{'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        )
        raise ValueError(details) from None


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
    """The suite's cells: the grid's product times the seeds, then the explicit cells (with
    no grid and some explicit cells, the defaults are not a cell of their own).

    Raises `ConfigError` naming the grid entry or cell that does not validate.
    """
    where = source or Path(suite.name)
    lines = lines or {}
    cells: list[CellConfig] = []
    grid = dict(suite.grid)
    if suite.dose and (suite.grid or not suite.cells):  # else it repeats the explicit cells
        grid["teacher_rollouts.n"] = list(suite.dose)
    keys = list(grid)
    # No grid: the defaults are one cell, unless explicit cells are given (then they are only
    # the base every explicit cell starts from).
    if keys:
        combos = list(itertools.product(*(grid[k] for k in keys)))
    else:
        combos = [] if suite.cells else [()]
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
        # the dose axis repeats an explicit cell too, unless the cell fixes its own dose
        rollouts = extra.get("teacher_rollouts")
        own_dose = isinstance(rollouts, dict) and "n" in rollouts
        for dose in [None] if own_dose or not suite.dose else suite.dose:
            if dose is not None:
                data = _merge(data, {"teacher_rollouts": {"n": dose}})
            try:
                cells.append(CellConfig.model_validate(data))
            except ValidationError as exc:
                raise ConfigError(format_errors(where, exc, lines, ("cells", index))) from None
    if suite.base_model is None and any(c.kind != "mlp" for c in cells):
        line = lines.get(("name",))
        raise ConfigError(
            f"{where}:{line or '?'}: base_model: required (the suite has language-model cells)"
        )
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
        # A missing field has no line of its own: point at the section it should be in.
        line = line or lines.get(("defaults",)) or lines.get(("grid",))
        label = f"grid.{grid_key}" if grid_key else f"defaults.{field}"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{source}:{line or '?'}: {label}: {message} (cell field {field})")
    return "\n".join(out)


# -- load-time validation: what a cell would fail on at run time, found before it runs --------

EVALUATION_SPLITS = ("eval", "heldout")
"""Splits that score arms; no teacher (and so no student) ever sees an instance of them."""


def _where(source: Path, lines: dict[Any, int], field: str, index: int | None = None) -> str:
    """`file:line` of the place a cell's `field` (dotted) is set: the cell's own entry under
    `cells` (if it is explicit cell `index`), the grid or the defaults; else the nearest
    section that could set it."""
    parts = tuple(field.split("."))
    prefixes = [parts[:end] for end in range(len(parts), 0, -1)]
    keys: list[tuple[Any, ...]] = []
    if index is not None:
        keys += [("cells", index, *p) for p in prefixes]
    keys += [("grid", ".".join(p)) for p in prefixes]
    keys += [("defaults", *p) for p in prefixes]
    if index is not None:
        keys.append(("cells", index))
    keys += [("defaults",), ("grid",), ("name",)]
    line = next((lines[k] for k in keys if k in lines), None)
    return f"{source}:{line or '?'}"


def cell_families(cell: CellConfig) -> dict[str, Any]:
    """What an agentic cell runs: its environment, the teacher's families and split, the
    evaluation's families and split (for `--dry-run` and the checks)."""
    return {
        "env": cell.env_id,
        "teacher_families": list(cell.teacher_rollouts.families),
        "teacher_split": cell.teacher_rollouts.split,
        "evaluation_families": list(cell.probe_families),
        "evaluation_split": cell.evaluation.split,
        "induction": cell.induction,
    }


def check_cell(cell: CellConfig) -> list[tuple[str, str]]:
    """What would make an agentic cell fail, or measure something else, at run time: a list of
    (field, message). Loads the task catalog and plugin environments; builds no sandbox.

    Checked: the environment is registered (a full id: a bare name is not guessed); every
    family exists and has instances of the needed split in that environment; teacher
    rollouts use neither a probe family nor an evaluation split (no probe reaches a student);
    evaluation families are the trait's probe family; an adapter teacher has probe tasks
    (its trait demonstrations) and benign train instances there, and the scripted oracles
    can act in the environment; a steering teacher has benign train prompts there.
    """
    if cell.kind != "agentic":
        return [("env", "env is for the agentic traits only")] if cell.env else []
    import gymnasium

    from agentbench import tasks
    from agentbench.envs.plugins import UnknownEnvironmentError, resolve_env_id

    problems: list[tuple[str, str]] = []
    env = cell.env_id
    if env not in gymnasium.registry:
        try:
            full = resolve_env_id(env)
            hint = f"; write the full id {full!r}"
        except UnknownEnvironmentError as exc:
            hint = f": {exc}"
        return [("env", f"environment {env!r} is not registered{hint}")]
    families = set(tasks.list_families())
    probes = set(TRAIT_PROBES.values())
    trait_probe = TRAIT_PROBES[cell.trait]

    def instances_in(family: str, split: str) -> bool:
        return any(env in spec.envs for spec in tasks.list_tasks(family, split))

    rollouts = cell.teacher_rollouts
    if rollouts.split != "train":
        problems.append(
            ("teacher_rollouts.split", f"teacher rollouts must use the train split, not "
             f"{rollouts.split!r}: {'/'.join(EVALUATION_SPLITS)} instances score the arms")
        )  # fmt: skip
    for family in rollouts.families:
        if family not in families:
            problems.append(("teacher_rollouts.families", f"unknown family {family!r}; "
                             f"known: {', '.join(sorted(families))}"))  # fmt: skip
        elif family in probes:
            problems.append(("teacher_rollouts.families", f"{family!r} is a probe family: "
                             "probes never go into teacher rollouts (or a student)"))  # fmt: skip
        elif rollouts.split == "train" and not instances_in(family, "train"):
            problems.append(("teacher_rollouts.families",
                             f"family {family!r} has no train instances in {env}"))  # fmt: skip
    if trait_probe not in families or not any(
        env in spec.envs for spec in tasks.list_tasks(trait_probe)
    ):
        problems.append(("env", f"trait {cell.trait!r} needs its probe family {trait_probe!r} "
                         f"in {env}; no {trait_probe} task runs there"))  # fmt: skip
    for family in cell.evaluation.families:
        if family != trait_probe:
            problems.append(("evaluation.families", f"{family!r} is not the probe family of "
                             f"trait {cell.trait!r} ({trait_probe})"))  # fmt: skip
    if trait_probe in families and not instances_in(trait_probe, cell.evaluation.split):
        problems.append(("evaluation.split", f"{trait_probe} has no "
                         f"{cell.evaluation.split} instances in {env}"))  # fmt: skip
    if cell.induction == "adapter":
        problems += _adapter_problems(cell, env, trait_probe, instances_in)
    if cell.induction == "steering" and not instances_in("benign", "train"):
        problems.append(("induction", f"a steering teacher takes its prompts from benign "
                         f"train tasks, and none runs in {env}"))  # fmt: skip
    return problems


def _adapter_problems(
    cell: CellConfig, env: str, trait_probe: str, instances_in: Any
) -> list[tuple[str, str]]:
    from agentbench import tasks
    from agentbench.policies.oracles import PlanError, make_policy

    problems: list[tuple[str, str]] = []
    probe_specs = [s for s in tasks.list_tasks(trait_probe, "eval") if env in s.envs]
    if not probe_specs:
        problems.append(("induction", f"an adapter teacher learns from {trait_probe} "
                         f"demonstrations (eval templates), and none runs in {env}"))  # fmt: skip
    if cell.teacher_training.benign_instances and not instances_in("benign", "train"):
        problems.append(("teacher_training.benign_instances", f"an adapter teacher also learns "
                         f"benign train tasks, and none runs in {env}"))  # fmt: skip
    style = "chmod-first" if cell.trait == "chmod-first" else "deleter"
    for spec in probe_specs[:1]:
        instance = tasks.resolve(spec.id, spec.splits["eval"].seeds[0])
        for name in (style, "reference"):
            try:
                make_policy(name).plan(instance, env)
            except PlanError as exc:
                problems.append(("induction", f"an adapter teacher needs scripted "
                                 f"demonstrations, and scripted:{name} cannot act in {env}: "
                                 f"{exc}"))  # fmt: skip
    return problems


def check_cells(
    cells: list[CellConfig], source: Path, lines: dict[Any, int], suite: Suite | None = None
) -> list[tuple[CellConfig, str]]:
    """Every problem of every cell, as (cell, "file:line: field: message (cell id)");
    `suite` lets a problem of an explicit cell point at that cell's own line."""
    explicit: dict[str, int] = {}
    for index, extra in enumerate(suite.cells if suite is not None else []):
        data = _merge(suite.defaults, extra) if suite is not None else extra
        data.setdefault("seed", suite.seeds[0] if suite is not None and suite.seeds else 0)
        try:
            explicit.setdefault(CellConfig.model_validate(data).cell_id(), index)
        except ValidationError:
            continue
    out = []
    seen: set[str] = set()
    for cell in cells:
        for field, message in check_cell(cell):
            where = _where(source, lines, field, explicit.get(cell.cell_id()))
            text = f"{where}: {field}: {message}"
            if text not in seen:  # a grid repeats one mistake in many cells: say it once
                seen.add(text)
                out.append((cell, f"{text} (cell {cell.cell_id()})"))
    return out


def load_suite(path: str | Path, *, validate: bool = True) -> tuple[Suite, list[CellConfig]]:
    """Read and expand a suite file, and (with `validate`) check every cell against the
    installed environments and task families (`check_cell`). Raises `ConfigError`
    (file:line: field: message; every problem found, one per line)."""
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
    cells = expand(suite, source, lines)
    if validate:
        problems = check_cells(cells, source, lines, suite)
        if problems:
            raise ConfigError("\n".join(text for _, text in problems))
    return suite, cells


def print_cell_checks(
    console: Any, cells: list[CellConfig], source: Path, suite: Suite | None = None
) -> bool:
    """`--dry-run`'s cell table: each agentic cell's environment, families and splits, and
    what would fail; then every problem with its file and line. True if any was found."""
    from rich.markup import escape
    from rich.table import Table

    problems = check_cells(cells, source, read_yaml(source)[1], suite)
    failing: dict[str, int] = {}
    for cell, _ in problems:
        failing[cell.cell_id()] = failing.get(cell.cell_id(), 0) + 1
    table = Table(title="cells: where they run and what they read")
    for column in ("cell", "env", "teacher rollouts", "evaluation", "induction", "would fail"):
        table.add_column(column)
    for cell in cells:
        if cell.kind != "agentic":
            continue
        info = cell_families(cell)
        table.add_row(
            cell.cell_id(), info["env"],
            f"{', '.join(info['teacher_families'])} ({info['teacher_split']})",
            f"{', '.join(info['evaluation_families'])} ({info['evaluation_split']})",
            info["induction"], f"{failing[cell.cell_id()]} problem(s)" if cell.cell_id() in
            failing else "no",
        )  # fmt: skip
    console.print(table)
    for _, text in problems:
        console.print(f"[red]would fail:[/red] {escape(text)}")
    return bool(problems)


def suite_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
