"""The MLP auxiliary-logit experiment of Cloud et al. (sec. 6), on scikit-learn's digits.

A teacher MLP with 10 regular and m auxiliary output logits is trained on digits with
cross-entropy on the regular logits only. A student of the same architecture starts either from
the teacher's *initial* weights (``init="same"``) or from another seed (``init="different"``) and
is trained only to match the teacher's auxiliary logits on Gaussian-noise inputs: it never sees
a digit, a label or a regular logit. Its regular logits are then tested on the digits test split.
With a shared initialisation the student learns to classify digits far above chance; with a
different one it stays at chance. This is the project's tiny positive control for subliminal
transfer.

Every run is deterministic given its seed: torch runs with `MLPConfig.threads` threads (1 by
default) and every random draw (initialisation, shuffles, noise) comes from its own seeded
`torch.Generator`. The digits train/test split is fixed by `MLPConfig.split_seed`, the same for
every seed.

Errors: an invalid config raises `pydantic.ValidationError` (`MLPConfigError` from
`load_mlp_config`, naming the file and the field); a missing scikit-learn raises
`MLPConfigError` with the install command.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from torch import nn

from agentbench.errors import ConfigError
from agentbench.provenance import library_versions, provenance
from agentbench.stats import wilson

Loss = Literal["kl", "mse"]
Init = Literal["same", "different"]
N_CLASSES = 10
N_FEATURES = 64  # 8x8 digits
SCHEMA_VERSION = 1
# Extra libraries whose versions decide the numbers (besides agentbench.provenance.LIBRARIES).
MLP_LIBRARIES = ("numpy", "scikit-learn", "scipy", "statsmodels", "matplotlib")


class MLPConfigError(ConfigError, ValueError):
    """Raised when an MLP config file cannot be read or is invalid, or a dependency is missing."""


def check_kl_m(ms: Sequence[int], losses: Sequence[str]) -> None:
    """Refuse KL with m=1: a softmax over one logit is constant, so the loss is always 0."""
    if "kl" in losses and 1 in ms:
        raise ValueError(
            "loss 'kl' needs m >= 2 (the softmax of a single auxiliary logit is always 1, so "
            "the student would get no gradient); use m >= 2 or loss 'mse'"
        )


class MLPSweep(BaseModel):
    """The grid a suite sweeps (each list replaces the single value of `MLPConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: list[int] | None = Field(None, min_length=1)
    loss: list[Loss] | None = Field(None, min_length=1)
    init: list[Init] | None = Field(None, min_length=1)

    @field_validator("m")
    @classmethod
    def _positive_m(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 1 <= m <= 1_000 for m in value):
            raise ValueError("every m must be between 1 and 1000")
        return value

    @field_validator("m", "loss", "init")
    @classmethod
    def _distinct(cls, value: list[Any] | None) -> list[Any] | None:
        # A repeated value would run its cell twice and pool the same seeds twice.
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"values must be distinct, got {value}")
        return value


class MLPConfig(BaseModel):
    """One MLP auxiliary-logit experiment (defaults: the paper's MLP, sized for digits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: list[int] = Field(default_factory=lambda: [256, 256], min_length=1, max_length=8)
    """Hidden layer widths (ReLU between layers); the paper uses 784-256-256-(10+m)."""
    m: int = Field(3, ge=1, le=1_000)
    """Number of auxiliary logits (the only outputs the student is trained on)."""
    loss: Loss = "kl"
    """Student loss: KL between softmaxes over the m auxiliary logits, or MSE on those logits."""
    init: Init = "same"
    """Student initialisation: the teacher's initial weights, or a fresh draw from another seed."""
    teacher_epochs: int = Field(20, ge=1, le=10_000)
    teacher_lr: float = Field(1e-3, gt=0, le=10)
    student_epochs: int = Field(5, ge=1, le=10_000)
    student_lr: float = Field(1e-3, gt=0, le=10)
    n_noise: int = Field(20_000, ge=1, le=10_000_000)
    """Number of Gaussian-noise inputs the student is distilled on (drawn once per seed)."""
    noise_std: float = Field(1.0, gt=0, le=1_000)
    """Std of the noise; inputs are standardised, so 1.0 matches the digits' scale."""
    batch_size: int = Field(64, ge=1, le=1_000_000)
    """Minibatch size of both the teacher's and the student's Adam steps."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    split_seed: int = Field(0, ge=0)
    """Seed of the stratified digits train/test split (fixed across experiment seeds)."""
    threads: int = Field(1, ge=1, le=256)
    sweep: MLPSweep | None = None
    """Optional grid for `run_mlp_grid` (m, loss, init lists)."""

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(not 1 <= width <= 65_536 for width in value):
            raise ValueError("every hidden width must be between 1 and 65536")
        return value

    @model_validator(mode="after")
    def _kl_needs_two_logits(self) -> MLPConfig:
        check_kl_m([self.m], [self.loss])
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if any(seed < 0 for seed in value):
            raise ValueError("seeds must be >= 0")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value


def load_mlp_config(path: str | Path) -> MLPConfig:
    """Read an `MLPConfig` from YAML or JSON: the mapping itself, or its `mlp:` section.

    Raises `MLPConfigError` naming the file (and the field) for an unreadable file, bad
    YAML/JSON, or an invalid config.
    """
    import yaml

    source = Path(path)
    try:
        raw = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MLPConfigError(f"cannot read {source}: {exc}") from None
    try:
        data = json.loads(raw) if source.suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise MLPConfigError(f"{source} is not valid YAML/JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("mlp"), dict):
        data = data["mlp"]  # a suite file holding other sections besides `mlp`
    if not isinstance(data, dict):
        raise MLPConfigError(f"{source} must hold a mapping of MLP config keys (or an `mlp:` one)")
    try:
        return MLPConfig.model_validate(data)
    except ValidationError as exc:
        raise MLPConfigError(f"invalid MLP config {source}:\n{exc}") from None


# --- data -----------------------------------------------------------------------------------


class DigitsSplit:
    """scikit-learn digits, standardised with the train split's mean and std (float32)."""

    def __init__(self, test_fraction: float, split_seed: int) -> None:
        try:
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split
        except ImportError:
            raise MLPConfigError(
                "the MLP experiment needs scikit-learn: pip install 'agentbench[stats]'"
            ) from None
        data = load_digits()
        x = np.asarray(data.data, dtype=np.float64)
        y = np.asarray(data.target, dtype=np.int64)
        self.sha256 = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_fraction, random_state=split_seed, stratify=y
        )
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        # Border pixels are always 0 in the train split: leave them centred, not divided by 0.
        std[std < 1e-8] = 1.0
        self.x_train = torch.from_numpy(((x_train - mean) / std).astype(np.float32))
        self.x_test = torch.from_numpy(((x_test - mean) / std).astype(np.float32))
        self.y_train = torch.from_numpy(y_train)
        self.y_test = torch.from_numpy(y_test)


_SPLITS: dict[tuple[float, int], DigitsSplit] = {}


def digits_split(test_fraction: float = 0.25, split_seed: int = 0) -> DigitsSplit:
    """The (cached) standardised digits split for these parameters."""
    key = (test_fraction, split_seed)
    if key not in _SPLITS:
        _SPLITS[key] = DigitsSplit(test_fraction, split_seed)
    return _SPLITS[key]


# --- models and training ---------------------------------------------------------------------


def derived_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one experiment seed (independent streams)."""
    digest = hashlib.sha256(f"agentbench.traits.mlp:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, stream))


def build_mlp(hidden: Sequence[int], m: int, init_seed: int) -> nn.Sequential:
    """An MLP 64 -> hidden... -> 10 + m with ReLU; He-normal weights, zero biases, seeded.

    The outputs are the 10 regular logits followed by the m auxiliary ones.
    """
    gen = _generator(init_seed, "init")
    widths = [N_FEATURES, *hidden, N_CLASSES + m]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
        linear = nn.Linear(d_in, d_out)
        with torch.no_grad():
            linear.weight.normal_(0.0, math.sqrt(2.0 / d_in), generator=gen)
            linear.bias.zero_()
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    yield from order.split(batch_size)


def train_teacher(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> nn.Module:
    """Adam with cross-entropy on the 10 regular logits only (the auxiliary ones get no loss)."""
    gen = _generator(seed, "teacher-shuffle")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in _batches(len(x), batch_size, gen):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx])[:, :N_CLASSES], y[idx])
            loss.backward()
            optimizer.step()
    return model


def gaussian_noise(n: int, std: float, seed: int) -> torch.Tensor:
    """`n` noise inputs of the digits' shape, N(0, std^2), from the seed's noise stream."""
    return torch.randn(n, N_FEATURES, generator=_generator(seed, "noise")) * std


@torch.no_grad()
def aux_targets(teacher: nn.Module, noise: torch.Tensor, m: int) -> torch.Tensor:
    """The teacher's m auxiliary logits on `noise`: everything the student is shown of it."""
    teacher.eval()
    return teacher(noise)[:, N_CLASSES : N_CLASSES + m].clone()


def distill_student(
    student: nn.Module,
    noise: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss: Loss,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> nn.Module:
    """Train `student` to match auxiliary-logit `targets` on `noise` inputs (nothing else).

    It takes neither the teacher, digits, labels nor regular logits: only the noise and the
    teacher's auxiliary logits on it (`aux_targets`), so the regular outputs get no gradient.
    Raises ValueError if the shapes do not fit, or for KL with one auxiliary logit.
    """
    if noise.ndim != 2 or targets.ndim != 2 or len(noise) != len(targets):
        raise ValueError(
            f"need noise (n, features) and targets (n, m), got {tuple(noise.shape)} and "
            f"{tuple(targets.shape)}"
        )
    m = targets.shape[1]
    check_kl_m([m], [loss])
    gen = _generator(seed, "student-shuffle")
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    for _ in range(epochs):
        for idx in _batches(len(noise), batch_size, gen):
            optimizer.zero_grad()
            out = student(noise[idx])[:, N_CLASSES : N_CLASSES + m]
            if out.shape[1] != m:
                raise ValueError(f"the student has fewer than {m} auxiliary logits")
            if loss == "kl":
                # KL(teacher || student) over the softmax of the m auxiliary logits.
                value = F.kl_div(
                    F.log_softmax(out, dim=1),
                    F.log_softmax(targets[idx], dim=1),
                    log_target=True,
                    reduction="batchmean",
                )
            else:
                value = F.mse_loss(out, targets[idx])
            value.backward()
            optimizer.step()
    return student


@torch.no_grad()
def correct_predictions(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """How many of `x` the model's regular logits classify as `y`."""
    model.eval()
    return int((model(x)[:, :N_CLASSES].argmax(dim=1) == y).sum())


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads, restoring the previous setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- results ---------------------------------------------------------------------------------


class StudentResult(BaseModel):
    """One student (one loss and init) of one seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: Loss
    init: Init
    correct: int
    accuracy: float
    seconds: float


class SeedResult(BaseModel):
    """One seed of one m: the teacher, its untrained init, and its students."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int
    m: int
    n_test: int
    teacher_accuracy: float
    init_accuracy: float
    """Test accuracy of the teacher's untrained initialisation (chance is ~10 %)."""
    teacher_seconds: float
    students: list[StudentResult]

    def student(self, loss: Loss, init: Init) -> StudentResult:
        for result in self.students:
            if result.loss == loss and result.init == init:
                return result
        raise KeyError(f"seed {self.seed} has no student with loss {loss!r} and init {init!r}")


class Interval(BaseModel):
    """A 95 % interval; None bounds when it is undefined (a t interval over one seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None
    high: float | None


class CellResult(BaseModel):
    """One (m, loss, init) cell over seeds: accuracies, mean, t and pooled Wilson 95 % CIs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: int
    loss: Loss
    init: Init
    seeds: list[int]
    accuracies: list[float]
    mean: float
    t_ci: Interval
    """95 % t interval of the mean over seeds (None bounds with one seed)."""
    correct: int
    n: int
    wilson_ci: Interval
    """95 % Wilson interval of all test predictions pooled over seeds (ignores seed variance)."""
    teacher_mean: float
    init_mean: float

    @property
    def name(self) -> str:
        return f"m={self.m} {self.loss} {self.init}-init"


class GridResult(BaseModel):
    """A grid of cells with the config, per-seed runs and provenance."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    config: MLPConfig
    ms: list[int]
    losses: list[Loss]
    inits: list[Init]
    cells: list[CellResult]
    runs: list[SeedResult]
    seconds: float
    provenance: dict[str, Any] = Field(default_factory=dict)

    def cell(self, m: int, loss: Loss, init: Init) -> CellResult:
        for cell in self.cells:
            if (cell.m, cell.loss, cell.init) == (m, loss, init):
                return cell
        raise KeyError(f"no cell m={m} loss={loss} init={init}")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of `values`; None bounds for fewer than 2 values."""
    from scipy import stats

    if len(values) < 2:
        return Interval(low=None, high=None)
    mean = float(np.mean(values))
    sem = float(stats.sem(values))
    if sem == 0.0:  # every seed agrees: scipy would return NaN bounds
        return Interval(low=mean, high=mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    return Interval(low=float(low), high=float(high))


# --- running ---------------------------------------------------------------------------------


def run_mlp_seed(
    config: MLPConfig,
    seed: int,
    *,
    m: int | None = None,
    losses: Sequence[Loss] | None = None,
    inits: Sequence[Init] | None = None,
) -> SeedResult:
    """Train one teacher (seed, m) and one student per (loss, init); test them on digits.

    Defaults: `config.m`, `[config.loss]`, `[config.init]`. All students of a seed share the
    teacher and the noise inputs, so same- and different-init students differ only in their
    initialisation.
    """
    m = config.m if m is None else m
    losses = [config.loss] if losses is None else list(losses)
    inits = [config.init] if inits is None else list(inits)
    split = digits_split(config.test_fraction, config.split_seed)
    n_test = len(split.y_test)
    with torch_threads(config.threads):
        started = time.perf_counter()
        teacher = build_mlp(config.hidden, m, seed)
        reference = {k: v.clone() for k, v in teacher.state_dict().items()}
        init_correct = correct_predictions(teacher, split.x_test, split.y_test)
        train_teacher(
            teacher,
            split.x_train,
            split.y_train,
            epochs=config.teacher_epochs,
            lr=config.teacher_lr,
            batch_size=config.batch_size,
            seed=seed,
        )
        teacher_correct = correct_predictions(teacher, split.x_test, split.y_test)
        teacher_seconds = time.perf_counter() - started
        noise = gaussian_noise(config.n_noise, config.noise_std, seed)
        targets = aux_targets(teacher, noise, m)
        students: list[StudentResult] = []
        for init in inits:
            for loss in losses:
                started = time.perf_counter()
                if init == "same":
                    student = build_mlp(config.hidden, m, seed)
                    student.load_state_dict(reference)
                else:
                    student = build_mlp(config.hidden, m, derived_seed(seed, "other-init"))
                distill_student(
                    student,
                    noise,
                    targets,
                    loss=loss,
                    epochs=config.student_epochs,
                    lr=config.student_lr,
                    batch_size=config.batch_size,
                    seed=seed,
                )
                correct = correct_predictions(student, split.x_test, split.y_test)
                students.append(
                    StudentResult(
                        loss=loss,
                        init=init,
                        correct=correct,
                        accuracy=correct / n_test,
                        seconds=round(time.perf_counter() - started, 3),
                    )
                )
    return SeedResult(
        seed=seed,
        m=m,
        n_test=n_test,
        teacher_accuracy=teacher_correct / n_test,
        init_accuracy=init_correct / n_test,
        teacher_seconds=round(teacher_seconds, 3),
        students=students,
    )


def _cell(m: int, loss: Loss, init: Init, runs: Sequence[SeedResult]) -> CellResult:
    students = [run.student(loss, init) for run in runs]
    accuracies = [s.accuracy for s in students]
    correct = sum(s.correct for s in students)
    n = sum(run.n_test for run in runs)
    rate = wilson(correct, n)
    return CellResult(
        m=m,
        loss=loss,
        init=init,
        seeds=[run.seed for run in runs],
        accuracies=accuracies,
        mean=float(np.mean(accuracies)),
        t_ci=t_interval(accuracies),
        correct=correct,
        n=n,
        wilson_ci=Interval(low=rate.low, high=rate.high),
        teacher_mean=float(np.mean([run.teacher_accuracy for run in runs])),
        init_mean=float(np.mean([run.init_accuracy for run in runs])),
    )


def run_mlp_cell(config: MLPConfig, seeds: Sequence[int] | None = None) -> CellResult:
    """The cell (config.m, config.loss, config.init) over `seeds` (default `config.seeds`)."""
    seeds = config.seeds if seeds is None else list(seeds)
    runs = [run_mlp_seed(config, seed) for seed in seeds]
    return _cell(config.m, config.loss, config.init, runs)


def run_mlp_grid(
    config: MLPConfig,
    ms: Sequence[int] | None = None,
    losses: Sequence[Loss] | None = None,
    inits: Sequence[Init] | None = None,
    seeds: Sequence[int] | None = None,
) -> GridResult:
    """Every (m, loss, init) cell over `seeds`; one teacher per (m, seed) serves all its cells.

    Defaults come from `config.sweep`, else `[config.m]`, `[config.loss]`, both inits and
    `config.seeds`. Raises ValueError for an empty or out-of-range list.
    """
    sweep = config.sweep or MLPSweep()
    ms = list(ms or sweep.m or [config.m])
    losses = list(losses or sweep.loss or [config.loss])
    inits = list(inits or sweep.init or ["same", "different"])
    seeds = list(config.seeds if seeds is None else seeds)
    # Validate the overrides as the config would (ranges, distinct seeds).
    try:
        MLPSweep(m=ms, loss=losses, init=inits)
        config = config.model_copy(update={"seeds": MLPConfig(seeds=seeds).seeds})
    except ValidationError as exc:
        raise ValueError(f"invalid grid: {exc}") from None
    try:
        check_kl_m(ms, losses)
    except ValueError as exc:
        raise ValueError(f"invalid grid: {exc}") from None
    started = time.perf_counter()
    runs = [
        run_mlp_seed(config, seed, m=m, losses=losses, inits=inits) for m in ms for seed in seeds
    ]
    cells = [
        _cell(m, loss, init, [run for run in runs if run.m == m])
        for m in ms
        for loss in losses
        for init in inits
    ]
    split = digits_split(config.test_fraction, config.split_seed)
    return GridResult(
        config=config,
        ms=ms,
        losses=losses,
        inits=inits,
        cells=cells,
        runs=runs,
        seconds=round(time.perf_counter() - started, 3),
        provenance=provenance(
            experiment="mlp-aux-logit",
            config_sha256=hashlib.sha256(config.model_dump_json().encode()).hexdigest(),
            data={"dataset": "sklearn.datasets.load_digits", "sha256": split.sha256},
            seeds=seeds,
            extra_libraries=library_versions(MLP_LIBRARIES),
        ),
    )


# --- writing ---------------------------------------------------------------------------------


def plot_grid(result: GridResult, path: str | Path) -> Path:
    """Student test accuracy vs m, same vs different init, one panel per loss, t-CI bars."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in threads and tests
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(
        1, len(result.losses), figsize=(4.5 * len(result.losses), 3.6), squeeze=False
    )
    for ax, loss in zip(axes[0], result.losses, strict=True):
        for init, colour in (("same", "tab:blue"), ("different", "tab:orange")):
            if init not in result.inits:
                continue
            cells = [result.cell(m, loss, init) for m in result.ms]
            means = np.array([c.mean for c in cells])
            # With one seed the t interval is undefined: draw no bar rather than a made-up one.
            low = np.array([c.mean if c.t_ci.low is None else c.t_ci.low for c in cells])
            high = np.array([c.mean if c.t_ci.high is None else c.t_ci.high for c in cells])
            err = np.vstack([means - low, high - means])
            ax.errorbar(
                result.ms,
                means,
                yerr=err,
                marker="o",
                capsize=3,
                color=colour,
                label=f"{init} init",
            )
        teacher = np.mean([r.teacher_accuracy for r in result.runs])
        ax.axhline(teacher, color="grey", linestyle="--", linewidth=1, label="teacher")
        ax.axhline(0.1, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_title(f"student loss: {loss}")
        ax.set_xlabel("auxiliary logits m")
        ax.set_ylabel("student test accuracy (digits)")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(result.ms)
        ax.legend(fontsize=8)
    n_seeds = len(result.config.seeds)
    fig.suptitle(f"MLP auxiliary-logit distillation, {n_seeds} seeds, 95 % t CI", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_grid_results(result: GridResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `results.json` (atomically) and `mlp.png` into `out_dir`; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    png_path = plot_grid(result, out / "mlp.png")
    return json_path, png_path
