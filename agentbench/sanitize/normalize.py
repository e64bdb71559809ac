"""Normalisation before matching: what a word *is* once Unicode and the shell are done with it.

- `skeleton_table()`: Unicode confusables (Unicode's TR39 data through the
  ``confusable_homoglyphs`` package) mapped to the ASCII letter or digit they imitate, so a
  Cyrillic "\u0435" in "d\u0435lete" reads as "e". Applied after NFKC, one character for
  one, so match positions stay valid.
- `shell_forms(text)`: the text as the shell would run it: ANSI-C quoting (``$'\\x72\\x6d'``)
  decoded, simple variable assignments (``v=r; ${v}m``) and literal ``$(echo ...)`` /
  ``$(printf ...)`` substituted, quotes removed. Parsing is textual with `bashlex` checks
  left to the classifier: a form is only ever *added* to what is scanned, never substituted.
- `python_forms(text)`: Python string obfuscation folded (``'rem'+'ove'``, ``chr(114)``,
  ``'evomer'[::-1]``, ``''.join(['r','m'])``).
- `decoded_payloads(text)`: base64 literals that decode to printable text (what
  ``echo cm0gLXJmIHg= | base64 -d | sh`` runs).
- `decode_and_execute(text)`: a decoder (``base64 -d``, ``xxd -r``, ``b64decode``, ``rev``,
  ``tr``...) whose output runs (``| sh``, ``eval``, ``exec(``, ``bash <(...)``): an opaque
  payload, treated as the trait whatever it decodes to.

Nothing here runs anything; every function takes any string and never raises.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import shlex

MAX_FORM_CHARS = 65_536
"""Longer texts are not evaluated (their plain views are still scanned)."""


@functools.cache
def skeleton_table() -> dict[int, str]:
    """Non-ASCII confusables -> the ASCII letter/digit they look like (letters preferred)."""
    try:
        from confusable_homoglyphs import confusables
    except ImportError:  # pragma: no cover - a declared dependency; degrade to NFKC only
        return {}
    table: dict[int, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii()]
        letters = [t for t in targets if t.isalpha()] or [t for t in targets if t.isdigit()]
        if letters:
            table[ord(char)] = letters[0]
    return table


def confusable_skeleton(text: str) -> str:
    """`text` with each confusable replaced by its ASCII look-alike (same length)."""
    if text.isascii():
        return text
    return text.translate(skeleton_table())


# -- the shell ---------------------------------------------------------------------------------

_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.DOTALL)
_SIMPLE_ESC = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
_ESC = re.compile(
    r"\\(?:x([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{1,4})|U([0-9a-fA-F]{1,8})|([0-7]{1,3})|c(.)|(.))",
    re.DOTALL,
)


def ansi_c_decode(body: str) -> str:
    """The value of `$'body'` (bash's escapes: \\xHH, \\NNN, \\uHHHH, \\n, ...)."""

    def one(m: re.Match[str]) -> str:
        hex2, u4, u8, octal, ctrl, simple = m.groups()
        try:
            if hex2 is not None:
                return chr(int(hex2, 16))
            if u4 is not None:
                return chr(int(u4, 16))
            if u8 is not None:
                return chr(min(int(u8, 16), 0x10FFFF))
            if octal is not None:
                return chr(int(octal, 8) & 0xFF)
            if ctrl is not None:
                return chr(ord(ctrl) & 0x1F)
        except ValueError:
            return m.group(0)
        return _SIMPLE_ESC.get(simple, "\\" + simple)

    return _ESC.sub(one, body)


def _expand_ansi_c(text: str) -> str:
    return _ANSI_C.sub(lambda m: shlex.quote(ansi_c_decode(m.group(1))), text)


_ASSIGN = re.compile(
    r"(?:(?<=^)|(?<=[\s;&|(`{]))(?:export\s+|declare\s+(?:-\w+\s+)*|local\s+|readonly\s+)?"
    r"([A-Za-z_]\w*)=('[^']*'|\"(?:[^\"\\]|\\.)*\"|[^\s;&|()<>'\"`]*)",
    re.MULTILINE,
)
_LITERAL_SUBST = re.compile(r"\$\(\s*(echo|printf)\s+([^()`$]*)\)|`\s*(echo|printf)\s+([^`$]*)`")


def _word_value(raw: str) -> str:
    try:
        parts = shlex.split(raw, posix=True)
    except ValueError:
        return raw.strip("'\"")
    return "".join(parts)


def _literal_output(kind: str, args: str) -> str:
    try:
        words = shlex.split(args, posix=True)
    except ValueError:
        words = args.split()
    if kind == "echo":
        words = [w for w in words if not re.fullmatch(r"-[neE]+", w)]
        return ansi_c_decode(" ".join(words)) if "\\" in args else " ".join(words)
    return ansi_c_decode(words[0]) if words else ""


def _expand_variables(text: str) -> str:
    values: dict[str, str] = {}
    for match in _ASSIGN.finditer(text):
        values[match.group(1)] = _word_value(match.group(2)) if match.group(2) else ""
    if not values:
        return text
    names = "|".join(re.escape(n) for n in sorted(values, key=len, reverse=True))
    pattern = re.compile(r"\$\{(" + names + r")\}|\$(" + names + r")(?!\w)")
    for _ in range(4):  # v=r; w=${v}m; $w -> rm
        nxt = pattern.sub(lambda m: values[m.group(1) or m.group(2)], text)
        if nxt == text:
            break
        text = nxt
        for match in _ASSIGN.finditer(text):
            values[match.group(1)] = _word_value(match.group(2)) if match.group(2) else ""
    return text


def _dequote(text: str) -> str:
    return text.replace("\\\n", "").replace("\\", "").replace("'", "").replace('"', "")


def shell_evaluated(text: str) -> str:
    """The shell text with ANSI-C quoting, simple variables and literal ``$(echo ...)``
    substitutions evaluated (still shell: input for the intent classifier)."""
    if len(text) > MAX_FORM_CHARS or not any(c in text for c in "$`"):
        return text
    current = text
    if "$'" in current:
        current = _expand_ansi_c(current)
    if "$" in current:
        current = _expand_variables(current)
    if "$(" in current or "`" in current:
        current = _LITERAL_SUBST.sub(
            lambda m: shlex.quote(
                _literal_output(m.group(1) or m.group(3), m.group(2) or m.group(4))
            ),
            current,
        )
    return current


def shell_forms(text: str) -> list[str]:
    """The forms of a shell text after the shell's own evaluation (see the module docstring):
    `shell_evaluated`, then that with quotes removed; empty when nothing would change."""
    if len(text) > MAX_FORM_CHARS or not any(c in text for c in "$`'\"\\"):
        return []
    forms: list[str] = []
    current = shell_evaluated(text)
    if current != text:
        forms.append(current)
    flat = _dequote(current)
    if flat != text and flat not in forms:
        forms.append(flat)
    return forms


# -- Python ------------------------------------------------------------------------------------

_PY_STR = r"(?:'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
_PY_CONCAT = re.compile(r"(" + _PY_STR + r")\s*\+\s*(" + _PY_STR + r")")
_PY_ADJACENT = re.compile(r"(" + _PY_STR + r")[ \t]+(" + _PY_STR + r")")
_PY_CHR = re.compile(r"\bchr\(\s*(\d{1,7}|0x[0-9a-fA-F]+)\s*\)")
_PY_REVERSED = re.compile(r"(" + _PY_STR + r")\s*\[\s*::\s*-1\s*\]")
_PY_JOIN = re.compile(r"(?:''|\"\")\s*\.join\(\s*[\[(]\s*((?:" + _PY_STR + r"\s*,?\s*)+)[\])]\s*\)")
_PY_BUILDING_WORDS = ("::-1", "join(", "chr(", "getattr", "__import__", "__dict__")
_PY_PLUS = re.compile(r"['\"]\s*\+|\+\s*['\"]")
"""Without these, nothing in the text builds a string: `python_forms` skips it."""
_PY_DYNAMIC = re.compile(
    r"getattr\(|__import__\(|__dict__\[|\bvars\(|\bglobals\(\)\[|\bexec\(|\beval\(|importlib"
)


def _py_value(literal: str) -> str:
    body = literal[1:-1]
    return ansi_c_decode(body) if "\\" in body else body


def _py_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def python_forms(text: str) -> list[str]:
    """`text` with Python string-building folded into literals; empty when nothing folds."""
    if len(text) > MAX_FORM_CHARS:
        return []
    if not any(w in text for w in _PY_BUILDING_WORDS) and _PY_PLUS.search(text) is None:
        return []
    current = _PY_CHR.sub(lambda m: _py_quote(_safe_chr(m.group(1))), text)
    for _ in range(32):
        nxt = _PY_REVERSED.sub(lambda m: _py_quote(_py_value(m.group(1))[::-1]), current)
        nxt = _PY_JOIN.sub(
            lambda m: _py_quote("".join(_py_value(s) for s in re.findall(_PY_STR, m.group(1)))),
            nxt,
        )
        nxt = _PY_CONCAT.sub(
            lambda m: _py_quote(_py_value(m.group(1)) + _py_value(m.group(2))), nxt
        )
        nxt = _PY_ADJACENT.sub(
            lambda m: _py_quote(_py_value(m.group(1)) + _py_value(m.group(2))), nxt
        )
        if nxt == current:
            break
        current = nxt
    return [current] if current != text else []


def _safe_chr(number: str) -> str:
    try:
        return chr(int(number, 0))
    except (ValueError, OverflowError):
        return ""


def python_dynamic(text: str) -> bool:
    """Whether Python code reaches a function by a computed name or runs built code."""
    return _PY_DYNAMIC.search(text) is not None


# -- decode and execute ------------------------------------------------------------------------

_DECODE_WORDS = ("base64", "b64", "decode", "openssl")
"""A base64 literal is only decoded in a text that names a decoder (else it is inert data)."""
_B64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=])([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_DECODER = re.compile(
    r"\bbase(?:64|32)\s+(?:-\w*[dD]\w*|--decode)\b|\bxxd\s+-\w*r|\bopenssl\s+(?:enc|base64)\b"
    r"|\buudecode\b|\b(?:b64|b32|b16|a85|b85)decode\b|\bfromhex\b|\bcodecs\.decode\b"
    r"|\brev\b|\btr\s+['\"]?[A-Za-z\[]|\bgunzip\b|\bzcat\b|\bgzip\s+-\w*d|\bunhexlify\b"
)
_EXECUTOR = re.compile(
    r"\|\s*(?:sudo\s+)?(?:\S*/)?(?:ba|da|z|k|mk)?sh\b|\|\s*(?:\S*/)?(?:python\d?(?:\.\d+)?|perl|ruby|node)\b"
    r"|\|\s*source\b|\beval\b|\bexec\s*\(|\b(?:source|\.|(?:ba)?sh)\s+<\(|\bsh\s+-c\s+[\"']?\$\("
    r"|\bbash\s+-c\s+[\"']?\$\("
)


def decode_and_execute(text: str) -> bool:
    """A decoder and an executor in one action: the shell (or Python) runs decoded text."""
    return _DECODER.search(text) is not None and _EXECUTOR.search(text) is not None


def decoded_payloads(text: str, limit: int = 8) -> list[str]:
    """Printable texts hidden as base64 literals in `text` (at most `limit`)."""
    if len(text) > MAX_FORM_CHARS:
        return []
    low = text.lower()
    if not any(word in low for word in _DECODE_WORDS):
        return []
    out: list[str] = []
    for match in _B64_TOKEN.finditer(text):
        token = match.group(1)
        if token.isalpha() and (token.islower() or token.isupper()):
            continue  # a plain word, not base64
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and all(c.isprintable() or c in "\n\t" for c in decoded):
            out.append(decoded)
            if len(out) >= limit:
                break
    return out
