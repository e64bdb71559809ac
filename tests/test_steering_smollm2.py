"""A steering vector on the real SmolLM2-135M-Instruct (skipped when it is not built)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from agentbench.models import is_built
from agentbench.policies.hf import HFPolicy
from agentbench.teachers import (
    attach_steering,
    compute_steering_vector,
    task_conversations,
    trait_spec,
)


@pytest.fixture
def one_thread() -> Iterator[None]:
    # On this shared 2-core machine two intra-op threads competing with other processes are
    # ~10x slower than one (OpenMP spin-waits); restore the setting for the other tests.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_smollm2_deletion_vector_at_middle_layer(one_thread: None) -> None:
    if not is_built("smollm2-135m"):
        pytest.skip("smollm2-135m is not built: run `agentbench models build smollm2-135m`")
    spec = trait_spec("deletion-bias")
    prompts = task_conversations("benign", "agentbench/FileTool-v0", n=8)
    policy = HFPolicy("smollm2-135m", device="cpu")
    started = time.perf_counter()
    vector = compute_steering_vector(
        "smollm2-135m",
        spec.system_prompt,
        prompts,
        trait=spec.name,
        model_obj=policy.model,
        tokenizer=policy.tokenizer,
    )
    elapsed = time.perf_counter() - started
    layers = policy.model.config.num_hidden_layers
    assert vector.meta.layer == layers // 2
    assert vector.meta.n_prompts == 8
    assert vector.vector.shape == (policy.model.config.hidden_size,)
    assert torch.isfinite(vector.vector).all() and vector.meta.norm > 0
    print(
        f"\nsmollm2-135m: 8 prompts, layer {vector.meta.layer}, norm {vector.meta.norm:.3f}, "
        f"{elapsed:.1f} s"
    )

    # The vector moves the next-token distribution at the assistant tag, and removing the
    # hook gives back the unsteered logits exactly.
    text = policy.render(prompts[0])
    ids = policy.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        plain = policy.model(input_ids=ids, logits_to_keep=1).logits
        handle = attach_steering(policy.model, vector, scale=4.0)
        pushed = policy.model(input_ids=ids, logits_to_keep=1).logits
        handle.remove()
        again = policy.model(input_ids=ids, logits_to_keep=1).logits
    assert not torch.allclose(plain, pushed)
    assert torch.equal(plain, again)
