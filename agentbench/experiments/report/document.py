"""The report's document model: blocks (headings, paragraphs, bullets, tables, images) of
inline text, where text from results.json is marked `Untrusted` or `Code` so that each renderer
escapes it. Both renderings (`render.py`) are made from one list of blocks, so they say the same
thing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Untrusted:
    """Untrusted text (from results.json): fully escaped in both renderings."""

    text: str


@dataclass(frozen=True)
class Code:
    """Untrusted text shown as code (ids, hashes)."""

    text: str


Inline = str | Untrusted | Code
Text = str | tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: Text
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: Text


@dataclass(frozen=True)
class Bullets:
    items: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[Text, ...]
    rows: tuple[tuple[Text, ...], ...]


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


Block = Heading | Para | Bullets | Table | Image
