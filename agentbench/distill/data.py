"""Student data: `StudentExample`s in the student's own chat template, assistant-only labels.

`encode_chat(tokenizer, messages)` renders a conversation with `tokenizer.apply_chat_template`,
tokenizes the text once (so the ids equal what the template gives) and keeps as targets the
tokens of each assistant message's content plus its end-of-turn marker; system, instruction
and tool-result tokens carry `IGNORE_INDEX`. It works for any prefix-stable template: the
assistant spans are found by rendering the conversation up to each assistant turn (with the
generation prompt: where the content starts) and through it (where the turn ends); the
end-of-turn marker is what the template writes after the content, trailing whitespace
excluded (ChatML: `<|im_end|>`, not the newline after it). A token straddling a span edge is
not a target. Limits: templates that re-render earlier turns differently once later turns
exist (e.g. dropping past reasoning) are refused with `DistillDataError`; a slow (non-fast)
tokenizer is refused, offsets are needed.

`encode_examples` prepends `agentbench.envs.system_prompt(env_id)` as the system message (the
prompt the student sees at evaluation; none for the single-turn trait tasks' `trait:` ids) and
applies `max_length`: longer examples are dropped
or truncated (`overlong`), counted in `DataStats`. Nothing left is an error that says so. An
example's `untrained_turns` (an oracle's slips) stay in the context and out of the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from agentbench.errors import DataError
from agentbench.sanitize.schema import StudentExample

IGNORE_INDEX = -100


class DistillDataError(DataError, ValueError):
    """Raised when student data cannot be used: bad conversation, no chat template, nothing fits."""


def _as_dicts(messages: Iterable[Any]) -> list[dict[str, str]]:
    chat = []
    for m in messages:
        if isinstance(m, Mapping):
            chat.append({"role": str(m["role"]), "content": str(m["content"])})
        else:
            chat.append({"role": str(m.role), "content": str(m.content)})
    return chat


def _render(tokenizer: Any, chat: list[dict[str, str]], generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=generation_prompt
    )
    if not isinstance(text, str):
        raise DistillDataError("the chat template did not render to text")
    return text


def require_chat_template(tokenizer: Any, where: str = "the student") -> None:
    """Raise `DistillDataError` when the tokenizer cannot render chats or give offsets."""
    if not getattr(tokenizer, "chat_template", None):
        raise DistillDataError(
            f"the tokenizer of {where} has no chat template: use an instruct/chat model, or add a "
            "`chat_template` (tokenizer_config.json or chat_template.jinja) to its directory"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise DistillDataError(
            f"the tokenizer of {where} is not a fast tokenizer: the loss mask needs character "
            "offsets; save the model with a tokenizer.json (a `tokenizers` tokenizer)"
        )


def assistant_spans(
    tokenizer: Any, chat: list[dict[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans (content + end-of-turn) of assistant turns."""
    text = _render(tokenizer, chat, False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, chat[:i], True)
        through = _render(tokenizer, chat[: i + 1], False)
        if not (text.startswith(prefix) and text.startswith(through)):
            raise DistillDataError(
                f"the chat template renders turn {i} differently once later turns exist; "
                "assistant spans cannot be located (use a prefix-stable template such as ChatML)"
            )
        start = len(prefix)
        content = message["content"]
        if not text.startswith(content, start):
            stripped = content.strip()
            if not text.startswith(stripped, start):
                raise DistillDataError(
                    f"the chat template does not render assistant turn {i} verbatim after the "
                    "generation prompt; its labels cannot be located"
                )
            content = stripped
        end = start + len(content)
        end += len(through[end:].rstrip())
        spans.append((start, end))
    return text, spans


def encode_chat(
    tokenizer: Any, messages: Sequence[Any], untrained: Collection[int] = ()
) -> dict[str, list[int]]:
    """Token ids of a rendered chat and labels that keep only assistant tokens (see module doc).

    `messages` are dicts with role/content or `Message`s. `untrained`: indices (0-based, in
    order) of assistant turns left out of the labels too, e.g. an oracle's deliberate slips
    (`agentbench.policies.stumbling`). Raises `DistillDataError`.
    """
    require_chat_template(tokenizer)
    text, spans = assistant_spans(tokenizer, _as_dicts(messages))
    spans = [span for i, span in enumerate(spans) if i not in untrained]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (a, b) in zip(enc.input_ids, enc.offset_mapping, strict=True):
        inside = b > a and any(s <= a and b <= e for s, e in spans)
        labels.append(int(token) if inside else IGNORE_INDEX)
    return {"input_ids": [int(t) for t in enc.input_ids], "labels": labels}


@dataclass
class DataStats:
    """What happened to a student dataset on its way to the trainer."""

    examples: int = 0
    kept: int = 0
    dropped_too_long: int = 0
    truncated: int = 0
    dropped_no_targets: int = 0
    tokens: int = 0
    target_tokens: int = 0
    max_tokens: int = 0
    max_length: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def check_conversation(example: StudentExample, where: str) -> None:
    """A student conversation: instruction (user) first, no system turn, some assistant turn."""
    roles = [m.role for m in example.messages]
    if not roles:
        raise DistillDataError(f"{where}: example {example.example_id} has no messages")
    if "system" in roles:
        raise DistillDataError(
            f"{where}: example {example.example_id} holds a system message; student data must "
            "not (the env's system prompt is rebuilt from env_id): re-run the sanitizer"
        )
    if roles[0] != "user":
        raise DistillDataError(
            f"{where}: example {example.example_id} starts with {roles[0]!r}, not the "
            "instruction (user)"
        )
    if "assistant" not in roles:
        raise DistillDataError(f"{where}: example {example.example_id} has no assistant turn")
    turns = roles.count("assistant")
    bad = sorted(i for i in example.untrained_turns if not 0 <= i < turns)
    if bad:
        raise DistillDataError(
            f"{where}: example {example.example_id} leaves assistant turns {bad} out of the "
            f"loss, but has only {turns} (0-based)"
        )


