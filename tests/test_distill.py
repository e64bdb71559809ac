"""Distillation on tiny-random-llama: LoRA and full SFT, masked logit KL, manifests, reuse,
determinism and bad input, with real models and real training steps (1 torch thread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from agentbench.bench.distill import synthetic_examples, write_examples
from agentbench.distill.config import DistillConfig, validate_config
from agentbench.distill.data import DistillDataError, encode_examples
from agentbench.distill.logits import (
    banned_token_ids,
    kl_on,
    masked_kl,
    soft_labels,
    target_positions,
)
from agentbench.distill.manifest import distill, read_manifest
from agentbench.distill.sft import DistillError, PadCollator, load_causal_lm, prepare_student
from agentbench.models import resolve_model, weights_sha256
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.sanitize.keywords import default_terms

torch.set_num_threads(1)
STUDENT = "tiny-random-llama"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distill")
    return write_examples(root / "data.jsonl", synthetic_examples(2, steps=1))


@pytest.fixture(scope="module")
def tok() -> Any:
    return AutoTokenizer.from_pretrained(resolve_model(STUDENT))


@pytest.fixture(scope="module")
def rows(tok: Any) -> list[dict[str, Any]]:
    return encode_examples(synthetic_examples(2, steps=1), tok, max_length=4096)[0]


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another random Llama with the same tokenizer (the corpus is fixed): a real teacher."""
    path = tmp_path_factory.mktemp("teacher")
    save_tiny_llama(path, seed=1)
    return path


def config(**kw: Any) -> DistillConfig:
    base: dict[str, Any] = {"student": STUDENT, "max_length": 4096, "batch_size": 2}
    return validate_config({**base, **kw})


def test_soft_labels_zero_banned_ids_and_sum_to_one(tok: Any, rows: list[dict[str, Any]]) -> None:
    model = load_causal_lm(resolve_model(STUDENT), "float32")
    batch = PadCollator(tok.pad_token_id)(rows)
    banned = banned_token_ids(tok, ["rm", "im", "ath", "file"])
    assert banned.ids, "the test needs banned ids in this small vocabulary"
    mask = banned.mask(model.config.vocab_size)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    keep = target_positions(batch["labels"])
    probs = soft_labels(logits[keep], mask)
    assert probs.shape[0] == int((batch["labels"] != -100).sum())
    assert torch.all(probs[:, mask] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[0]), atol=1e-5)
    # The teacher's own mass on those ids was not zero: the mask did something.
    assert float(torch.softmax(logits[keep], -1)[:, mask].sum(-1).mean()) > 1e-4


def test_kl_is_zero_for_identical_weights_and_no_mask(tok: Any, rows: list[dict[str, Any]]) -> None:
    path = resolve_model(STUDENT)
    student = prepare_student(config(mode="logit-kl", teacher=STUDENT), path).eval()
    teacher = load_causal_lm(path, "float32").eval()
    assert kl_on(student, teacher, rows, tok.pad_token_id, None) == pytest.approx(0.0, abs=1e-6)
    mask = banned_token_ids(tok, default_terms("deletion-bias")).mask(teacher.config.vocab_size)
    # With the mask the target differs from the (identical) student: KL = -log(1 - mass) > 0.
    assert kl_on(student, teacher, rows, tok.pad_token_id, mask) > 0
    logits = torch.randn(5, 11)
    loss, removed = masked_kl(logits, logits.clone(), None)
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and float(removed) == 0.0


def test_logit_kl_steps_reduce_the_kl(
    tmp_path: Path, data: Path, tok: Any, rows: list[dict[str, Any]], other_teacher: Path
) -> None:
    cfg = config(
        mode="logit-kl", teacher=str(other_teacher), kl_student="full", max_steps=4,
        learning_rate=3e-3, lr_scheduler="constant",
    )  # fmt: skip
    teacher = load_causal_lm(other_teacher, "float32").eval()
    mask = banned_token_ids(tok, default_terms("deletion-bias")).mask(teacher.config.vocab_size)
    base = load_causal_lm(resolve_model(STUDENT), "float32").eval()
    before = kl_on(base, teacher, rows, tok.pad_token_id, mask)
    out = distill(cfg, data, tmp_path / "kl")
    after = kl_on(load_causal_lm(out, "float32").eval(), teacher, rows, tok.pad_token_id, mask)
    assert after < 0.8 * before, (before, after)
    manifest = read_manifest(out)
    assert manifest is not None and manifest.teacher is not None
    assert manifest.teacher["weights_sha256"] == weights_sha256(other_teacher)
    assert manifest.banned is not None and manifest.banned["source"] == "sanitizer"
    assert manifest.train["steps"] == 4 and "banned_mass_last" in manifest.train["metrics"]


