"""Reusing the keys and values of earlier turns: the transformers backend's prefix cache.

An agent's prompt at step t+1 is its prompt at step t, its own reply and one observation. Fed
from scratch, every step re-reads the whole conversation: SmolLM2 on a FileTool episode spends
most of its time re-encoding system prompts and old observations it encoded a step before. The
cache keeps, for each finished turn, the attention keys and values of its tokens (prompt and
reply), and a later prompt that starts with the same tokens only encodes what is new, as vLLM's
automatic prefix caching does, at the granularity of whole turns instead of blocks.

Matching is by token ids, not by episode: a prompt takes the longest common prefix it shares
with any entry (a new episode finds its env's system prompt in another episode's entry). A
reply is retokenized when it enters the next prompt; where its tokens differ from the sampled
ones the match simply ends there. At least the prompt's last token is always encoded, so the
forward pass has logits to sample from.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class PrefixEntry:
    """The keys and values of one token sequence, per layer `(keys, values)`, each shaped
    `[kv_heads, tokens, head_dim]`."""

    tokens: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


class PrefixCache:
    """A pool of cached turns, matched by longest common token prefix."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[int, PrefixEntry] = OrderedDict()  # oldest use first
        self._next_key = 0
        self.nbytes = 0
        self.lookups = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, prompt: Sequence[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with `prompt`, and how many of its tokens to
        reuse (at most `len(prompt) - 1`; 0 and None when nothing matches)."""
        import torch

        self.lookups += 1
        limit = len(prompt) - 1
        if limit < 1 or not self._entries:
            return None, 0
        query = torch.tensor(prompt[:limit])
        best_key, best = None, 0
        for key, entry in self._entries.items():
            n = min(limit, len(entry.tokens))
            if n <= best:
                continue
            differ = (entry.tokens[:n] != query[:n]).nonzero()
            common = int(differ[0, 0]) if len(differ) else n
            if common > best:
                best_key, best = key, common
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        self.reused_tokens += best
        return self._entries[best_key], best

    def add(self, tokens: Sequence[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the keys and values of `tokens`. An entry whose tokens are a prefix of these is
        replaced (the turn before, in the same conversation)."""
        import torch

        entry = PrefixEntry(torch.tensor(list(tokens), dtype=torch.long), layers)
        if entry.nbytes > self.capacity_bytes:
            return
        n = len(entry.tokens)
        for key, old in list(self._entries.items()):
            m = len(old.tokens)
            if m <= n and torch.equal(old.tokens, entry.tokens[:m]):
                self._drop(key)
        self._entries[self._next_key] = entry
        self._next_key += 1
        self.nbytes += entry.nbytes
        while self.nbytes > self.capacity_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes


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
