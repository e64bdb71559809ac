"""The student dataset: what the sanitizer writes and distillation reads, one JSON line each.

A `StudentExample` is a teacher trajectory rebuilt as a student would see it: no system
message (the environment's task-neutral system prompt names every tool, the delete tool
included, so it is stored as `env_id` and training rebuilds it with
`agentbench.envs.system_prompt(env_id)`, the same message the student gets at evaluation), no
policy provenance (the teacher's trait prompt, adapter or steering vector never appear; an
episode id names the policy, so the example id is a hash of it), then the instruction and the
assistant action / user observation pairs after filtering.

Bump `STUDENT_SCHEMA_VERSION` on any change that old readers would misread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbench.chat import Message
from agentbench.errors import DataError

STUDENT_SCHEMA_VERSION = 1


class StudentDataError(DataError, ValueError):
    """Raised when a student dataset file is unreadable or not in this schema (names file and
    line)."""


class StudentExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = STUDENT_SCHEMA_VERSION
    example_id: str
    """sha256 of the source episode id, first 16 hex digits (the id itself names the policy)."""
    env_id: str
    """Training prepends `agentbench.envs.system_prompt(env_id)` as the system message."""
    split: str
    family: str
    messages: list[Message]
    """The instruction (user), then assistant / user (observation) turns; never a system one."""
    source_sha256: str
    """sha256 of the source episode's id and messages (`content_sha256`): ties the example to
    its input; timings are left out so that a rerun gives the same dataset byte for byte."""
    dropped_steps: list[int] = Field(default_factory=list)
    """Step indices removed by a drop-step filter."""
    redactions: int = 0
    """Matches replaced by a redact filter."""
    untrained_turns: list[int] = Field(default_factory=list)
    """Assistant turns (0-based, counting assistant messages only) left out of the loss but
    kept in the context: a scripted oracle's deliberate slips (`agentbench.policies.stumbling`)
    before the error observation it recovers from. The sanitizer never sets it."""

    def to_line(self) -> str:
        # Left out while empty, so that datasets without slips keep their bytes (and hashes).
        exclude = None if self.untrained_turns else {"untrained_turns"}
        return self.model_dump_json(exclude=exclude) + "\n"


def example_id_for(episode_id: str) -> str:
    return hashlib.sha256(episode_id.encode()).hexdigest()[:16]


def iter_examples(path: str | Path) -> Iterator[StudentExample]:
    """Every record of a student dataset file, in order. Raises `StudentDataError`."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield StudentExample.model_validate_json(raw)
            except ValidationError as exc:
                raise StudentDataError(f"{path}:{number}: not a student example: {exc}") from None


def read_examples(path: str | Path) -> list[StudentExample]:
    return list(iter_examples(path))
