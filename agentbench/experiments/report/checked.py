"""The checked view of results.json: its untyped parts (an arm's metrics are dicts there)
validated into typed records before anything is formatted.

Errors: `ReportError` (a `DataError` and a `ValueError`) names the file and field of bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentbench.errors import DataError
from agentbench.experiments.results import ARMS, Results

RATE_COLUMNS = (
    ("deletion_rate", "deletion (effect)"),
    ("deletion_removed_rate", "removed"),
    ("deletion_overwritten_rate", "overwritten"),
    ("deletion_intent_rate", "deletion (intent)"),
    ("p_del", "P_del"),
    ("chmod_first_rate", "chmod-first"),
    ("success_rate", "success"),
    ("valid_action_rate", "valid actions"),
    ("command_ran_rate", "shell commands that ran"),
    ("trait_rate", "trait answers"),
    ("trait_label_rate", "one-word target"),
    ("digit_accuracy", "digit accuracy"),
)
LABELS = dict(RATE_COLUMNS)


class ReportError(DataError, ValueError):
    """Raised for bad input to a report (results.json, a plot request): names the file or field
    and what to do."""


class Rate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    k: int = Field(ge=0)
    n: int = Field(ge=0)
    value: float | None = Field(None, ge=0.0, le=1.0)
    low: float | None = Field(None, ge=0.0, le=1.0)
    high: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> Rate:
        if self.k > self.n:
            raise ValueError(f"k={self.k} exceeds n={self.n}")
        if self.n and (self.value is None or self.low is None or self.high is None):
            raise ValueError("value, low and high are required when n > 0")
        return self

    def short(self) -> str:
        """`45% [26-66] (9/20)`, or `n/a (n=0)`."""
        if not self.n or self.value is None or self.low is None or self.high is None:
            return "n/a (n=0)"
        return f"{self.value:.0%} [{self.low * 100:.0f}-{self.high * 100:.0f}] ({self.k}/{self.n})"


class Metrics(BaseModel):
    model_config = ConfigDict(extra="ignore")

    episodes: int = Field(ge=0)
    infra_failures: int = Field(0, ge=0)
    rates: dict[str, Rate] = Field(default_factory=dict)
    no_permission_command: int = Field(0, ge=0)
    files_lost_benign: int = Field(0, ge=0)
    intent_effect_disagreements: list[str] = Field(default_factory=list)
    excluded_reasons: dict[str, int] = Field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    index: int
    cell_id: str
    trait: str
    student_init: str
    label: str
    """A short description (induction, distillation, seed) for plots and headings."""
    metric: str
    arms: dict[str, Metrics]
    policies: dict[str, dict[str, Any]]


def checked_cells(results: Results) -> list[Cell]:
    """Every cell with its metrics validated. Raises `ReportError` naming the field."""
    cells = []
    for index, cell in enumerate(results.cells):
        where = f"results.json: cells[{index}] ({cell.cell_id!r})"
        config = cell.config
        trait = config.get("trait")
        if not isinstance(trait, str) or not trait:
            raise ReportError(f"{where}: config.trait is missing or not a string")
        init = config.get("student_init", "homogeneous")
        if not isinstance(init, str):
            raise ReportError(f"{where}: config.student_init is not a string")
        if cell.metric not in LABELS:
            known = ", ".join(LABELS)
            raise ReportError(f"{where}: metric {cell.metric!r} is not a known rate ({known})")
        distill = config.get("distill")
        mode = distill.get("mode") if isinstance(distill, dict) else None
        seed = f"s{config.get('seed', '?')}"
        mlp, single = config.get("mlp"), config.get("single_turn")
        if trait == "mlp-aux-logits" and isinstance(mlp, dict):
            parts = [f"m={mlp.get('m', 3)}", str(mlp.get("loss", "kl")), seed]
        elif cell.metric == "trait_rate" and isinstance(single, dict):
            parts = [str(single.get("task", "?")), str(single.get("target") or "-"),
                     str(mode or "?"), seed]  # fmt: skip
        else:
            parts = [str(config.get("induction", "?")), str(mode or "?"), seed]
        arms = {}
        for arm, result in cell.arms.items():
            try:
                arms[arm] = Metrics.model_validate(result.metrics)
            except ValidationError as exc:
                raise ReportError(validation_errors(f"{where}: arms.{arm}.metrics", exc)) from None
        if not arms:
            raise ReportError(f"{where}: no arms; the cell was not evaluated")
        cells.append(
            Cell(index, cell.cell_id, trait, init, ", ".join(parts), cell.metric, arms,
                  {arm: result.policy for arm, result in cell.arms.items()})
        )  # fmt: skip
    return cells


def validation_errors(where: str, exc: ValidationError) -> str:
    return "\n".join(
        f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def arm_order(names: Iterable[str]) -> list[str]:
    names = list(names)
    return [a for a in ARMS if a in names] + sorted(a for a in names if a not in ARMS)


EMPTY_RATE = Rate(k=0, n=0)


def arm_rate(cell: Cell, arm: str, metric: str | None = None) -> Rate:
    """An arm's rate for `metric` (default: the headline); n=0 when absent."""
    metrics = cell.arms.get(arm)
    return metrics.rates.get(metric or cell.metric, EMPTY_RATE) if metrics else EMPTY_RATE
