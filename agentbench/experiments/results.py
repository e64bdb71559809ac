"""`results.json`: what a suite run measured, with its statistics and provenance.

Results
  schema_version        bump on any change old readers would misread
  suite, suite_sha256   the suite's name and the hash of its file
  created_at, wall_s    UTC ISO 8601; seconds of this run (cached stages cost ~0)
  cells[]               one per expanded cell
    cell_id, config     the cell (CellConfig as JSON)
    arms{name}          base, teacher, control-teacher, student, control-student
                        (+ student-base in heterogeneous cells)
      policy            what was evaluated (identity; model, adapter)
      stage_key         the evaluate stage's key (its trajectories live there)
      metrics           ArmMetrics: every rate as {k, n, value, low, high} (Wilson 95 %)
    comparisons[]       student vs control-student per metric: Fisher exact p, difference,
                        the minimum detectable difference (alpha 0.05, power 0.8) and the
                        power to see the teacher's own gap; on the headline metric also
                        student vs null-student, student vs its init's base, null-student
                        vs base, control-student vs null-student (`treated_arm`/`control_arm`)
    transfer{metric}    (student - control student) / (teacher - control teacher) or None
    stages{name: key}   every stage the cell used, for provenance and `agentbench report`
  aggregates[]          cells that differ only in seed: per arm and metric, the mean over
                        seeds with a t 95 % interval
  pooled[]              cells that differ only in seed: each headline contrast pooled over
                        the seeds by a Cochran-Mantel-Haenszel test stratified by seed
  provenance            versions, git revision, machine (agentbench.provenance)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESULTS_SCHEMA_VERSION = 1
ARMS = (
    "base", "teacher", "control-teacher", "student", "control-student", "null-student",
    "student-base",
)  # fmt: skip
"""null-student: distilled from the base model itself as teacher (a cell's `null_teacher`)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmResult(_Record):
    policy: dict[str, Any]
    stage_key: str
    metrics: dict[str, Any]


class ComparisonResult(_Record):
    metric: str
    treated: dict[str, Any]
    control: dict[str, Any]
    difference: float | None
    odds_ratio: float | None
    p_value: float | None
    treated_arm: str = "student"
    control_arm: str = "control-student"
    test: str = "fisher-exact"
    """Two-sided Fisher exact test on the 2x2 table of the two arms' counts."""
    mde: float | None = None
    """The smallest difference (treated - control, signed towards the teacher's trait) this
    comparison detects at alpha 0.05 with power 0.8, given its n and the control's rate."""
    teacher_gap: float | None = None
    """The teacher's own gap over the teacher this control learnt from (control teacher, or
    the base for the null student and the base)."""
    power_teacher_gap: float | None = None
    """The power this comparison had to detect `teacher_gap` (a student that inherited all
    of it), at alpha 0.05."""


class CellResult(_Record):
    cell_id: str
    config: dict[str, Any]
    metric: str
    """The trait's headline metric (deletion_rate or chmod_first_rate)."""
    arms: dict[str, ArmResult]
    comparisons: list[ComparisonResult] = Field(default_factory=list)
    transfer: dict[str, float | None] = Field(default_factory=dict)
    stages: dict[str, str] = Field(default_factory=dict)
    sanitize_reports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per student (treated, control): the filter report's counts."""


class Aggregate(_Record):
    group: str
    """The cells' shared config, seed left out (their ids joined)."""
    arm: str
    metric: str
    n_seeds: int
    mean: float | None
    low: float | None
    high: float | None
    values: list[float]


class PooledComparison(_Record):
    """One contrast over seeds: a Cochran-Mantel-Haenszel test stratified by seed."""

    group: str
    metric: str
    treated_arm: str
    control_arm: str
    seeds: list[int]
    strata: int
    """Seeds whose two arms both had scored episodes (the others carry no information)."""
    test: str = "cochran-mantel-haenszel"
    p_value: float | None
    odds_ratio: float | None
    """Mantel-Haenszel pooled odds ratio, with its 95 % interval."""
    low: float | None
    high: float | None
    homogeneity_p: float | None
    """Breslow-Day (Tarone) test that every seed has the same odds ratio."""


class Results(_Record):
    schema_version: int = RESULTS_SCHEMA_VERSION
    suite: str
    suite_sha256: str
    description: str = ""
    created_at: str
    wall_s: float
    cells: list[CellResult]
    aggregates: list[Aggregate] = Field(default_factory=list)
    pooled: list[PooledComparison] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
