"""VLLMPolicy: runs only where vLLM and a CUDA GPU exist (`scripts/gpu-check.sh`); on CPU the
GPU tests skip with that reason and the clear errors are checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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


GPU = pytest.mark.skipif(
    not (HAS_VLLM and has_cuda()),
    reason="needs vllm and a CUDA GPU (none here; scripts/gpu-check.sh runs these on one)",
)
MODEL = "smollm2-135m"


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: the missing-vllm error cannot happen")
def test_missing_vllm_is_a_clear_error() -> None:
    from agentbench.policies.vllm import VLLMPolicy

    with pytest.raises(ModelError, match=r"agentbench\[vllm\]"):
        VLLMPolicy("tiny-random-llama")


def test_a_steering_vector_is_refused_with_the_reason() -> None:
    from agentbench.policies.vllm import VLLMPolicy

    with pytest.raises(ModelError, match=r"cannot apply a steering vector.*hf backend"):
        VLLMPolicy("tiny-random-llama", steering=object())


def _turns() -> list[Turn]:
    return [
        Turn("a", "x", 0, (Message(role="user", content="What is the capital of France?"),)),
        Turn("b", "x", 0, (Message(role="user", content="Name a Linux shell command."),)),
    ]


@pytest.fixture(scope="module")
def fast() -> object:  # pragma: no cover - GPU only
    from agentbench.policies.vllm import VLLMPolicy

    policy = VLLMPolicy(MODEL, dtype="float32", gpu_memory_utilization=0.3)
    yield policy
    policy.close()


@pytest.mark.gpu
@GPU
def test_vllm_greedy_matches_hf(fast: object) -> None:  # pragma: no cover - GPU only
    from agentbench.policies.hf import HFPolicy

    params = SamplingParams(temperature=0.0, max_new_tokens=8)
    reference = HFPolicy(MODEL, dtype="float32", device="cuda")
    out = fast.generate(_turns(), params)  # type: ignore[attr-defined]
    ref = reference.generate(_turns(), params)
    assert "Paris" in out[0].text
    assert [g.prompt_tokens for g in out] == [g.prompt_tokens for g in ref]
    assert [g.text for g in out] == [g.text for g in ref]


@pytest.mark.gpu
@GPU
def test_token_ids_and_logprobs_are_kept(fast: object) -> None:  # pragma: no cover - GPU only
    params = SamplingParams(temperature=1.0, max_new_tokens=12, seed=3)
    for g in fast.generate(_turns(), params):  # type: ignore[attr-defined]
        assert g.completion_tokens == len(g.token_ids) == len(g.logprobs) > 0
        assert all(lp <= 0.0 for lp in g.logprobs)
        tokenizer = fast.tokenizer  # type: ignore[attr-defined]
        assert tokenizer.decode(list(g.token_ids), skip_special_tokens=True).strip() == (
            g.text.strip()
        )


@pytest.mark.gpu
@GPU
def test_per_turn_seeds_do_not_depend_on_the_batch(fast: object) -> None:  # pragma: no cover
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=7)
    together = fast.generate(_turns(), params)  # type: ignore[attr-defined]
    alone = fast.generate(_turns()[1:], params)  # type: ignore[attr-defined]
    assert together[1].token_ids == alone[0].token_ids


@pytest.mark.gpu
@GPU
def test_stop_strings_end_the_action(fast: object) -> None:  # pragma: no cover - GPU only
    turn = Turn("c", "x", 0, (Message(role="user", content="Count: 1, 2, 3, 4, 5, 6, 7"),))
    params = SamplingParams(temperature=0.0, max_new_tokens=32, stop=(",",))
    (g,) = fast.generate([turn], params)  # type: ignore[attr-defined]
    assert "," not in g.text and g.finish_reason == "stop"


@pytest.mark.gpu
@GPU
def test_constrained_filetool_actions_follow_the_schema(fast: object) -> None:  # pragma: no cover
    from agentbench.envs import FILETOOL_ID
    from tests.test_constrained import well_formed

    turns = [Turn(f"e{i}", FILETOOL_ID, 0, (Message(role="system", content="Use the tools."),
                  Message(role="user", content="Tidy the workspace.")))
             for i in range(4)]  # fmt: skip
    params = SamplingParams(temperature=1.0, max_new_tokens=96, seed=0, constrained=True)
    out = fast.generate(turns, params)  # type: ignore[attr-defined]
    ended = [g.text for g in out if g.finish_reason == "stop"]
    assert ended and all(map(well_formed, ended)), ended
    assert all(json.loads(t) for t in ended)


@pytest.mark.gpu
@GPU
def test_a_lora_adapter_is_served_through_lora_request(tmp_path: Path) -> None:  # pragma: no cover
    """A LoRA with non-zero B changes the greedy output; its hash is in the provenance."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from agentbench.models import resolve_model
    from agentbench.policies.vllm import VLLMPolicy

    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL))
    peft = get_peft_model(base, LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                   "o_proj"]))  # fmt: skip
    torch.manual_seed(0)
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft.save_pretrained(tmp_path / "adapter")
    policy = VLLMPolicy(MODEL, dtype="float32", adapter=tmp_path / "adapter",
                        gpu_memory_utilization=0.3)  # fmt: skip
    try:
        params = SamplingParams(temperature=0.0, max_new_tokens=8)
        assert policy.adapter_sha256
        assert policy.provenance(params).adapter_sha256 == policy.adapter_sha256
        assert policy.generate(_turns(), params)[0].text  # it runs with the adapter
    finally:
        policy.close()
