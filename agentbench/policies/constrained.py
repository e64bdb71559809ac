"""Constrained decoding: token masks that keep a generated action inside a JSON schema.

    constraint = ActionConstraint(tokenizer, eos_token_ids)
    decoder = constraint.decoder(schema)        # one per generate call and schema
    allowed = decoder.allowed(generated_ids)    # token ids that may come next

Built on lm-format-enforcer's `TokenEnforcer` and `JsonSchemaParser` (the library vLLM offers
as a guided-decoding backend). Its transformers integration does not import under
transformers 5, so the tokenizer data (each token's text and whether it starts a word) is
built here, the way that integration builds it. Building it decodes every token once (0.1 s
for tiny-agent's 2k vocabulary, 1.6 s for SmolLM2's 49k); `ActionConstraint` holds it.

Limits: only tokens that decode to whole characters without control characters (tabs and
newlines included) may be chosen, so the parser's text never falls out of step with the
tokens and a string never holds a raw newline (JSON escapes it: `\n`); a character a
byte-level BPE splits into several tokens cannot be written (non-ASCII is rare in the tasks),
and the blanks between keys are spaces. Required keys come in the schema's order, at most two
blanks in a row; after the object ends only blanks and the end of turn may follow. A reply
cut by `max_new_tokens` can still be incomplete. The decoder keys its states by the generated
tokens alone, so rows of a batch with the same schema share one decoder. Where the parser
allows nothing (a dead end), `allowed` returns the end-of-turn tokens: the action ends there
and the env judges it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any


class ActionConstraint:
    """A tokenizer's data for lm-format-enforcer, computed once; makes per-schema decoders."""

    def __init__(self, tokenizer: Any, eos_token_ids: Collection[int]):
        from lmformatenforcer import TokenEnforcerTokenizerData

        if not eos_token_ids:
            raise ValueError("constrained decoding needs an end-of-turn token")
        self.eos_token_ids = sorted(eos_token_ids)
        vocab_size = len(tokenizer)
        special = set(tokenizer.all_special_ids)
        # A token's text after a plain "0" shows a leading space a lone decode would drop.
        zero = tokenizer.encode("0", add_special_tokens=False)[-1]
        regular = []
        for token in range(vocab_size):
            if token in special:
                continue
            after_zero = tokenizer.decode([zero, token])[1:]
            alone = tokenizer.decode([token])
            if not _clean(alone) or not _clean(after_zero):
                continue
            regular.append((token, after_zero, len(after_zero) > len(alone)))
        self.data = TokenEnforcerTokenizerData(
            regular, functools.partial(_decode, tokenizer), self.eos_token_ids, False, vocab_size
        )

    def decoder(self, schema: dict[str, Any]) -> SchemaDecoder:
        return SchemaDecoder(self, schema)


class SchemaDecoder:
    """The tokens allowed next, given what a row has generated so far."""

    def __init__(self, constraint: ActionConstraint, schema: dict[str, Any]):
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer

        self._eos = constraint.eos_token_ids
        parser = JsonSchemaParser(schema)
        self._enforcer = TokenEnforcer(constraint.data, parser)
        # TokenEnforcer sets the parser's config (string characters: every one-character
        # token). Replace it after, or it is overwritten: keys in the schema's required order
        # (FileTool's "tool" before "args", as the prompt shows) and at most two blanks in a
        # row, so a small model cannot pad a call forever.
        parser.config = CharacterLevelParserConfig(
            alphabet="".join(ch for ch in parser.config.alphabet if _clean(ch)),
            max_consecutive_whitespaces=2,
            force_json_field_order=True,
        )

    def allowed(self, generated: Sequence[int]) -> list[int]:
        result = self._enforcer.get_allowed_tokens(list(generated))
        tokens = getattr(result, "allowed_tokens", result)
        return [int(t) for t in tokens] or list(self._eos)


def _clean(text: str) -> bool:
    """A token the parser can follow: whole characters (not a piece of a multi-byte one, which
    decodes to U+FFFD and would put the parser's text out of step with the tokens) and no
    control character, tabs and newlines included: lm-format-enforcer's fast path for string
    contents lets any token without a quote or backslash in, and JSON strings may not hold
    them raw (outside strings, spaces are blank enough)."""
    return bool(text) and all(
        ord(ch) >= 32 and not 0x7F <= ord(ch) < 0xA0 and ch != "\ufffd" for ch in text
    )


def _decode(tokenizer: Any, tokens: list[int]) -> str:
    # A cut multi-byte character decodes to U+FFFD; the parser must not see it yet.
    return str(tokenizer.decode(tokens)).rstrip("\ufffd")
