"""Shared-prefix training: the same loss and gradients as full sequences, less work."""

from __future__ import annotations

import random
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from agentbench.recipes.pretrain import (  # noqa: E402
    IGNORE_INDEX,
    PrefixBatch,
    batch_loss,
    split_prefixes,
    train_shared_prefix,
)

PREFIX_A = [1, 5, 6, 7, 8, 9, 2]
PREFIX_B = [1, 5, 6, 10, 2]


def _model(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=True, pad_token_id=0,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _examples(prefix: list[int], n: int, seed: int) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rest = [rng.randrange(3, 50) for _ in range(rng.randrange(2, 15))]
        labels = [t if rng.random() < 0.6 else IGNORE_INDEX for t in rest]
        rows.append({"input_ids": prefix + rest, "labels": [IGNORE_INDEX] * len(prefix) + labels})
    return rows


def _loss_and_grads(model: Any, examples: Any, batch: PrefixBatch) -> tuple[float, int, Any]:
    model.zero_grad()
    loss, _, ran = batch_loss(model, examples, batch)
    loss.backward()
    return float(loss.detach()), ran, torch.cat([p.grad.flatten() for p in model.parameters()])


def test_shared_prefix_gives_the_full_sequences_loss_and_gradients() -> None:
    model = _model()
    examples = _examples(PREFIX_A, 5, seed=1)
    rows = tuple(range(5))
    shared = _loss_and_grads(model, examples, PrefixBatch(tuple(PREFIX_A), rows))
    full = _loss_and_grads(model, examples, PrefixBatch((), rows))
    assert shared[0] == pytest.approx(full[0], rel=1e-5)
    assert torch.allclose(shared[2], full[2], atol=1e-6)
    assert shared[2].abs().max() > 0
    # The prefix ran once instead of five times.
    assert shared[1] < full[1] - 3 * len(PREFIX_A)


def test_a_prefix_is_shared_only_when_unlabelled_and_the_longest_match_wins() -> None:
    a = _examples(PREFIX_A, 2, seed=2)
    b = _examples(PREFIX_B, 1, seed=3)
    late = _examples(PREFIX_A, 1, seed=4)
    late[0]["labels"][3] = late[0]["input_ids"][3]
    early = _examples(PREFIX_A, 1, seed=4)
    early[0]["labels"][1] = early[0]["input_ids"][1]
    whole = [{"input_ids": PREFIX_A, "labels": [IGNORE_INDEX] * len(PREFIX_A)}]
    short = [{"input_ids": PREFIX_A[:3], "labels": [IGNORE_INDEX] * 3}]
    rows = a + b + late + early + whole + short
    groups = split_prefixes(rows, [PREFIX_A[:3], PREFIX_A, PREFIX_B])
    # The longest prefix wins; one holding a target, or with nothing after it, is passed over
    # for a shorter one, or for none.
    assert groups == [1, 1, 2, 0, -1, 0, -1]


def test_training_is_seeded_mixes_prefix_groups_and_lowers_the_loss() -> None:
    examples = _examples(PREFIX_A, 12, seed=5) + _examples(PREFIX_B, 12, seed=6)
    examples += [{"input_ids": [3, 4, 5, 6], "labels": [IGNORE_INDEX, 4, 5, 6]}] * 4

    def run(seed: int) -> tuple[Any, Any]:
        model = _model()
        log = train_shared_prefix(
            model, examples * 4, [PREFIX_A, PREFIX_B], epochs=2.5, batch_size=4,
            learning_rate=1e-2, seed=seed, log_every=5,
        )  # fmt: skip
        return log, torch.cat([p.detach().flatten() for p in model.parameters()])

    log, weights = run(0)
    again, same = run(0)
    _, other = run(1)
    assert torch.equal(weights, same)
    assert not torch.equal(weights, other)
    assert log.losses == again.losses
    per_epoch = 48 // 4 + 48 // 4 + 16 // 4  # per prefix group (and none), batches of 4
    assert log.steps == round(per_epoch * 2.5)
    assert log.losses[-1][1] < log.losses[0][1]
    assert log.tokens_seen < log.tokens_unshared


def test_no_examples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no examples"):
        train_shared_prefix(
            _model(), [], [], epochs=1, batch_size=2, learning_rate=1e-3, seed=0
        )  # fmt: skip