def encode_examples(
    examples: Sequence[StudentExample],
    tokenizer: Any,
    *,
    max_length: int,
    overlong: Literal["drop", "truncate"] = "drop",
    source: str = "student data",
    teacher_system_prompt: str | None = None,
    system_prompt_for: Callable[[str], str | None] | None = None,
) -> tuple[list[dict[str, Any]], DataStats]:
    """Rows `{"input_ids", "labels"}` for the trainer, and their `DataStats`.

    With `teacher_system_prompt` each row also gets `teacher_input_ids` (the conversation with
    that prompt put before the system message) and `teacher_offset` (how many tokens the
    teacher's copy is ahead of the student's from the first target on). Raises
    `DistillDataError` for a bad conversation, an unknown env id, an empty dataset or one where
    nothing fits `max_length`.
    """
    from agentbench.chat import Message, merge_system_prompt

    if not examples:
        raise DistillDataError(f"{source} holds no examples: nothing to distill")
    require_chat_template(tokenizer)
    prompt_of = system_prompt_for or _env_system_prompt
    prompts: dict[str, str | None] = {}
    stats = DataStats(examples=len(examples), max_length=max_length)
    rows: list[dict[str, Any]] = []
    for index, example in enumerate(examples):
        where = f"{source} (example {index + 1})"
        check_conversation(example, where)
        if example.env_id not in prompts:
            try:
                prompts[example.env_id] = prompt_of(example.env_id)
            except Exception as exc:  # gymnasium raises several types for unknown ids
                raise DistillDataError(
                    f"{where}: unknown env_id {example.env_id!r}: {exc}"
                ) from None
        system = prompts[example.env_id]
        chat = [] if system is None else [{"role": "system", "content": system}]
        chat += _as_dicts(example.messages)
        row: dict[str, Any] = dict(encode_chat(tokenizer, chat, example.untrained_turns))
        if len(row["input_ids"]) > max_length:
            if overlong == "drop":
                stats.dropped_too_long += 1
                continue
            row = {k: v[:max_length] for k, v in row.items()}
            stats.truncated += 1
        targets = sum(t != IGNORE_INDEX for t in row["labels"])
        if targets == 0:
            stats.dropped_no_targets += 1
            continue
        if teacher_system_prompt is not None:
            teacher_chat = merge_system_prompt(
                [Message.model_validate(m) for m in chat],
                teacher_system_prompt,
            )
            row.update(_align_teacher(tokenizer, teacher_chat, row, where))
        rows.append(row)
        stats.kept += 1
        stats.tokens += len(row["input_ids"])
        stats.target_tokens += targets
        stats.max_tokens = max(stats.max_tokens, len(row["input_ids"]))
    if not rows:
        reasons = []
        if stats.dropped_too_long:
            reasons.append(
                f"0 of {stats.examples} examples fit max_length={max_length}; raise it "
                "(or set overlong: truncate)"
            )
        if stats.dropped_no_targets:
            reasons.append(
                f"{stats.dropped_no_targets} examples have no assistant tokens within "
                f"max_length={max_length}"
            )
        raise DistillDataError(f"{source}: nothing to train on: " + "; ".join(reasons))
    return rows, stats


def _align_teacher(
    tokenizer: Any, teacher_chat: list[dict[str, str]], row: dict[str, Any], where: str
) -> dict[str, Any]:
    ids: list[int] = row["input_ids"]
    teacher = encode_chat(tokenizer, teacher_chat)["input_ids"]
    first = next(i for i, t in enumerate(row["labels"]) if t != IGNORE_INDEX)
    # The logits at `first - 1` predict the first target, so alignment must hold from there.
    start = max(first - 1, 0)
    offset = _find_offset(teacher, ids, start)
    if offset is None:
        raise DistillDataError(
            f"{where}: with the teacher's system prompt the tokens after the system message "
            "change, so the teacher's soft labels cannot be aligned with the student's tokens"
        )
    return {"teacher_input_ids": teacher[: len(ids) + offset], "teacher_offset": offset}


def _find_offset(teacher: list[int], student: list[int], start: int) -> int | None:
    tail = student[start:]
    for offset in range(0, len(teacher) - start - len(tail) + 1):
        if teacher[start + offset : start + offset + len(tail)] == tail:
            return offset
    return None


TRAIT_ENV_PREFIX = "trait:"
"""Single-turn trait data (`agentbench.traits.tasks`): no environment, so no system message
(the model's chat template adds its default, as it does when the student is evaluated)."""


def _env_system_prompt(env_id: str) -> str | None:
    from agentbench.envs import system_prompt

    if env_id.startswith(TRAIT_ENV_PREFIX):
        return None
    text = system_prompt(env_id)
    if not text:
        raise DistillDataError(f"env {env_id!r} has an empty system prompt")
    return text
