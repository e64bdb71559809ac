"""The records inside a result bundle (pydantic; `agentbench bundle schema` prints them as JSON
Schema).

A bundle is one gzip-compressed tar archive:

    metadata.yaml               BundleMetadata: submitter, model pair, induction, compute, cost
    suite.yaml                  the suite file the run used (its sha256 is in results.json)
    config.json                 BundleConfig: resolved cells, versions, git revision, task specs
    results.json                what `agentbench run` wrote (agentbench.experiments.results)
    episodes/<stage_key>.jsonl  every evaluation episode of one evaluate stage (one per arm)
    sanitize/<stage_key>.json   the sanitizer's report of each student dataset
    data/<stage_key>.jsonl      the student datasets themselves (only with --with-data)
    manifest.json               Manifest: sha256 of every other file, a chained episode hash

Every record forbids unknown fields, so an edited or foreign bundle fails schema checks with
the field's name rather than being half-read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

BUNDLE_FORMAT = "agentbench-bundle"
BUNDLE_VERSION = 1
"""Bump on any change old verifiers would misread; `verify` refuses versions it does not know."""

METADATA = "metadata.yaml"
SUITE = "suite.yaml"
CONFIG = "config.json"
RESULTS = "results.json"
MANIFEST = "manifest.json"
EPISODES_DIR = "episodes"
SANITIZE_DIR = "sanitize"
DATA_DIR = "data"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Record):
    """One model of the pair, as the evaluated episodes recorded it."""

    name: str
    revision: str | None = None
    weights_sha256: str | None = None
    adapter_sha256: str | None = None


class Compute(_Record):
    device: str = "cpu"
    """Device kind the run used (cpu, an accelerator's name)."""
    hours: float | None = Field(default=None, ge=0)
    """Device-hours of the whole run (the run's wall time when not given)."""
    cost_usd: float | None = Field(default=None, ge=0)


class BundleMetadata(_Record):
    """Who submits what: the part of a bundle its author writes (metadata.yaml)."""

    submitter: str = Field(min_length=1, max_length=200)
    teacher: ModelInfo
    student: ModelInfo
    """The homogeneous student's base (the teacher's base); heterogeneous cells name theirs
    in config.json."""
    heterogeneous_student: ModelInfo | None = None
    induction: str
    report_url: str | None = Field(default=None, max_length=2000)
    compute: Compute = Compute()
    notes: str = Field(default="", max_length=5000)


class StageFile(_Record):
    """An evaluate stage's episodes in the bundle, and which cells' arms use it."""

    stage_key: str
    path: str
    episodes: int
    arms: list[str]
    """`<cell_id>:<arm>` for every cell arm scored on these episodes."""


class StudentData(_Record):
    stage_key: str
    arm: str
    """`<cell_id>:<student arm>`."""
    sha256: str
    """sha256 of the student dataset file (student.jsonl) as the sanitizer wrote it."""
    report: str
    """The sanitizer report's path in the bundle."""
    data: str | None = None
    """The dataset's path in the bundle (with --with-data)."""


class BundleConfig(_Record):
    """What the run was and what produced it (config.json)."""

    suite: str
    suite_sha256: str
    track: str
    """The track (a published suite version) the bundle is submitted to; `open` has no rules."""
    cells: list[dict[str, Any]]
    """Every cell's resolved CellConfig (as in results.json)."""
    agentbench_version: str
    git_revision: str | None = None
    python: str | None = None
    libraries: dict[str, str | None] = Field(default_factory=dict)
    task_specs: dict[str, str]
    """task id -> sha256 of its spec (canonical JSON) for every task the episodes played."""
    stages: list[StageFile]
    student_data: list[StudentData] = Field(default_factory=list)


class Manifest(_Record):
    """manifest.json: the hash of every other file and a chain over the episodes."""

    format: str = BUNDLE_FORMAT
    version: int = BUNDLE_VERSION
    files: dict[str, str]
    """path -> sha256 of the file's bytes, every file but the manifest itself."""
    episodes: int
    episode_chain: str
    """h_0 = sha256(""); h_i = sha256(h_{i-1} + sha256(line_i)) over every episode line, the
    episode files in sorted path order (as lm-evaluation-harness chains its sample hashes)."""


def bundle_json_schema() -> dict[str, Any]:
    """JSON Schema of every record in a bundle, keyed by file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{BUNDLE_FORMAT} v{BUNDLE_VERSION}",
        "files": {
            METADATA: BundleMetadata.model_json_schema(),
            CONFIG: BundleConfig.model_json_schema(),
            MANIFEST: Manifest.model_json_schema(),
        },
    }
