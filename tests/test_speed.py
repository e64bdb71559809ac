"""The CPU speed levers (`agentbench.distill.speed`, `agentbench.distill.flops`) keep results:
packing gives each document the loss it has alone, bf16 autocast stays near float32, cached
teacher soft labels train the student the live teacher trains, fused AdamW changes nothing,
and the FLOP counts match the model. Real tiny-random-llama models, 1 torch thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from agentbench.bench.distill import synthetic_examples, write_examples
from agentbench.distill.config import SPEED_DEFAULTS, DistillConfig, validate_config
from agentbench.distill.data import IGNORE_INDEX, encode_chat
from agentbench.distill.flops import LlamaShape, cpu_bf16_native, measure_peak
from agentbench.distill.logits import (
    banned_token_ids,
    cache_teacher_targets,
    masked_kl,
    position_mask,
    target_positions,
)
from agentbench.distill.manifest import distill, read_manifest
from agentbench.distill.sft import PadCollator, load_causal_lm, target_logits
from agentbench.distill.speed import (
    CACHED_IDS,
    CACHED_PROBS,
    PackCollator,
    autocast,
    pack_layout,
    resolve_autocast,
    sparse_kl,
)
from agentbench.models import resolve_model
from agentbench.recipes.pretrain import train_shared_prefix
from agentbench.recipes.tiny import save_tiny_llama

torch.set_num_threads(1)
STUDENT = "tiny-random-llama"


@pytest.fixture(scope="module")
def tok() -> Any:
    return AutoTokenizer.from_pretrained(resolve_model(STUDENT))


@pytest.fixture(scope="module")
def model() -> Any:
    return load_causal_lm(resolve_model(STUDENT), "float32").eval()


@pytest.fixture(scope="module")
def rows(tok: Any) -> list[dict[str, Any]]:
    """One long and three short conversations: the short ones pack beside each other."""
    examples = synthetic_examples(1, seed=3, steps=3) + synthetic_examples(3, seed=4, steps=0)
    # Without the environment's system prompt (about 1,200 tokens in this small vocabulary),
    # so that two short rows fit beside the long one: 604 against 273, 232 and 260 tokens.
    return [encode_chat(tok, e.messages) for e in examples]


def per_target_ce(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy at each target of a collated batch, in `keep.nonzero()` order."""
    keep, logits = target_logits(model, batch)
    targets = batch["labels"][:, 1:][keep[:, :-1]]
    return F.cross_entropy(logits.float(), targets, reduction="none")


def test_pack_layout_is_first_fit_decreasing() -> None:
    assert pack_layout([10, 4, 6, 3, 3]) == [[0], [2, 1], [3, 4]]
    assert pack_layout([5]) == [[0]]


def test_packing_gives_each_document_its_unpacked_loss(
    model: Any, tok: Any, rows: list[dict[str, Any]]
) -> None:
    layout = pack_layout([len(r["input_ids"]) for r in rows])
    assert any(len(members) > 1 for members in layout), "the test needs a packed row"
    packed = PackCollator(tok.pad_token_id)(rows)
    assert packed["input_ids"].shape[0] == len(layout) < len(rows)
    with torch.no_grad():
        ce_packed = per_target_ce(model, packed)
        # Each document alone, in the packed order of documents.
        alone = [
            per_target_ce(model, PadCollator(tok.pad_token_id)([rows[i]]))
            for members in layout
            for i in members
        ]
        ce_alone = torch.cat(alone)
        # The same tokens with attention across documents: what the per-document mask avoids.
        crossed = per_target_ce(
            model,
            {
                **packed,
                "position_ids": None,
                "attention_mask": torch.ones_like(packed["attention_mask"]),
            },
        )
    assert ce_packed.shape == ce_alone.shape
    assert torch.allclose(ce_packed, ce_alone, atol=1e-4), (ce_packed - ce_alone).abs().max()
    assert not torch.allclose(crossed, ce_alone, atol=1e-3)
    # The token-mean loss (what the trainer optimises) equals the padded batch's.
    with torch.no_grad():
        padded = per_target_ce(model, PadCollator(tok.pad_token_id)(rows))
    assert abs(float(padded.mean()) - float(ce_packed.mean())) < 1e-5


