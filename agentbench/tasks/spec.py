"""Task specs: the YAML files under `tasks/` that define task families, validated by pydantic.

A spec names a fixture generator and a checker (both by registry name, see `registry`), the
instruction templates, the environments it runs in and how seeds and templates are split:

    id: benign/find-config-value
    family: benign
    generator: {name: config_lookup, params: {}}
    checker: {name: expect}
    envs: [FileTool-v0, Bash-v0]
    templates:
      - {id: t1, text: "What port does ${service} listen on? Submit the number."}
    splits:
      train: {seeds: [0, 400], templates: [t1]}

Templates use `string.Template` placeholders (`${name}`), never `str.format`: task files are
untrusted, and format strings can reach object attributes. Seed ranges are half-open
`[start, stop)`. Rules checked on load: seed ranges of different splits are disjoint, the
templates of `heldout` are never used by `train`, every template a split names exists, and every
placeholder is a variable the generator declares.

Errors: `TaskSpecError`, whose message names the file and the field.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from string import Template
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from agentbench.errors import ConfigError
from agentbench.tasks.instance import Split

SPLITS: tuple[Split, ...] = ("train", "eval", "heldout")
ENV_ALIASES = {
    "FileTool-v0": "agentbench/FileTool-v0",
    "Bash-v0": "agentbench/Bash-v0",
}
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")
MAX_SPEC_BYTES = 1 << 20


class TaskSpecError(ConfigError, ValueError):
    """Raised when a task spec is malformed; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ref(_Strict):
    """A registry entry by name, with keyword parameters passed to it."""

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


class InstructionTemplate(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    text: str = Field(min_length=1, max_length=4000)

    @field_validator("text")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        placeholders(value)  # raises ValueError on a malformed placeholder
        return value


class SplitSpec(_Strict):
    seeds: tuple[int, int]
    """Half-open range [start, stop) of seeds in this split."""
    templates: tuple[str, ...] = Field(min_length=1)

    @field_validator("seeds")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        start, stop = value
        if not 0 <= start < stop <= 10**9:
            raise ValueError(f"seeds must be [start, stop) with 0 <= start < stop, got {value}")
        return value

    def __contains__(self, seed: object) -> bool:
        return isinstance(seed, int) and self.seeds[0] <= seed < self.seeds[1]

    @property
    def size(self) -> int:
        return self.seeds[1] - self.seeds[0]


class TaskSpec(_Strict):
    """One task: a generator, a checker, templates and splits. See the module docstring."""

    id: str = Field(max_length=120)
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    description: str = ""
    generator: Ref
    checker: Ref
    envs: tuple[str, ...] = ("agentbench/FileTool-v0", "agentbench/Bash-v0")
    templates: tuple[InstructionTemplate, ...] = Field(min_length=1)
    splits: dict[Split, SplitSpec] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(
                f"{value!r} is not a task id (lower-case words joined by '/', like 'benign/x')"
            )
        return value

    @field_validator("envs")
    @classmethod
    def _check_envs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one environment is needed")
        out = []
        for env in value:
            full = ENV_ALIASES.get(env, env)
            if "/" not in full:
                raise ValueError(f"unknown environment {env!r}; use e.g. {sorted(ENV_ALIASES)}")
            out.append(full)
        return tuple(dict.fromkeys(out))

    @field_validator("templates")
    @classmethod
    def _unique_templates(
        cls, value: tuple[InstructionTemplate, ...]
    ) -> tuple[InstructionTemplate, ...]:
        ids = [t.id for t in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate template ids in {ids}")
        return value

    @field_validator("splits")
    @classmethod
    def _check_splits(
        cls, value: dict[Split, SplitSpec], info: ValidationInfo
    ) -> dict[Split, SplitSpec]:
        # Fields validate in order, so `templates` is known here unless it was invalid.
        ids = {t.id for t in info.data.get("templates", ())}
        for name, split in value.items():
            unknown = set(split.templates) - ids
            if ids and unknown:
                raise ValueError(f"split {name!r} names unknown templates {sorted(unknown)}")
        ranges = sorted((s.seeds, n) for n, s in value.items())
        for (a, name_a), (b, name_b) in pairwise(ranges):
            if b[0] < a[1]:
                raise ValueError(f"seed ranges of splits {name_a!r} and {name_b!r} overlap")
        if "train" in value and "heldout" in value:
            shared = set(value["train"].templates) & set(value["heldout"].templates)
            if shared:
                raise ValueError(f"heldout templates {sorted(shared)} are also used by train")
        return value

    def template(self, template_id: str) -> InstructionTemplate:
        return next(t for t in self.templates if t.id == template_id)

    def split_of(self, seed: int) -> Split | None:
        for name, split in self.splits.items():
            if seed in split:
                return name
        return None


def placeholders(text: str) -> set[str]:
    """Names of the `${name}` / `$name` placeholders in a template; ValueError if malformed."""
    template = Template(text)
    if not template.is_valid():
        raise ValueError("malformed placeholder (use ${name}, and $$ for a literal $)")
    return set(template.get_identifiers())


def render(text: str, variables: dict[str, Any]) -> str:
    """Fill a template; raises KeyError naming the missing variable."""
    return Template(text).substitute({k: str(v) for k, v in variables.items()})


def load_spec_file(path: Path) -> TaskSpec:
    """Read and validate one YAML spec. Raises TaskSpecError naming the file and field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaskSpecError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise TaskSpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaskSpecError(f"{path}:{line}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise TaskSpecError(
            f"{path}: a task spec must be a YAML mapping, got {type(data).__name__}"
        )
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise TaskSpecError(f"{path}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"field {loc}: {message}")
    return "; ".join(parts)
