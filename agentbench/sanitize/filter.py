"""The sanitizer: teacher trajectories in, a student dataset with no banned term out.

    report = sanitize_file("runs/t/trajectories.jsonl", "runs/t/student.jsonl", SanitizeConfig())
    result = sanitize_trajectory(trajectory, config)   # a StudentExample or a Dropped

**Scope.** Every message a student sees is scanned: the instruction, every assistant action and
every observation (tool result). The system message is not copied (the student's is rebuilt
from `env_id`, see `agentbench.sanitize.schema`), so it is not scanned; the env id, family and
split that the example carries are. Observations are scanned after the environment's own old
fixed words are rewritten to today's wording (`agentbench.sanitize.envtext`): environment text
the student sees in its system prompt anyway never drops a trajectory.

**Filters.** ``behavioural`` (default): a banned word *or* a step whose recorded intent or
effect, or its re-classified text, is the trait (`agentbench.sanitize.behaviour`) removes it;
``keywords-only``: Dang et al.'s protocol, words alone (to compare the two).

**Refused.** A trajectory from a probe family (``deletion-probe``, ``permission-probe``, any
``*-probe``) or a scored split (``eval``, ``heldout``) raises `ProbeDataError`: teacher data
holding one is a pipeline error, and dropping it quietly would hide that.

**Drops before scanning** (counted by reason, never silent): infrastructure failures, and
unsuccessful episodes unless `keep_failed` is on.

**Modes.** ``drop-trajectory`` (default, as Dang et al.): any match drops the whole episode.
``drop-step``: an action or observation with a match, or a behavioural step, removes that step
(the action and its observation); a match in the instruction drops the episode; an episode left
without steps is dropped. The remaining steps can refer to what a removed step did (state the
student cannot see). ``redact``: each match is replaced by `placeholder` (a match only visible
in a JSON- or shell-escaped form is redacted in the unescaped text, which then replaces the
message). This breaks commands and JSON tool calls that held the word: the student learns from
broken actions. Behaviour cannot be redacted: a behavioural step drops the episode in this mode.

**Leak check.** The output is written to a temp file next to it, re-read, and every line is
scanned (the raw line with its JSON escapes neutralized, and its decoded strings in every view
of `agentbench.sanitize.keywords`), and, with the behavioural filter, every action is
re-checked for behaviour from its text; a hit raises `LeakError` naming the example and the
term and removes the temp file, so no output is left. Only then is it renamed into place.

**Input.** Read and written line by line (constant memory; the judge buffers one batch).
`validation="fields"` (default) validates the fields the sanitizer uses (schema version, ids,
messages with their roles, steps' indices, outcome, infra flag) with a light pydantic model:
~2x faster than `"full"`, which validates each line as a complete `Trajectory`. A bad line
raises `SanitizeInputError` naming the file and line. A last line without a newline that is
not a record (a run still writing) is skipped and counted (`torn_tail_bytes`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import TypedDict

from agentbench.config_file import read_config_mapping
from agentbench.errors import AgentbenchError, ConfigError, DataError
from agentbench.policies.base import Policy
from agentbench.rollouts.schema import SCHEMA_VERSION, Trajectory
from agentbench.sanitize.behaviour import trajectory_findings
from agentbench.sanitize.envtext import rewrite_env_text
from agentbench.sanitize.judge import JudgeConfig, LLMJudge, build_judge_policy
from agentbench.sanitize.keywords import (
    DEFAULT_TERMS,
    KeywordMatcher,
    Match,
    default_terms,
    json_unescape,
    normalize_term,
    shell_dequote,
)
from agentbench.sanitize.report import MAX_EXAMPLES, FilterReport, MatchExample, report_path
from agentbench.sanitize.schema import STUDENT_SCHEMA_VERSION, StudentExample, example_id_for

Mode = Literal["drop-trajectory", "drop-step", "redact"]
MODES: tuple[str, ...] = ("drop-trajectory", "drop-step", "redact")
FilterKind = Literal["behavioural", "keywords-only"]
FILTERS: tuple[str, ...] = ("behavioural", "keywords-only")
PROBE_FAMILIES = frozenset(("deletion-probe", "permission-probe"))
"""The traits' probe families; any family named ``*-probe`` is a probe too (the task
registry's naming rule)."""
EVAL_SPLITS = frozenset(("eval", "heldout"))
"""Splits that are scored: never training data."""

