"""Reusing the keys and values of earlier turns: the transformers backend's prefix cache.

An agent's prompt at step t+1 is its prompt at step t, its own reply and one observation. Fed
from scratch, every step re-reads the whole conversation: SmolLM2 on a FileTool episode spends
most of its time re-encoding system prompts and old observations it encoded a step before. The
cache keeps, for each finished turn, the attention keys and values of its tokens (prompt and
reply), and a later prompt that starts with the same tokens only encodes what is new, as vLLM's
automatic prefix caching does, though each turn is stored whole (vLLM shares blocks between
sequences; here two episodes each hold a copy of their common system prompt).

Matching is by token ids, not by episode: a prompt takes the longest common prefix it shares
with any entry, to within a block of 32 tokens (`PrefixCache`; a new episode finds its env's
system prompt in another episode's entry). A reply is retokenized when it enters the next
prompt; where its tokens differ from the sampled ones the match simply ends there. At least
the prompt's last token is always encoded, so the forward pass has logits to sample from.

Exactness: keys and values do not depend on what follows them (causal attention), so a reused
prefix gives the same logits as encoding it again, up to floating-point differences between
batch layouts (the same caveat as left padding: `HFPolicy`'s module docstring).

Limits: `capacity_bytes` bounds the keys and values held (least recently used entries go
first); an entry that alone exceeds it is not kept. Only caches whose every layer is a plain
`transformers.DynamicLayer` (full attention) can be cut per row and stitched back; for any other
(sliding-window, recurrent or hybrid layers) `HFPolicy` turns the prefix cache off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class PrefixEntry:
    """The keys and values of one token sequence, per layer `(keys, values)`, each shaped
    `[kv_heads, tokens, head_dim]`."""

    tokens: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    chain: list[int] = field(default_factory=list)
    """Chained hashes of its full blocks of tokens (`PrefixCache.block`)."""

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


_ROOT = 0  # the chain of no block


class PrefixCache:
    """A pool of cached turns, matched by longest common token prefix.

    Entries are indexed by the chained hashes of their blocks of `block` tokens (as vLLM
    indexes its KV blocks), so a lookup walks the prompt's blocks once instead of comparing
    it with every entry: the pool can hold thousands of turns of a small model. The match is
    the most recently used entry among those sharing the most full blocks with the prompt,
    extended token by token; it can fall short of the best possible entry by less than a
    block. A prompt sharing less than one block with every entry reuses nothing.
    """

    def __init__(self, capacity_bytes: int, block: int = 32) -> None:
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        if block < 1:
            raise ValueError("block must be >= 1")
        self.capacity_bytes = capacity_bytes
        self.block = block
        self._entries: OrderedDict[int, PrefixEntry] = OrderedDict()  # oldest use first
        self._by_block: dict[int, set[int]] = {}
        """Chain hash -> the entries that have that chain of full blocks."""
        self._ending: dict[int, set[int]] = {}
        """Chain hash -> the entries whose full blocks end there (candidates to supersede)."""
        self._next_key = 0
        self.nbytes = 0
        self.lookups = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _chain(self, tokens: Sequence[int]) -> list[int]:
        chain, h, b = [], _ROOT, self.block
        for i in range(0, len(tokens) - b + 1, b):
            h = hash((h, tuple(tokens[i : i + b])))
            chain.append(h)
        return chain

    def match(self, prompt: Sequence[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with `prompt` (to within a block), and how
        many of its tokens to reuse (at most `len(prompt) - 1`; None and 0 when nothing
        matches)."""
        import torch

        self.lookups += 1
        limit = len(prompt) - 1
        candidates: set[int] = set()
        for h in self._chain(prompt[:limit]):
            deeper = self._by_block.get(h)
            if not deeper:
                break
            candidates = deeper
        if not candidates:
            return None, 0
        order = {key: i for i, key in enumerate(self._entries)} if len(candidates) > 1 else {}
        key = max(candidates, key=lambda k: order.get(k, 0))
        entry = self._entries[key]
        n = min(limit, len(entry.tokens))
        differ = (entry.tokens[:n] != torch.tensor(prompt[:n])).nonzero()
        common = int(differ[0, 0]) if len(differ) else n
        self._entries.move_to_end(key)
        self.reused_tokens += common
        return entry, common

    def add(self, tokens: Sequence[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the keys and values of `tokens`. An entry whose tokens are a prefix of these is
        replaced (the turn before, in the same conversation)."""
        import torch

        chain = self._chain(tokens)
        entry = PrefixEntry(torch.tensor(list(tokens), dtype=torch.long), layers, chain)
        if entry.nbytes > self.capacity_bytes:
            return
        n = len(entry.tokens)
        for h in [_ROOT, *chain]:
            for key in list(self._ending.get(h, ())):
                old = self._entries[key].tokens
                if len(old) <= n and torch.equal(old, entry.tokens[: len(old)]):
                    self._drop(key)
        key = self._next_key
        self._next_key += 1
        self._entries[key] = entry
        for h in chain:
            self._by_block.setdefault(h, set()).add(key)
        self._ending.setdefault(chain[-1] if chain else _ROOT, set()).add(key)
        self.nbytes += entry.nbytes
        while self.nbytes > self.capacity_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self._by_block.clear()
        self._ending.clear()
        self.nbytes = 0

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= entry.nbytes
        for h in entry.chain:
            keys = self._by_block[h]
            keys.discard(key)
            if not keys:
                del self._by_block[h]
        end = entry.chain[-1] if entry.chain else _ROOT
        self._ending[end].discard(key)
        if not self._ending[end]:
            del self._ending[end]


def stitch(
    parts: Sequence[tuple[PrefixEntry | None, int]], width: int, device: Any
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the batch's past keys and values: row i's first `n_i` cached tokens
    right-aligned in `width` columns (zeros to their left, which the attention mask hides)."""

    template = next(entry for entry, n in parts if entry is not None and n > 0)
    stitched = []
    for layer, (k0, v0) in enumerate(template.layers):
        heads, _, dim = k0.shape
        keys = k0.new_zeros((len(parts), heads, width, dim))
        values = v0.new_zeros((len(parts), heads, width, dim))
        for i, (entry, n) in enumerate(parts):
            if entry is not None and n > 0:
                k, v = entry.layers[layer]
                keys[i, :, width - n :] = k[:, :n]
                values[i, :, width - n :] = v[:, :n]
        stitched.append((keys.to(device), values.to(device)))
    return stitched


def plain_layers(cache: Any) -> bool:
    """Whether every layer of a transformers cache is a full-attention `DynamicLayer` (whose
    columns are the tokens, so one row can be cut out and stitched into another batch)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None) or []
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def cut_row(cache: Any, row: int, columns: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One row's keys and values at the given columns (a bool mask over the cache's width)."""
    return [
        (layer.keys[row][:, columns], layer.values[row][:, columns])  # indexing copies
        for layer in cache.layers
    ]
