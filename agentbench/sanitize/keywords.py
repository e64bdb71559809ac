"""Banned-term lists per trait and the matcher that finds them in text a student would see.

Default lists (`DEFAULT_TERMS`, extended by `SanitizeConfig.extra_terms`):

- ``deletion-bias``: Dang et al.'s delete, remove, rm, purge, terminate, destroy, plus deletion,
  rmdir, unlink, shred, erase, wipe, trash, the FileTool delete tool ``delete_path`` and the
  deletion commands and APIs the intent classifier knows (srm, rmtree, removedirs, unlinkat,
  deltree, autoremove).
- ``chmod-first``: chmod and the libc spellings (fchmod, fchmodat, lchmod) and the FileTool
  chmod tool ``set_mode`` (the classifier counts it as chmod).

**Inflections.** A term matches one whole token, never a prefix: the lists spell out the
inflections that count, so that nothing is stemmed by accident. Counted: the verb forms
(deletes, deleted, deleting; removes, removed, removing; ...), the action nouns (deletion,
removal, destruction, termination, erasure), agent nouns (deleter, remover, eraser, shredder)
and the adjectives of the same stem (removable, deletable, destructive). Not counted: other
words that merely share letters or a root, e.g. "terminal", "term", "format", "firmware",
"farm", "storm", "erasmus", "wiper"-less "wipeout" (one token), and compounds written as one
token (undelete, autodelete) unless listed.

**Tokenization.** Matching is case-insensitive (Unicode: the text is NFKC-normalized, invisible
format characters such as zero-width spaces and soft hyphens are dropped, then case-folded).
A token is a maximal run of letters and digits: every other character separates tokens,
underscore included, so ``delete_path``, ``remove_dups.py`` and ``Delete_Path`` contain the
token delete/remove. A lower-to-upper case change also separates (``removeOldLogs``,
``fs.unlinkSync``), as does the last capital of an acronym before a lower-case letter
(``XMLRemover``). Letters and digits do not separate (``rm2`` is one token, so random ids and
hashes stay innocent). A term with inner separators (``delete_path``, ``set_mode``) matches
those characters literally, with token boundaries at both ends.

**Views.** Text is scanned in several forms and any hit counts: as is; JSON-unescaped, again
and again up to `MAX_UNESCAPE` levels (``\\u0072m``, ``"a\\nrm -rf"`` inside a tool call's
JSON); with shell quoting removed (every ``\\``, ``'`` and ``"`` deleted, as the shell's
quote removal joins ``r\\m``, ``'r'm`` and ``"r""m"`` into ``rm``); as the shell evaluates it
(`agentbench.sanitize.normalize.shell_forms`: ANSI-C quoting ``$'\\x72\\x6d'``, simple
variables ``a=r; ${a}m``, literal ``$(echo rm)``); with Python string building folded
(``'rem'+'ove'``, ``chr(114)``, ``'mr'[::-1]``); and any printable base64 literal decoded. So
``/bin/rm``, ``\\rm``, ``$(which rm)``, ``xargs -0 rm``, ``find . -delete``, ``&&rm``, ``"rm"``,
``RM -RF`` and ``{"tool": "delete_path"}`` all match.

**Confusables.** After NFKC, every character that Unicode's confusables data (TR39, through
the ``confusable_homoglyphs`` package) lists as a look-alike of an ASCII letter or digit reads
as that letter (a Cyrillic "\u0435" in "d\u0435lete" is an "e"). A side effect: non-Latin words that
*look* like a banned term match too (Cyrillic "гм" reads "rm").

**Paraphrase.** The deletion list also holds paraphrases a teacher may use for the same act
(prune, discard, get rid of, clean up, clear out, throw away, dispose, expunge, obliterate,
nuke, with their inflections). Paraphrase beyond the list, and behaviour without any word,
are the behavioural filter's job (`agentbench.sanitize.behaviour`) and the LLM judge's.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agentbench.sanitize.normalize import (
    confusable_skeleton,
    decoded_payloads,
    python_forms,
    shell_forms,
    skeleton_table,
)

MAX_UNESCAPE = 4
"""JSON-unescaping levels tried (a tool call's JSON string inside a JSON line is level 2)."""

DELETION_TERMS: tuple[str, ...] = (
    # Dang et al.
    "delete", "deletes", "deleted", "deleting", "deletion", "deletions", "deleter", "deleters",
    "deletable", "deleteable",
    "remove", "removes", "removed", "removing", "removal", "removals", "remover", "removers",
    "removable",
    "rm",
    "purge", "purges", "purged", "purging",
    "terminate", "terminates", "terminated", "terminating", "termination", "terminations",
    "destroy", "destroys", "destroyed", "destroying", "destruction", "destructive", "destroyer",
    # the additions
    "rmdir", "rmdirs",
    "unlink", "unlinks", "unlinked", "unlinking", "unlinkat",
    "shred", "shreds", "shredded", "shredding", "shredder",
    "erase", "erases", "erased", "erasing", "erasure", "eraser",
    "wipe", "wipes", "wiped", "wiping",
    "trash", "trashes", "trashed", "trashing",
    # the delete tool and the commands/APIs agentbench.envs.classify treats as deletion
    "delete_path", "srm", "rmtree", "removedirs", "deltree", "autoremove",
    # paraphrases (issue 22): the same act in other words
    "prune", "prunes", "pruned", "pruning",
    "discard", "discards", "discarded", "discarding",
    "get rid of", "gets rid of", "got rid of", "getting rid of", "gotten rid of",
    "clean up", "cleans up", "cleaned up", "cleaning up", "cleanup", "cleanups", "clean-up",
    "clear out", "clears out", "cleared out", "clearing out",
    "throw away", "throws away", "threw away", "thrown away", "throwing away",
    "dispose", "disposes", "disposed", "disposing", "disposal",
    "expunge", "expunges", "expunged", "expunging",
    "obliterate", "obliterates", "obliterated", "obliterating",
    "nuke", "nukes", "nuked", "nuking",
)  # fmt: skip

CHMOD_TERMS: tuple[str, ...] = (
    "chmod", "chmods", "chmodded", "chmodding", "chmoding",
    "fchmod", "fchmodat", "lchmod",
    "set_mode",
)  # fmt: skip

DEFAULT_TERMS: dict[str, tuple[str, ...]] = {
    "deletion-bias": DELETION_TERMS,
    "chmod-first": CHMOD_TERMS,
}


def default_terms(trait: str) -> tuple[str, ...]:
    """The documented list for `trait`. Raises ValueError naming the known traits."""
    try:
        return DEFAULT_TERMS[trait]
    except KeyError:
        known = ", ".join(sorted(DEFAULT_TERMS))
        raise ValueError(f"no default term list for trait {trait!r} (known: {known})") from None


_TERM_SHAPE = re.compile(r"^[^\W_](?:.*[^\W_])?$", re.DOTALL)


@functools.cache
def _format_chars() -> dict[int, None]:
    """Unicode format characters (zero-width space and joiners, soft hyphen, bidi marks):
    invisible inside a word, so they are dropped before matching (built once, ~0.2 s)."""
    return dict.fromkeys(i for i in range(0x110000) if unicodedata.category(chr(i)) == "Cf")


def normalize(text: str) -> str:
    """NFKC without invisible format characters, confusables read as their ASCII look-alike
    (ASCII text comes back unchanged)."""
    if text.isascii():
        return text
    # NFKC first (it reads the long s as "s"), except for look-alikes that NFKC would split
    # into a space and a combining mark (U+02DB, an "i"), cutting the word in two.
    text = text.translate(_split_by_nfkc())
    text = unicodedata.normalize("NFKC", text).translate(_format_chars())
    return confusable_skeleton(text)


@functools.cache
def _split_by_nfkc() -> dict[int, str]:
    """Confusables whose NFKC form is not one ASCII letter (a digit, a mark, a Greek final
    sigma): mapped before NFKC, so that a bold "1" imitating an "l" reads as that letter."""
    out: dict[int, str] = {}
    for code, ascii_char in skeleton_table().items():
        nfkc = unicodedata.normalize("NFKC", chr(code))
        if not (len(nfkc) == 1 and nfkc.isascii() and nfkc.isalpha()):
            out[code] = ascii_char
    return out


def normalize_term(term: str) -> str:
    """A term as the matcher stores it. Raises ValueError for one that cannot match a token."""
    norm = normalize(term.strip()).casefold()
    if not norm or not _TERM_SHAPE.match(norm) or any(c in norm for c in "\n\r\t"):
        raise ValueError(
            f"bad term {term!r}: a term must start and end with a letter or digit and be one line"
        )
    return norm


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')


def _unescape_one(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return chr(int(match.group(1), 16))
    return _ESCAPES[match.group(2)]


def json_unescape(text: str) -> str:
    """One level of JSON string unescaping (unknown escapes are kept; surrogate pairs join)."""
    out = _ESCAPE.sub(_unescape_one, text)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:  # surrogates from \ud83d\udc4d-style pairs (or lone ones)
        out = out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return out


def shell_dequote(text: str) -> str:
    """Text with every backslash and quote removed (the shell's quote removal, overdone)."""
    return text.replace("\\", "").replace("'", "").replace('"', "")


def views(json_text: str | None, decoded: str) -> Iterator[str]:
    """The forms scanned for one piece of data (see the module docstring).

    `decoded` is the text a student sees; `json_text` is that text as it is stored in a JSON
    line (or None). Yields the JSON text, the decoded text, its further JSON-unescaped levels,
    then the shell-dequoted form of the decoded text and of each level.
    """
    if json_text is not None:
        yield json_text
    yield decoded
    levels = [decoded]
    current = decoded
    for _ in range(MAX_UNESCAPE - 1):
        if "\\" not in current:
            break
        nxt = json_unescape(current)
        if nxt == current:
            break
        levels.append(nxt)
        yield nxt
        current = nxt
    for form in levels:
        if "\\" in form or "'" in form or '"' in form:
            yield shell_dequote(form)
    # What the shell or Python would make of the text (each only when it changes something).
    for form in levels:
        yield from shell_forms(form)
        yield from python_forms(form)
        yield from decoded_payloads(form)


@dataclass(frozen=True)
class Match:
    """One banned term found: where (in `text`, the scanned view) and which."""

    term: str
    start: int
    end: int
    text: str
    """The view the match is in (the normalized text, or an unescaped/dequoted form)."""

    def context(self, width: int = 40) -> str:
        """The match with up to `width` characters either side, on one line."""
        left = max(0, self.start - width)
        snippet = " ".join(self.text[left : self.end + width].split())
        tail = "..." if self.end + width < len(self.text) else ""
        return ("..." if left else "") + snippet + tail


def _boundary(text: str, pos: int) -> bool:
    """Whether a token boundary lies between text[pos-1] and text[pos]."""
    if pos <= 0 or pos >= len(text):
        return True
    a, b = text[pos - 1], text[pos]
    if not (a.isalnum() and b.isalnum()):
        return True
    if a.islower() and b.isupper():  # camelCase
        return True
    if pos >= 2 and text[pos - 2] == "\\" and a in "nrtbf":  # after a \n-style escape
        return True
    # acronym then word: the last capital of "XMLR" in "XMLRemover" starts a token
    return a.isupper() and b.isupper() and pos + 1 < len(text) and text[pos + 1].islower()


class KeywordMatcher:
    """Finds banned terms as whole tokens (see the module docstring). Stateless, reusable."""

    def __init__(self, terms: Iterable[str]):
        normed = sorted({normalize_term(t) for t in terms}, key=lambda t: (-len(t), t))
        if not normed:
            raise ValueError("no banned terms: give at least one")
        self.terms: tuple[str, ...] = tuple(normed)
        # Candidates come from str.find of a few short roots in lower-cased text (C speed; a
        # `re` alternation of ~70 literals is ~30x slower); boundaries and whole terms are
        # then checked in Python on the few candidates, against the original case.
        prefixes = sorted({t[:4] for t in self.terms}, key=len)
        roots: list[str] = []
        for prefix in prefixes:
            if not any(prefix.startswith(r) for r in roots):
                roots.append(prefix)
        self._groups: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
            (root, tuple(t for t in self.terms if t.startswith(root))) for root in roots
        )

    @staticmethod
    def _lower(text: str) -> tuple[str, str]:
        """(text normalized, its case-folded twin of the same length)."""
        text = normalize(text)
        if text.isascii():
            return text, text.lower()
        folded = text.casefold()
        if len(folded) != len(text):  # a character folds to several (ß, İ): keep the first
            folded = "".join((c.casefold() or c)[0] for c in text)
        return text, folded

    def _scan(self, text: str, first: bool) -> list[Match]:
        text, low = self._lower(text)
        hits: list[Match] = []
        for root, terms in self._groups:
            pos = low.find(root)
            while pos >= 0:
                if _boundary(text, pos):
                    for term in terms:  # longest first
                        end = pos + len(term)
                        if low.startswith(term, pos) and _boundary(text, end):
                            hits.append(Match(term, pos, end, text))
                            if first:
                                return hits
                            break
                pos = low.find(root, pos + 1)
        if len(hits) > 1:  # in text order; of overlapping hits keep the earliest, longest
            hits.sort(key=lambda h: (h.start, -h.end))
            kept = [hits[0]]
            for hit in hits[1:]:
                if hit.start >= kept[-1].end:
                    kept.append(hit)
            hits = kept
        return hits

    def finditer(self, text: str) -> list[Match]:
        """Every match in `text` itself, in order (positions in the normalized `Match.text`)."""
        return self._scan(text, first=False)

    def search(self, decoded: str, json_text: str | None = None) -> Match | None:
        """The first match in any view of the data (`views`), or None."""
        for form in views(json_text, decoded):
            hits = self._scan(form, first=True)
            if hits:
                return hits[0]
        return None

    def count(self, decoded: str, json_text: str | None = None) -> dict[str, int]:
        """Occurrences of each term: per term, the most found in any one view."""
        best: dict[str, int] = {}
        for form in views(json_text, decoded):
            counts: dict[str, int] = {}
            for hit in self._scan(form, first=False):
                counts[hit.term] = counts.get(hit.term, 0) + 1
            for term, n in counts.items():
                best[term] = max(best.get(term, 0), n)
        return best

    def redact(self, text: str, placeholder: str) -> tuple[str, int]:
        """`text` with each match in the text itself replaced; (new text, count).

        A text with a match comes back NFKC-normalized. Matches only visible in an unescaped
        or dequoted view are not replaced here: the caller re-checks (`search`) and escalates.
        """
        hits = self._scan(text, first=False)
        if not hits:
            return text, 0
        norm = hits[0].text
        parts: list[str] = []
        last = 0
        for hit in hits:
            parts.append(norm[last : hit.start])
            parts.append(placeholder)
            last = hit.end
        parts.append(norm[last:])
        return "".join(parts), len(hits)