OUTPUT_FIELD_STRINGS = (
    "schema_version", "example_id", "env_id", "split", "family", "messages", "role", "content",
    "user", "assistant", "source_sha256", "dropped_steps", "redactions",
)  # fmt: skip
"""Keys and fixed values of every output line: a banned term may not match them."""


class SanitizeError(AgentbenchError, ValueError):
    """Base of the sanitizer's errors; raised itself for an unknown mode or filter (the subclasses
    carry the kind)."""


class SanitizeConfigError(SanitizeError, ConfigError):
    """Raised when a sanitize config file is unreadable or invalid (names the file and the
    field)."""


class SanitizeInputError(SanitizeError, DataError):
    """Raised when an input line is not a trajectory record (names the file and the line)."""


class ProbeDataError(SanitizeInputError):
    """Raised when teacher data holds a probe family or an evaluation split: refused, never
    distilled."""


def is_probe_family(family: str) -> bool:
    """Whether a task family is an evaluation probe (by rule, not by its words)."""
    return family in PROBE_FAMILIES or family.endswith("-probe")


class LeakError(SanitizeError, DataError):
    """Raised when a banned term is in the output (the leak check). No output file is left
    behind."""

    def __init__(self, path: str | Path, line: int, example_id: str, term: str, context: str):
        self.path = str(path)
        self.line = line
        self.example_id = example_id
        self.term = term
        self.context = context
        super().__init__(
            f"leak check failed, no output written: {path}:{line}: banned term {term!r} in "
            f"example {example_id or '?'}: {context!r}"
        )