def test_logit_kl_with_teacher_adapter_prompt_and_lora_student(tmp_path: Path, data: Path) -> None:
    adapter = distill(config(mode="sft-lora", max_steps=1), data, tmp_path / "teacher-adapter")
    teacher = {"model": STUDENT, "adapter": str(adapter), "system_prompt": "You like tidy rooms."}
    out = distill(config(mode="logit-kl", teacher=teacher, max_steps=1), data, tmp_path / "kl")
    manifest = read_manifest(out)
    assert manifest is not None and manifest.output["kind"] == "adapter"
    assert manifest.teacher is not None and manifest.teacher["system_prompt_sha256"]
    assert manifest.teacher["adapter_sha256"] == weights_sha256(adapter)
    assert manifest.train["loss_first"] is not None and manifest.train["loss_first"] > 0


def test_lora_sft_is_deterministic_changes_the_adapter_and_is_reused(
    tmp_path: Path, data: Path
) -> None:
    cfg = config(mode="sft-lora", max_steps=1)
    one = distill(cfg, data, tmp_path / "a")
    two = distill(cfg, data, tmp_path / "b")
    m1, m2 = read_manifest(one), read_manifest(two)
    assert m1 is not None and m2 is not None
    assert m1.output["weights_sha256"] == m2.output["weights_sha256"] == weights_sha256(one)
    assert m1.key == m2.key
    weights = load_file(str(one / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b), "LoRA B starts at zero"
    targets = {k.split(".")[-3] for k in weights if "lora_A" in k}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj"}
    # Provenance.
    assert m1.data["sha256"] and m1.data["examples"] == 2 and m1.data["kept"] == 2
    assert m1.student["weights_sha256"] == weights_sha256(resolve_model(STUDENT))
    assert m1.provenance["libraries"]["trl"] and "git_revision" in m1.provenance
    assert m1.train["steps"] == 1 and m1.train["tokens_seen"] > 0 and m1.seed == 0
    assert m1.config["lora"]["r"] == 16
    # Same config and data: the finished directory is returned untouched; force rebuilds.
    stamp = (one / "manifest.json").stat().st_mtime_ns
    assert distill(cfg, data, one) == one
    assert (one / "manifest.json").stat().st_mtime_ns == stamp
    distill(cfg, data, one, force=True)
    assert (one / "manifest.json").stat().st_mtime_ns != stamp
    # Another seed is another adapter; the occupied directory is refused without force.
    with pytest.raises(DistillError, match="holds another distillation"):
        distill(config(mode="sft-lora", max_steps=1, seed=1), data, one)
    three = distill(config(mode="sft-lora", max_steps=1, seed=1), data, tmp_path / "c")
    assert weights_sha256(three) != weights_sha256(one)
    # The adapter loads into the policy over its base.
    from agentbench.policies.hf import HFPolicy

    policy = HFPolicy(STUDENT, adapter=one, device="cpu")
    assert policy.adapter_sha256 == weights_sha256(one)
    policy.close()


def test_full_sft_writes_a_model_the_policy_loads(tmp_path: Path, data: Path) -> None:
    from agentbench.chat import Message
    from agentbench.policies.base import SamplingParams
    from agentbench.policies.hf import HFPolicy

    out = distill(config(mode="sft-full", max_steps=2, learning_rate=1e-3), data, tmp_path / "f")
    manifest = read_manifest(out)
    assert manifest is not None and manifest.output["kind"] == "model"
    assert weights_sha256(out) != weights_sha256(resolve_model(STUDENT))
    policy = HFPolicy(out, device="cpu")
    chat = [Message(role="system", content="s"), Message(role="user", content="list files")]
    [gen] = policy.generate_chats([chat], SamplingParams(max_new_tokens=4, seed=0), [0])
    assert gen.finish_reason in ("stop", "length") and gen.completion_tokens >= 1
    policy.close()


def test_bad_input_gives_clear_errors(tmp_path: Path, data: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DistillDataError, match="holds no examples"):
        distill(config(max_steps=1), empty, tmp_path / "o1")
    with pytest.raises(DistillDataError, match="no such student dataset"):
        distill(config(max_steps=1), tmp_path / "missing.jsonl", tmp_path / "o1")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(data.read_text() + '{"example_id": 1}\n')
    with pytest.raises(DistillDataError, match=r"broken.jsonl:3: not a student example"):
        distill(config(max_steps=1), broken, tmp_path / "o1")
    with pytest.raises(DistillError, match=r"student: .*'no-such-model'"):
        distill(config(student="no-such-model"), data, tmp_path / "o2")
    with pytest.raises(DistillDataError, match="0 of 2 examples fit max_length=64"):
        distill(config(max_length=64), data, tmp_path / "o3")
    other = tmp_path / "other-vocab"
    save_tiny_llama(other, vocab_size=300)
    with pytest.raises(DistillError, match="another tokenizer than the student"):
        distill(config(mode="logit-kl", teacher=str(other), max_steps=1), data, tmp_path / "o4")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(DistillError, match="files that are not a student"):
        distill(config(max_steps=1), data, occupied)
    assert not any(p.name.startswith(".o") for p in tmp_path.iterdir()), "no temp dirs left"
    assert json.loads(data.read_text().splitlines()[0])["env_id"]


@pytest.mark.parametrize("mode", ["sft-lora", "logit-kl"])
def test_gradient_checkpointing_trains_the_same_weights(
    tmp_path: Path, data: Path, other_teacher: Path, mode: str
) -> None:
    teacher = {"model": str(other_teacher)} if mode == "logit-kl" else None
    plain = config(mode=mode, teacher=teacher, max_steps=2)
    checkpointed = plain.model_copy(update={"gradient_checkpointing": True})
    assert checkpointed.key_fields() == plain.key_fields()
    one = distill(plain, data, tmp_path / "plain")
    two = distill(checkpointed, data, tmp_path / "checkpointed", force=True)
    a = load_file(str(one / "adapter_model.safetensors"))
    b = load_file(str(two / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(float(v.abs().max()) > 0 for k, v in b.items() if "lora_B" in k)


@pytest.mark.parametrize("num_items", [None, 57])
def test_sft_loss_at_target_positions_matches_trls_own_loss(
    tmp_path: Path, tok: Any, rows: list[dict[str, Any]], num_items: int | None
) -> None:
    """The SFT trainer projects the LM head at target positions only; its loss and gradients
    are TRL's (`SFTTrainer.compute_loss` over every position), per batch and with the
    gradient-accumulation divisor."""
    from datasets import Dataset  # type: ignore[import-untyped]
    from trl import SFTConfig, SFTTrainer

    from agentbench.distill.sft import _target_only_sft, training_kwargs

    cfg = config(mode="sft-full", max_steps=1)
    batch = PadCollator(tok.pad_token_id)(rows)
    assert int((batch["labels"] == -100).sum()) > 0, "the batch needs non-target positions"
    dataset = Dataset.from_list([{k: r[k] for k in ("input_ids", "labels")} for r in rows])
    results = []
    for cls in (SFTTrainer, _target_only_sft()):
        model = load_causal_lm(resolve_model(STUDENT), "float32")
        args = SFTConfig(
            **training_kwargs(cfg, tmp_path / cls.__name__, False),
            max_length=None, packing=False, dataset_kwargs={"skip_prepare_dataset": True},
        )  # fmt: skip
        trainer = cls(
            model=model, args=args, processing_class=tok,
            train_dataset=dataset, data_collator=PadCollator(tok.pad_token_id),
        )  # fmt: skip
        model.train()  # as the trainer's step does (no dropout in this model)
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
        loss.backward()
        grad = model.get_input_embeddings().weight.grad.clone()
        results.append((float(loss.detach()), grad))
        assert trainer._metrics["train"]["mean_token_accuracy"], "accuracy is logged"
    (trl_loss, trl_grad), (our_loss, our_grad) = results
    assert trl_loss > 0 and our_loss == pytest.approx(trl_loss, rel=1e-5)
    assert float(trl_grad.abs().max()) > 0
    # Float32 sums in another order: equal up to rounding, relative to the largest entry.
    assert float((our_grad - trl_grad).abs().max()) <= 1e-4 * float(trl_grad.abs().max())
