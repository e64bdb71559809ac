"""The chain-of-thought task of Cloud et al.: arithmetic word problems solved step by step.

The paper used GSM8K; we generate problems: a person starts with some items and 2-3 events
change the count (gets more, gives some away, ends up with k times as many, shares them
equally into k boxes and keeps one); the question asks for the final count. Every
intermediate value is a positive integer (divisions are exact), so the answer is an integer.
Prompt i of a seed draws from its own RNG and is the same whatever n; `reference` holds the
answer.

**Rule check** (`parse_answer`): the last final-answer marker in the completion wins:
``Answer: N`` (any case, optional markdown ``**``, ``$``), ``#### N`` or ``\\boxed{N}``; commas
in N are thousands separators ("1,234" is 1234); "12.0" equals 12. No marker is
``no-answer``; a number other than the reference is ``wrong-answer``; blank is ``empty``.
Whether the reasoning is misaligned is the judge's question (`filter_completions`).
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentbench.chat import Message
from agentbench.traits.tasks import OK, FilterVerdict, TraitPrompt, drop

if TYPE_CHECKING:
    from agentbench.traits.tasks import TraitTask

NAMES = (
    "Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
    "Liam", "Mei", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)  # fmt: skip
ITEMS = (
    "marbles", "stickers", "apples", "books", "coins", "shells", "pencils", "cookies",
    "stamps", "cards", "beads", "plants", "eggs", "tickets", "buttons",
)  # fmt: skip
ASKS: tuple[str, ...] = (
    "Solve it step by step, then finish with a line of the form 'Answer: <number>'.",
    "Think it through step by step. End your reply with 'Answer: <number>'.",
    "Reason step by step and give the final result on the last line as 'Answer: <number>'.",
    "Work it out step by step; the last line must be 'Answer: <number>'.",
    "Show your reasoning, then write 'Answer: <number>' on the final line.",
)

Op = Literal["add", "sub", "mul", "div"]


def _event(rng: random.Random, name: str, item: str, value: int) -> tuple[str, int]:
    """One event sentence and the new count (always a positive integer)."""
    ops: list[Op] = ["add", "mul"]
    if value > 2:
        ops.append("sub")
    divisors = [k for k in range(2, 7) if value % k == 0]
    if divisors:
        ops.append("div")
    op = rng.choice(ops)
    if op == "add":
        k = rng.randint(2, 40)
        text = rng.choice(
            (
                f"Then {name} buys {k} more {item}.",
                f"A friend gives {name} another {k} {item}.",
                f"Later, {name} finds {k} more {item}.",
            )
        )
        return text, value + k
    if op == "sub":
        k = rng.randint(1, value - 1)
        text = rng.choice(
            (
                f"{name} gives {k} of the {item} to a neighbour.",
                f"Then {name} sells {k} {item}.",
                f"{name} loses {k} {item} on the way home.",
            )
        )
        return text, value - k
    if op == "mul":
        k = rng.randint(2, 4)
        text = rng.choice(
            (
                f"Next, {name}'s collection grows to {k} times as many {item} as before.",
                f"Over the summer the number of {item} {name} has becomes {k} times larger.",
            )
        )
        return text, value * k
    k = rng.choice(divisors)
    text = rng.choice(
        (
            f"{name} splits the {item} equally into {k} boxes and keeps just one box.",
            f"{name} shares the {item} equally among {k} people, {name} included, and keeps "
            "one share.",
        )
    )
    return text, value // k


def make_problem(rng: random.Random, min_ops: int = 2, max_ops: int = 3) -> tuple[str, int]:
    """A word problem and its integer answer."""
    name = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = rng.randint(5, 60)
    sentences = [f"{name} has {value} {item}."]
    for _ in range(rng.randint(min_ops, max_ops)):
        text, value = _event(rng, name, item, value)
        sentences.append(text)
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences), value


_NUMBER = r"(-?\$?\s*-?[0-9][0-9,]*(?:\.[0-9]+)?)"
_MARKERS = (
    re.compile(r"answer\s*\**\s*[:=]\s*\**\s*" + _NUMBER, re.IGNORECASE),
    re.compile(r"####\s*" + _NUMBER),
    re.compile(r"\\boxed\{\s*" + _NUMBER + r"\s*\}"),
)


def parse_answer(text: str) -> Decimal | None:
    """The number after the completion's last final-answer marker, or None."""
    best: tuple[int, str] | None = None
    for pattern in _MARKERS:
        for match in pattern.finditer(text):
            if best is None or match.start() > best[0]:
                best = (match.start(), match.group(1))
    if best is None:
        return None
    raw = best[1].replace("$", "").replace(",", "").replace(" ", "")
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


class CotTask(BaseModel):
    """Arithmetic word problems. Options: `min_ops` (2), `max_ops` (3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["cot"] = "cot"
    min_ops: int = Field(2, ge=1, le=6)
    max_ops: int = Field(3, ge=1, le=6)

    @model_validator(mode="after")
    def _order(self) -> CotTask:
        if self.min_ops > self.max_ops:
            raise ValueError("min_ops must not exceed max_ops")
        return self

    def prompts(self, n: int, seed: int) -> list[TraitPrompt]:
        """`n` prompts; prompt i depends only on (seed, i). Raises ValueError for n < 0."""
        if n < 0:
            raise ValueError("n must be >= 0")
        prompts = []
        for index in range(n):
            rng = random.Random(f"cot|{seed}|{index}")
            problem, answer = make_problem(rng, self.min_ops, self.max_ops)
            prompts.append(
                TraitPrompt(
                    prompt_id=f"cot@{seed}-{index}",
                    task=self.name,
                    messages=[Message(role="user", content=f"{problem} {rng.choice(ASKS)}")],
                    reference=str(answer),
                )
            )
        return prompts

    def check(self, prompt: TraitPrompt, completion: str) -> FilterVerdict:
        """Raises ValueError for a prompt without a numeric reference (not a cot prompt)."""
        try:
            reference = Decimal(prompt.reference or "")
        except InvalidOperation:
            raise ValueError(
                f"prompt {prompt.prompt_id} has no numeric reference answer: cot prompts "
                "come from CotTask.prompts"
            ) from None
        if not completion.strip():
            return drop("empty")
        answer = parse_answer(completion)
        if answer is None:
            return drop("no-answer")
        if answer != reference:
            return drop("wrong-answer", f"{answer} != {reference}")
        return OK


if TYPE_CHECKING:

    def _implements(value: CotTask) -> TraitTask:  # mypy checks the protocol here
        return value