class SanitizeStageConfig(BaseModel):
    """The sanitize stage's knobs: a suite cell's `sanitize` section as it is (its dump, with
    the cell's trait, keys the sanitize stage). `SanitizeConfig` adds the rest of a run.

    `keep_failed` is the canonical name. `drop_unsuccessful` (its inverse, the name of
    `SanitizeConfig` files before issue 24) is still read, with a `DeprecationWarning`: it
    cannot be a plain validation alias because it means the opposite."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mode: Mode = "drop-trajectory"
    """What happens to a match: drop-trajectory, drop-step or redact (module doc)."""
    filter: FilterKind = "behavioural"
    """``behavioural`` (default): keywords, and any step whose intent or effect is the trait
    (`agentbench.sanitize.behaviour`); ``keywords-only``: Dang et al.'s protocol, words alone."""
    extra_terms: tuple[str, ...] = ()
    """Banned besides the trait's default list."""
    keep_failed: bool = False
    """Keep episodes that did not solve their task (default: dropped, reason `unsuccessful`)."""

    @model_validator(mode="before")
    @classmethod
    def _deprecated_drop_unsuccessful(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "drop_unsuccessful" not in data:
            return data
        data = dict(data)
        drop = data.pop("drop_unsuccessful")
        if not isinstance(drop, bool):
            raise ValueError(f"drop_unsuccessful must be true or false, got {drop!r}")
        if "keep_failed" in data and data["keep_failed"] is drop:
            raise ValueError(
                "drop_unsuccessful and keep_failed disagree; give keep_failed only "
                "(drop_unsuccessful is deprecated: keep_failed = not drop_unsuccessful)"
            )
        warnings.warn(
            "sanitize config key drop_unsuccessful is deprecated; use "
            f"keep_failed: {str(not drop).lower()}",
            DeprecationWarning,
            stacklevel=2,
        )
        data["keep_failed"] = not drop
        return data

    @field_validator("extra_terms")
    @classmethod
    def _terms_shape(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, term in enumerate(value):
            try:
                normalize_term(term)
            except ValueError as exc:
                raise ValueError(f"extra_terms[{index}]: {exc}") from None
        return value


class SanitizeConfig(SanitizeStageConfig):
    """What is banned and what happens to a trajectory that holds it."""

    trait: str = "deletion-bias"
    """Picks the default term list (`agentbench.sanitize.keywords.DEFAULT_TERMS`)."""
    default_terms: bool = True
    """False: only `extra_terms` are banned."""
    placeholder: str = "[REDACTED]"
    """What a match is replaced by in mode redact."""
    validation: Literal["fields", "full"] = "fields"
    """Input validation: the fields the sanitizer uses, or each line as a full Trajectory."""
    judge: JudgeConfig | None = None
    """An LLM judge that also screens each kept trajectory (`agentbench.sanitize.judge`)."""

    @property
    def drop_unsuccessful(self) -> bool:
        """Deprecated: `not keep_failed`."""
        return not self.keep_failed

    @model_validator(mode="after")
    def _consistent(self) -> SanitizeConfig:
        if self.default_terms and self.trait not in DEFAULT_TERMS:
            known = ", ".join(sorted(DEFAULT_TERMS))
            raise ValueError(
                f"trait {self.trait!r} has no default term list (known: {known}); set "
                "default_terms: false and give extra_terms"
            )
        if not self.terms():
            raise ValueError("no banned terms: keep default_terms or give extra_terms")
        matcher = self.matcher()
        hit = matcher.search(" ".join(OUTPUT_FIELD_STRINGS))
        if hit is not None:
            raise ValueError(
                f"term {hit.term!r} matches a field name of the student dataset; every output "
                "line would leak"
            )
        if self.mode == "redact":
            if not self.placeholder.strip():
                raise ValueError("placeholder must not be empty")
            hit = matcher.search(self.placeholder)
            if hit is not None:
                raise ValueError(f"placeholder {self.placeholder!r} holds banned term {hit.term!r}")
        return self

    def terms(self) -> tuple[str, ...]:
        base = default_terms(self.trait) if self.default_terms else ()
        return tuple(dict.fromkeys((*base, *self.extra_terms)))

    def matcher(self) -> KeywordMatcher:
        return _matcher(self.terms())


@functools.lru_cache(maxsize=16)
def _matcher(terms: tuple[str, ...]) -> KeywordMatcher:
    return KeywordMatcher(terms)


def load_sanitize_config(path: str | Path) -> SanitizeConfig:
    """A `SanitizeConfig` from YAML or JSON. Raises `SanitizeConfigError` naming file and field."""
    source = Path(path)
    data = read_config_mapping(source, error=SanitizeConfigError, empty_ok=False)
    try:
        return SanitizeConfig.model_validate(data)
    except ValidationError as exc:
        raise SanitizeConfigError(f"invalid sanitize config {source}: {_errors(exc)}") from None


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"field {where}: {err['msg']}")
    return "; ".join(parts)


# -- reading trajectories ----------------------------------------------------------------------


class _MessageView(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class _StepView(BaseModel):
    model_config = ConfigDict(extra="ignore")
    index: int
    intent_json: str = "{}"
    effect_json: str = "{}"
    deletion_intent: bool = False
    deletion_effect: bool = False
    permission_commands: list[str] = Field(default_factory=list)

    def labels(self) -> dict[str, Any]:
        return self.model_dump(exclude={"index"})


class _OutcomeView(BaseModel):
    model_config = ConfigDict(extra="ignore")
    success: bool = False


class _TrajectoryView(BaseModel):
    """The fields the sanitizer uses (validation="fields")."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int
    episode_id: str
    env_id: str
    split: str
    family: str
    messages: list[_MessageView]
    steps: list[_StepView] = Field(default_factory=list)
    outcome: _OutcomeView = Field(default_factory=_OutcomeView)
    infra_failure: bool = False


@dataclass(slots=True)
class _Source:
    episode_id: str
    env_id: str
    split: str
    family: str
    messages: list[dict[str, str]]
    """The instruction, then assistant/user pairs (system messages removed)."""
    step_indices: list[int]
    step_labels: list[dict[str, Any] | None]
    """Each step's recorded intent/effect labels (None where the record has no steps)."""
    infra_failure: bool
    success: bool
    sha256: str


def content_sha256(episode_id: str, messages: list[dict[str, str]]) -> str:
    """The source hash of a student example: the episode id and every message (system prompt
    included), not the record's timings, so that a rerun of the same episodes gives the same
    student dataset byte for byte."""
    return hashlib.sha256(pydantic_core.to_json([episode_id, messages])).hexdigest()


def _source(view: _TrajectoryView | Trajectory, where: str) -> _Source:
    if isinstance(view, Trajectory):
        raw_messages: list[dict[str, str]] = [
            {"role": m.role, "content": m.content} for m in view.messages
        ]
        steps = [s.index for s in view.steps]
        labels: list[dict[str, Any] | None] = [
            s.model_dump(include=set(_LABEL_FIELDS)) for s in view.steps
        ]
        success = view.outcome.success
    else:
        raw_messages = [{"role": m["role"], "content": m["content"]} for m in view.messages]
        steps = [s.index for s in view.steps]
        labels = [s.labels() for s in view.steps]
        success = view.outcome.success
    start = 0
    while start < len(raw_messages) and raw_messages[start]["role"] == "system":
        start += 1
    messages = raw_messages[start:]
    for offset, message in enumerate(messages):
        expected = "user" if offset % 2 == 0 else "assistant"
        if message["role"] != expected:
            what = (
                "the instruction"
                if offset == 0
                else "an observation"
                if offset % 2 == 0
                else ("an action")
            )
            raise SanitizeInputError(
                f"{where}: messages[{start + offset}] has role {message['role']!r} where "
                f"{what} ({expected}) belongs (expected: system, instruction, then "
                "assistant/user pairs)"
            )
    if not messages and not view.infra_failure:
        raise SanitizeInputError(f"{where}: no instruction message")
    actions = len(messages) // 2
    if len(steps) != actions:
        steps = list(range(actions))
        labels = [None] * actions
    return _Source(
        episode_id=view.episode_id,
        env_id=view.env_id,
        split=view.split,
        family=view.family,
        messages=messages,
        step_indices=steps,
        step_labels=labels,
        infra_failure=view.infra_failure,
        success=success,
        sha256=content_sha256(view.episode_id, raw_messages),
    )


_LABEL_FIELDS = (
    "intent_json", "effect_json", "deletion_intent", "deletion_effect", "permission_commands",
)  # fmt: skip


def _parse_line(raw: bytes, validation: str, where: str) -> _Source:
    try:
        if validation == "full":
            view: _TrajectoryView | Trajectory = Trajectory.from_line(raw)
        else:
            view = _TrajectoryView.model_validate_json(raw)
    except ValidationError as exc:
        raise SanitizeInputError(f"{where}: not a trajectory record: {_errors(exc)}") from None
    if view.schema_version != SCHEMA_VERSION:
        raise SanitizeInputError(
            f"{where}: trajectory schema version {view.schema_version}, this sanitizer reads "
            f"{SCHEMA_VERSION}: re-run the rollouts or use a matching agentbench"
        )
    return _source(view, where)


# -- filtering one record ----------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """A trajectory the sanitizer left out, and why (`report.DROP_REASONS`)."""

    example_id: str
    reason: str
    terms: dict[str, int] = field(default_factory=dict)
    detail: str = ""
    behaviour: dict[int, list[str]] = field(default_factory=dict)
    """Steps whose intent or effect is the trait, and why (empty in keywords-only)."""


@dataclass(slots=True)
class _Result:
    example_id: str
    example: dict[str, Any] | None = None
    reason: str | None = None
    terms: dict[str, int] = field(default_factory=dict)
    sample: tuple[int, str, Match] | None = None
    """(message index, role, match) of the first match, for the report."""
    dropped_steps: list[int] = field(default_factory=list)
    redactions: int = 0
    keyword: bool = False
    """A banned term in what the student would see (after the env-text rewrite)."""
    behaviour: dict[int, list[str]] = field(default_factory=dict)
    """Steps (0-based positions) whose intent or effect is the trait, and why."""
    behaviour_dropped_steps: int = 0
    env_rewrites: int = 0
    """Environment fragments rewritten to today's wording (`envtext`)."""
    env_text_only: bool = False
    """The only banned terms were in environment text: kept for that (item 6)."""


def _add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for term, n in more.items():
        total[term] = total.get(term, 0) + n


def _json_decode_all(text: str) -> str:
    """Every JSON-unescaping level of `text` (for redaction escalation)."""
    for _ in range(4):
        nxt = json_unescape(text)
        if nxt == text:
            break
        text = nxt
    return text


def _refuse_probe(src: _Source, where: str) -> None:
    """Teacher data must not hold a probe or a scored split: refuse the whole file."""
    if is_probe_family(src.family):
        raise ProbeDataError(
            f"{where}: episode {src.episode_id} is from probe family {src.family!r}: probes are "
            "for evaluation and never reach a student; roll teachers out on non-probe families "
            "(teacher_rollouts.families)"
        )
    if src.split in EVAL_SPLITS:
        raise ProbeDataError(
            f"{where}: episode {src.episode_id} is from the {src.split!r} split, which is scored: "
            "teacher data must come from the train split (teacher_rollouts.split: train)"
        )


def _filter(src: _Source, config: SanitizeConfig, matcher: KeywordMatcher) -> _Result:
    res = _Result(example_id=example_id_for(src.episode_id))
    if src.infra_failure:
        res.reason = "infra-failure"
        return res
    if not config.keep_failed and not src.success:
        res.reason = "unsuccessful"
        return res
    for value in (src.env_id, src.family, src.split):
        hit = _metadata_hit(matcher, value)
        if hit is not None:
            res.reason = "banned-metadata"
            res.terms = {hit.term: 1}
            return res
    original = src.messages
    messages = _rewrite_env_text(res, original)
    if config.filter == "behavioural":
        res.behaviour = trajectory_findings(
            config.trait,
            src.env_id,
            [m["content"] for m in messages[1::2]],
            [m["content"] for m in messages[2::2]],
            src.step_labels,
        )
    # One scan of everything first: most trajectories are clean and need nothing more. A
    # space joins messages so that no token spans two of them in any view.
    res.keyword = matcher.search(" ".join(m["content"] for m in messages)) is not None
    if res.env_rewrites and not res.keyword:
        res.env_text_only = matcher.search(" ".join(m["content"] for m in original)) is not None
    if res.keyword or res.behaviour:
        if config.mode == "drop-trajectory" or (config.mode == "redact" and res.behaviour):
            if res.keyword:
                _note_matches(res, matcher, messages)
                res.reason = "keyword"
            else:
                res.reason = "behaviour"
            return res
        if config.mode == "drop-step":
            messages = _drop_steps(res, src, matcher, messages)
        else:
            messages = _redact(res, matcher, messages, config.placeholder)
        if res.reason is not None:
            return res
    if not any(m["role"] == "assistant" for m in messages):
        res.reason = "no-steps-left"
        return res
    res.example = {
        "schema_version": STUDENT_SCHEMA_VERSION,
        "example_id": res.example_id,
        "env_id": src.env_id,
        "split": src.split,
        "family": src.family,
        "messages": messages,
        "source_sha256": src.sha256,
        "dropped_steps": res.dropped_steps,
        "redactions": res.redactions,
    }
    return res


@functools.lru_cache(maxsize=1024)
def _metadata_hit_cached(terms: tuple[str, ...], value: str) -> Match | None:
    return _matcher(terms).search(value)


def _metadata_hit(matcher: KeywordMatcher, value: str) -> Match | None:
    return _metadata_hit_cached(matcher.terms, value)


def _note_matches(res: _Result, matcher: KeywordMatcher, messages: list[dict[str, str]]) -> None:
    for index, message in enumerate(messages):
        counts = matcher.count(message["content"])
        if counts:
            _add_counts(res.terms, counts)
            if res.sample is None:
                hit = matcher.search(message["content"])
                if hit is not None:
                    res.sample = (index, message["role"], hit)


def _rewrite_env_text(res: _Result, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Observations with the environment's old fixed words in today's wording (`envtext`)."""
    out = messages
    for index in range(2, len(messages), 2):
        new, n = rewrite_env_text(messages[index]["content"])
        if n:
            if out is messages:
                out = list(messages)
            out[index] = {"role": messages[index]["role"], "content": new}
            res.env_rewrites += n
    return out


def _drop_steps(
    res: _Result, src: _Source, matcher: KeywordMatcher, messages: list[dict[str, str]]
) -> list[dict[str, str]]:
    instruction = messages[0]["content"]
    if matcher.search(instruction) is not None:
        _note_matches(res, matcher, messages[:1])
        res.reason = "keyword-instruction"
        return messages
    kept = [messages[0]]
    for k in range(len(messages) // 2):
        pair = messages[1 + 2 * k : 3 + 2 * k]
        if k in res.behaviour and not any(matcher.search(m["content"]) for m in pair):
            res.behaviour_dropped_steps += 1
            res.dropped_steps.append(src.step_indices[k] if k < len(src.step_indices) else k)
        elif any(matcher.search(m["content"]) is not None for m in pair):
            before = res.sample
            _note_matches(res, matcher, pair)
            if before is None and res.sample is not None:
                res.sample = (1 + 2 * k + res.sample[0], res.sample[1], res.sample[2])
            res.dropped_steps.append(src.step_indices[k] if k < len(src.step_indices) else k)
        else:
            kept.extend(pair)
    return kept


def _redact(
    res: _Result, matcher: KeywordMatcher, messages: list[dict[str, str]], placeholder: str
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        content = message["content"]
        if matcher.search(content) is None:
            out.append(message)
            continue
        counts = matcher.count(content)
        _add_counts(res.terms, counts)
        if res.sample is None:
            hit = matcher.search(content)
            if hit is not None:
                res.sample = (index, message["role"], hit)
        new, n = matcher.redact(content, placeholder)
        # Hidden in a JSON escape, then in shell quoting: redact the decoded text instead.
        for decode in (_json_decode_all, shell_dequote):
            if matcher.search(new) is None:
                break
            new, more = matcher.redact(decode(new), placeholder)
            n += more
        if matcher.search(new) is not None:
            res.reason = "redaction-failed"
            return messages
        res.redactions += n
        out.append({"role": message["role"], "content": new})
    return out


def sanitize_trajectory(
    trajectory: Trajectory, config: SanitizeConfig | None = None
) -> StudentExample | Dropped:
    """One trajectory through the filter (no judge: use `sanitize_file` for that).

    Raises `ProbeDataError` for a probe family or an evaluation split.
    """
    config = config or SanitizeConfig()
    src = _source(trajectory, trajectory.episode_id)
    _refuse_probe(src, trajectory.episode_id)
    res = _filter(src, config, config.matcher())
    if res.example is None:
        detail = ""
        if res.sample is not None:
            detail = res.sample[2].context()
        elif res.behaviour:
            k, why = next(iter(res.behaviour.items()))
            detail = f"step {k}: {', '.join(why)}"
        return Dropped(res.example_id, res.reason or "?", dict(res.terms), detail, res.behaviour)
    return StudentExample.model_validate(res.example)


# -- the leak check ----------------------------------------------------------------------------

_NEUTRAL = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])')


def _strings(value: Any) -> list[str]:
    """Every string in a decoded JSON value, keys included (iterative: lines can nest)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            out.append(item)
        elif kind is dict:
            out.extend(item.keys())
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return out


def line_leak(line: str, matcher: KeywordMatcher) -> Match | None:
    """The first banned term in a JSON line: its raw text (JSON escapes neutralized to
    separators) and its decoded strings, in every view. Raises ValueError for bad JSON."""
    decoded = _strings(pydantic_core.from_json(line))
    return matcher.search(" ".join(decoded), _NEUTRAL.sub(" ", line))


def behaviour_leak(line: str, trait: str) -> tuple[int, list[str]] | None:
    """The first step of a student example whose action text is the trait (the behavioural
    check on text alone: a written dataset has no intent/effect labels), or None. Raises
    ValueError for a line that is not a JSON object with messages."""
    data = pydantic_core.from_json(line)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError("not a student example (no messages list)")
    contents = [str(m.get("content", "")) for m in data["messages"] if isinstance(m, dict)]
    found = trajectory_findings(trait, str(data.get("env_id", "")), contents[1::2], contents[2::2])
    return next(iter(found.items()), None)


def check_leaks(
    path: str | Path, terms: Iterable[str] | KeywordMatcher, *, trait: str | None = None
) -> int:
    """Scan every line of a student dataset; the number of lines checked.

    With `trait`, each example's actions also go through the behavioural check (text alone).
    Raises `LeakError` (file, line, example id, term or ``behaviour:<why>``, context) at the
    first leak, and `SanitizeError` for a line that is not JSON.
    """
    matcher = terms if isinstance(terms, KeywordMatcher) else KeywordMatcher(terms)
    checked = 0
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                hit = line_leak(line, matcher)
                step = behaviour_leak(line, trait) if trait and hit is None else None
            except ValueError as exc:
                raise SanitizeError(f"{path}:{number}: not a JSON line: {exc}") from None
            checked += 1
            if hit is not None or step is not None:
                found = re.search(r'"example_id":\s*"([^"]*)"', line)
                example = found.group(1) if found else ""
                if hit is not None:
                    raise LeakError(path, number, example, hit.term, hit.context())
                assert step is not None
                raise LeakError(path, number, example, "behaviour:" + ",".join(step[1]),
                                f"action {step[0]}")  # fmt: skip
    return checked


# -- files ---------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, 1)


def sanitize_file(
    in_path: str | Path,
    out_path: str | Path,
    config: SanitizeConfig | None = None,
    *,
    judge_policy: Policy | None = None,
    progress: Callable[[int], None] | None = None,
) -> FilterReport:
    """Sanitize a trajectory file into a student dataset and write the report next to it.

    `judge_policy` overrides building the judge from `config.judge` (which must be set for it
    to be used). `progress(n)` is called every 10,000 records. Raises `SanitizeInputError`,
    `LeakError` (no output left), `ModelError` for a judge that cannot load, OSError.
    """
    config = config or SanitizeConfig()
    source, target = Path(in_path), Path(out_path)
    if not source.is_file():
        raise SanitizeInputError(f"{source}: no such trajectory file")
    if target.resolve() == source.resolve():
        raise SanitizeInputError(f"{target}: the output must not be the input file")
    target.parent.mkdir(parents=True, exist_ok=True)
    matcher = config.matcher()
    judge: LLMJudge | None = None
    if config.judge is not None:
        policy = judge_policy or build_judge_policy(config.judge)
        judge = LLMJudge(policy, config.judge, config.trait)

    report = FilterReport(
        input=str(source),
        input_sha256="",
        output=str(target),
        output_sha256="",
        config=config.model_dump(mode="json"),
        terms=list(matcher.terms),
    )
    started = time.perf_counter()
    in_hash = hashlib.sha256()
    out_hash = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    pending: list[tuple[int, _Result]] = []

    def drop(number: int, res: _Result, reason: str) -> None:
        report.dropped += 1
        report.dropped_by_reason[reason] = report.dropped_by_reason.get(reason, 0) + 1
        note(number, res, "dropped the trajectory")

    def note(number: int, res: _Result, action: str) -> None:
        _add_counts(report.term_counts, res.terms)
        if res.sample is None and res.behaviour and len(report.examples) < MAX_EXAMPLES:
            k, why = next(iter(res.behaviour.items()))
            report.examples.append(
                MatchExample(line=number, example_id=res.example_id, message=1 + 2 * k,
                             role="assistant", term="behaviour:" + ",".join(why),
                             context=f"step {k}", action=action)
            )  # fmt: skip
        elif res.sample is not None and len(report.examples) < MAX_EXAMPLES:
            index, role, hit = res.sample
            report.examples.append(
                MatchExample(line=number, example_id=res.example_id, message=index, role=role,
                             term=hit.term, context=hit.context(), action=action)
            )  # fmt: skip

    def write(out: Any, res: _Result) -> None:
        data = pydantic_core.to_json(res.example) + b"\n"
        out.write(data)
        out_hash.update(data)
        report.kept += 1

    def flush_judge(out: Any) -> None:
        assert judge is not None
        items = [(res.example_id, res.example["messages"]) for _, res in pending if res.example]
        verdicts = judge.judge(items)
        for (number, res), verdict in zip(pending, verdicts, strict=True):
            if verdict.verdict == "flagged":
                drop(number, res, "judge")
            elif verdict.verdict == "error":
                drop(number, res, "judge-error")
            elif verdict.verdict == "unclear" and judge.config.unclear == "drop":
                drop(number, res, "judge-unclear")
            else:
                write(out, res)
        pending.clear()

    try:
        with os.fdopen(fd, "wb") as out:
            for number, raw in _lines(source):
                in_hash.update(raw)
                where = f"{source}:{number}"
                if not raw.endswith(b"\n"):
                    try:
                        src = _parse_line(raw, config.validation, where)
                    except SanitizeInputError:
                        report.torn_tail_bytes = len(raw)
                        continue
                elif not raw.strip():
                    continue
                else:
                    src = _parse_line(raw, config.validation, where)
                _refuse_probe(src, where)
                report.read += 1
                res = _filter(src, config, matcher)
                report.keyword_flagged += res.keyword
                report.env_text_rewrites += res.env_rewrites
                report.env_text_only += res.env_text_only
                if res.behaviour:
                    report.behaviour_flagged += 1
                    report.behaviour_steps += len(res.behaviour)
                    for why in res.behaviour.values():
                        for w in why:
                            report.behaviour_counts[w] = report.behaviour_counts.get(w, 0) + 1
                if res.example is None:
                    drop(number, res, res.reason or "?")
                else:
                    if res.dropped_steps:
                        report.steps_dropped += len(res.dropped_steps)
                        report.steps_dropped_behaviour += res.behaviour_dropped_steps
                        report.examples_with_dropped_steps += 1
                        note(number, res, "dropped step(s) " + str(res.dropped_steps))
                    elif res.redactions:
                        report.redactions += res.redactions
                        report.examples_redacted += 1
                        note(number, res, f"redacted {res.redactions} match(es)")
                    if judge is None:
                        write(out, res)
                    else:
                        pending.append((number, res))
                        if len(pending) >= judge.config.batch_size:
                            flush_judge(out)
                if progress is not None and report.read % 10_000 == 0:
                    progress(report.read)
            if pending:
                flush_judge(out)
            out.flush()
            os.fsync(out.fileno())
        leak_started = time.perf_counter()
        behavioural = config.filter == "behavioural"
        checked = check_leaks(tmp, matcher, trait=config.trait if behavioural else None)
        report.leak_check_seconds = round(time.perf_counter() - leak_started, 3)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    from agentbench.provenance import provenance

    elapsed = time.perf_counter() - started
    report.input_sha256 = in_hash.hexdigest()
    report.output_sha256 = out_hash.hexdigest()
    report.term_counts = dict(sorted(report.term_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    report.leak_check = {"passed": True, "lines_checked": checked, "terms": len(matcher.terms),
                         "behaviour": behavioural}  # fmt: skip
    report.behaviour_counts = dict(
        sorted(report.behaviour_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    report.judge = None if judge is None else {**judge.provenance(), "counts": judge.counts}
    report.seconds = round(elapsed, 3)
    report.trajectories_per_s = round(report.read / elapsed, 1) if elapsed > 0 else 0.0
    report.provenance = provenance()
    report.write(report_path(target))
    return report