def test_packing_refuses_a_teacher_prompt_and_in_config() -> None:
    with pytest.raises(ValueError, match="teacher_input_ids"):
        PackCollator(0)([{"input_ids": [1, 2], "labels": [1, 2], "teacher_input_ids": [1]}])
    with pytest.raises(Exception, match="packing"):
        validate_config(
            {"student": STUDENT, "mode": "logit-kl", "packing": True,
             "teacher": {"model": STUDENT, "system_prompt": "x"}}
        )  # fmt: skip


def test_bf16_autocast_loss_is_close_to_float32(
    model: Any, tok: Any, rows: list[dict[str, Any]]
) -> None:
    batch = PadCollator(tok.pad_token_id)(rows)
    with torch.no_grad():
        fp32 = float(per_target_ce(model, batch).mean())
        with autocast(True):
            bf16 = float(per_target_ce(model, batch).mean())
        with autocast(False):
            off = float(per_target_ce(model, batch).mean())
    assert off == fp32
    assert bf16 != fp32, "autocast did not change the arithmetic"
    assert abs(bf16 - fp32) / fp32 < 0.01
    assert resolve_autocast("auto") is cpu_bf16_native()
    assert resolve_autocast("off") is False and resolve_autocast("bf16") is True


def _pretrain(rows: list[dict[str, Any]], **levers: Any) -> tuple[Any, Any]:
    torch.manual_seed(0)
    path = resolve_model(STUDENT)
    model = load_causal_lm(path, "float32")
    log = train_shared_prefix(
        model, rows, [], epochs=2, batch_size=2, learning_rate=1e-3, seed=0, log_every=1,
        **levers,
    )  # fmt: skip
    return model, log


