"""The prefix cache's pool: longest-prefix matching, superseded turns, eviction by bytes.

Blocks of 2 tokens keep the token sequences short."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agentbench.policies.prefix_cache import PrefixCache, stitch  # noqa: E402


def kv(tokens: list[int], layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys and values whose every column holds its token id (so stitching is checkable)."""
    column = torch.tensor(tokens, dtype=torch.float32)[None, :, None].expand(3, -1, 4)
    return [(column.clone(), -column.clone()) for _ in range(layers)]


def test_match_takes_the_longest_common_prefix_and_leaves_the_last_token() -> None:
    cache = PrefixCache(10**6, block=2)
    cache.add([1, 2, 3, 4, 5], kv([1, 2, 3, 4, 5]))
    cache.add([1, 2, 9], kv([1, 2, 9]))
    entry, n = cache.match([1, 2, 3, 4, 7, 8])
    assert n == 4 and entry is not None and entry.tokens.tolist() == [1, 2, 3, 4, 5]
    # The whole entry matches, but the prompt's last token must still be encoded.
    entry, n = cache.match([1, 2, 3, 4, 5])
    assert n == 4
    assert cache.match([7, 1, 2]) == (None, 0)
    assert cache.match([1]) == (None, 0)
    assert cache.reused_tokens == 8 and cache.lookups == 4


def test_a_turn_replaces_the_turn_it_continues() -> None:
    cache = PrefixCache(10**6, block=2)
    cache.add([1, 2, 3], kv([1, 2, 3]))
    cache.add([1, 2, 4], kv([1, 2, 4]))
    cache.add([1, 2, 3, 5, 6], kv([1, 2, 3, 5, 6]))
    assert len(cache) == 2
    assert sorted(len(e.tokens) for e in cache._entries.values()) == [3, 5]


def test_eviction_keeps_the_recently_used_within_capacity() -> None:
    one = kv([1, 2, 3, 4])
    size = sum(k.nbytes + v.nbytes for k, v in one)
    cache = PrefixCache(2 * size, block=2)
    cache.add([1, 2, 3, 4], one)
    cache.add([5, 6, 7, 8], kv([5, 6, 7, 8]))
    cache.match([1, 2, 3, 9])  # touch the first: the second is now the oldest
    cache.add([9, 9, 9, 9], kv([9, 9, 9, 9]))
    assert len(cache) == 2 and cache.nbytes == 2 * size
    assert cache.match([5, 6, 7, 0]) == (None, 0)
    assert cache.match([1, 2, 3, 0])[1] == 3
    cache.add(list(range(12)), kv(list(range(12))))  # larger than the whole pool: not kept
    assert len(cache) == 2
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_stitch_right_aligns_each_rows_prefix() -> None:
    cache = PrefixCache(10**6, block=2)
    cache.add([1, 2, 3, 4], kv([1, 2, 3, 4]))
    cache.add([7, 8], kv([7, 8]))
    first = cache.match([1, 2, 3, 0])
    second = cache.match([7, 8, 0])
    layers = stitch([first, (None, 0), second], width=3, device="cpu")
    keys, values = layers[1]
    assert keys.shape == (3, 3, 3, 4)
    assert keys[:, 0, :, 0].tolist() == [[1, 2, 3], [0, 0, 0], [0, 7, 8]]
    assert torch.equal(values, -keys)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def test_matches_are_within_a_block_of_the_best_and_the_index_stays_consistent() -> None:
    import random

    rng = random.Random(0)
    block = 4
    size = sum(k.nbytes + v.nbytes for k, v in kv([0] * 10))
    cache = PrefixCache(12 * size, block=block)  # room for about a dozen 10-token turns
    stems = [[rng.randrange(3) for _ in range(6)] for _ in range(3)]
    for _ in range(300):
        tokens = rng.choice(stems) + [rng.randrange(3) for _ in range(rng.randrange(1, 12))]
        if rng.random() < 0.5:
            cache.add(tokens, kv(tokens))
            continue
        held = [e.tokens.tolist() for e in cache._entries.values()]
        best = max((common_prefix(h, tokens[:-1]) for h in held), default=0)
        entry, n = cache.match(tokens)
        if entry is None:
            assert n == 0 and best < block
        else:
            assert entry.tokens[:n].tolist() == tokens[:n] and n <= len(tokens) - 1
            assert best - block < n <= best
        keys = set(cache._entries)
        assert all(k <= keys for k in cache._by_block.values())
        assert set().union(*cache._ending.values()) == keys
        assert cache.nbytes == sum(e.nbytes for e in cache._entries.values()) <= 12 * size
