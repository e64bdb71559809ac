"""VLLMPolicy: runs only where vLLM and a CUDA GPU exist; elsewhere a clear error is checked."""

from __future__ import annotations

import importlib.util

import pytest

from agentbench.models import ModelError
from agentbench.policies import Message, SamplingParams, Turn

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: the missing-vllm error cannot happen")
def test_missing_vllm_is_a_clear_error() -> None:
    from agentbench.policies.vllm import VLLMPolicy

    with pytest.raises(ModelError, match=r"agentbench\[vllm\]"):
        VLLMPolicy("tiny-random-llama")


@pytest.mark.skipif(
    not (HAS_VLLM and has_cuda()), reason="needs vllm and a CUDA GPU (none on the CPU CI)"
)
def test_vllm_greedy_matches_hf() -> None:  # pragma: no cover - GPU only
    from agentbench.policies.hf import HFPolicy
    from agentbench.policies.vllm import VLLMPolicy

    turns = [
        Turn("a", "x", 0, (Message(role="user", content="What is the capital of France?"),)),
        Turn("b", "x", 0, (Message(role="user", content="Name a Linux shell command."),)),
    ]
    params = SamplingParams(temperature=0.0, max_new_tokens=8)
    fast = VLLMPolicy("smollm2-135m", dtype="float32", gpu_memory_utilization=0.3)
    reference = HFPolicy("smollm2-135m", dtype="float32", device="cuda")
    out = fast.generate(turns, params)
    assert "Paris" in out[0].text
    assert [g.prompt_tokens for g in out] == [
        g.prompt_tokens for g in reference.generate(turns, params)
    ]