def test_build_loop_levers_fused_adamw_identical_bf16_close(rows: list[dict[str, Any]]) -> None:
    base_model, base = _pretrain(rows)
    fused_model, fused = _pretrain(rows, fused_adamw=True)
    _, bf16 = _pretrain(rows, autocast_bf16=True)
    assert base.steps == fused.steps == 4
    # Fused AdamW: the same update rule; float32 results equal to rounding.
    assert [x for _, x in fused.losses] == pytest.approx([x for _, x in base.losses], abs=1e-6)
    for (name, a), (_, b) in zip(
        base_model.named_parameters(), fused_model.named_parameters(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    # bf16 autocast: within bf16 tolerance of the float32 curve.
    for (_, x), (_, y) in zip(base.losses, bf16.losses, strict=True):
        assert abs(x - y) / x < 0.02
    # The log counts model FLOPs: 3x the forward of every real token, logits everywhere.
    shape = LlamaShape.of(base_model.config)
    docs = [(0, len(r["input_ids"])) for r in rows]
    one_epoch = shape.training_flops(docs, sum(n for _, n in docs))
    assert base.flops == pytest.approx(2 * one_epoch)
    assert base.wall_s > 0 and base.flops_per_s > 0


def test_flop_counts_match_the_model(model: Any) -> None:
    shape = LlamaShape.of(model.config)
    linear = sum(
        m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
        and "lm_head" not in n
    )  # fmt: skip
    assert shape.body_params == linear
    fwd = shape.forward_flops([(0, 10)], projected=10)
    assert (
        fwd
        == 2 * linear * 10
        + 4 * shape.layers * shape.hidden * 100
        + 2 * shape.hidden * shape.vocab * 10
    )
    assert shape.training_flops([(0, 10)], 10) == 3 * fwd
    lora = shape.training_flops([(0, 10)], 10, lora_r=4)
    assert 2 * fwd < lora < 3 * fwd
    peak = measure_peak(shape.matmul_shapes(64, 8), "float32", 1, min_s=0.01, square=(64,))
    assert peak.shape_flops > 0 and peak.square_flops > 0 and peak.threads == 1
    with pytest.raises(ValueError, match="at least one"):
        measure_peak([], "float32")


def test_sparse_kl_with_the_whole_vocabulary_is_masked_kl(model: Any, tok: Any, rows: Any) -> None:
    batch = PadCollator(tok.pad_token_id)(rows)
    banned = banned_token_ids(tok, ["rm", "file"])
    mask = banned.mask(model.config.vocab_size)
    cached, stats = cache_teacher_targets(
        model, rows, tok.pad_token_id, mask, 10_000, banned_tokens=banned, temperature=2.0
    )
    assert stats.k == model.config.vocab_size and stats.tail_mass < 1e-6
    assert stats.banned_mass > 0
    keep = target_positions(batch["labels"])
    student = torch.randn(int(keep.sum()), model.config.vocab_size)
    with torch.no_grad():
        teacher = target_logits(model, batch)[1]
    pairs = banned.context_bans(batch["input_ids"], keep)
    live, _ = masked_kl(student, teacher, position_mask(mask, pairs, student.shape[0]), 2.0)
    both = PadCollator(tok.pad_token_id)(cached)
    sparse = sparse_kl(student, both[CACHED_IDS], both[CACHED_PROBS], 2.0)
    assert float(sparse) == pytest.approx(float(live), rel=1e-5)
    # A short top-k drops the tail: a different (approximate) target.
    small, small_stats = cache_teacher_targets(model, rows, tok.pad_token_id, mask, 4)
    assert small_stats.k == 4 and small_stats.tail_mass > 0.01
    assert len(small[0][CACHED_IDS][0]) == 4


def _kl_run(data: Path, teacher: Path, out: Path, **kw: Any) -> Any:
    config: DistillConfig = validate_config(
        {"student": STUDENT, "mode": "logit-kl", "teacher": str(teacher), "max_length": 4096,
         "batch_size": 2, "max_steps": 3, **kw}
    )  # fmt: skip
    manifest = read_manifest(distill(config, data, out, force=True))
    assert manifest is not None
    return manifest


def test_cached_teacher_logits_train_like_the_live_teacher(tmp_path: Path) -> None:
    data = write_examples(tmp_path / "data.jsonl", synthetic_examples(4, steps=1))
    teacher = tmp_path / "teacher"
    save_tiny_llama(teacher, seed=1)
    live = _kl_run(data, teacher, tmp_path / "live")
    cached = _kl_run(data, teacher, tmp_path / "cached", teacher_cache_topk=100_000)
    packed = _kl_run(data, teacher, tmp_path / "packed", teacher_cache_topk=100_000, packing=True)
    curve = [loss for _, loss in live.train["loss_history"]]
    assert [x for _, x in cached.train["loss_history"]] == pytest.approx(curve, rel=1e-5)
    assert [x for _, x in packed.train["loss_history"]] == pytest.approx(curve, rel=1e-4)
    assert cached.train["metrics"]["teacher_cache_tail_mass"] < 1e-6
    assert cached.train["metrics"]["banned_mass_last"] == pytest.approx(
        live.train["metrics"]["banned_mass_first"], rel=0.5
    )
    assert cached.key != live.key != packed.key


def test_speed_levers_stay_out_of_the_cache_key_at_their_defaults() -> None:
    base = validate_config({"student": STUDENT})
    assert not set(SPEED_DEFAULTS) & set(base.key_fields())
    assert (
        validate_config({"student": STUDENT, "fused_adamw": True}).key_fields() != base.key_fields()
    )
    auto = validate_config({"student": STUDENT, "autocast": "auto"}).key_fields()
    assert (auto == base.key_fields()) is not cpu_bf16_native()
    with pytest.raises(Exception, match="teacher_cache_topk"):
        validate_config({"student": STUDENT, "teacher_cache_topk": 8})


@pytest.mark.slow
def test_compiled_build_loop_matches_eager(rows: list[dict[str, Any]]) -> None:
    """torch.compile on CPU (inductor, gcc): the same loss curve within float tolerance.
    About 1-2 minutes on 2 loaded cores (compilation)."""
    _, eager = _pretrain(rows)
    _, compiled = _pretrain(rows, compile_model=True)
    assert [x for _, x in compiled.losses] == pytest.approx([x for _, x in eager.losses], rel=1e-4)


def test_labels_at_document_starts_are_dropped(tok: Any, rows: list[dict[str, Any]]) -> None:
    packed = PackCollator(tok.pad_token_id)(rows)
    starts = packed["position_ids"] == 0
    assert bool((packed["labels"][starts] == IGNORE_INDEX).all())
    real = int(packed["attention_mask"].sum())
    assert real == sum(len(r["input_ids"]) for r in rows)
