"""The real SmolLM2-135M-Instruct through HFPolicy (builds the cached conversion if missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from agentbench.models import ModelError, is_built, weights_sha256
from agentbench.policies import Message, SamplingParams, Turn
from agentbench.policies.hf import HFPolicy
from agentbench.recipes.smollm2 import gguf_path

QUESTION = "What is the capital of France?"


def test_smollm2_greedy_batch() -> None:
    try:
        gguf_path()
    except ModelError as exc:
        pytest.skip(str(exc))
    if not is_built("smollm2-135m"):
        pytest.skip("smollm2-135m is not built: run `agentbench models build smollm2-135m`")
    policy = HFPolicy("smollm2-135m", device="cpu")
    turns = [
        Turn("a", "agentbench/Bash-v0", 0, (Message(role="user", content=QUESTION),)),
        Turn(
            "b",
            "agentbench/Bash-v0",
            0,
            (
                Message(role="system", content="You are a shell agent. Reply with one command."),
                Message(role="user", content="List all files in /srv/data."),
            ),
        ),
    ]
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    capital, command = policy.generate(turns, params)
    assert "Paris" in capital.text
    assert capital.finish_reason == "stop" and 0 < capital.completion_tokens <= 12
    assert command.finish_reason in ("stop", "length") and 0 < command.completion_tokens <= 12
    assert command.text.strip() and "<|im_" not in command.text
    for turn, generation in zip(turns, (capital, command), strict=True):
        prompt = policy.tokenizer(policy.render(turn.messages), add_special_tokens=False)
        assert generation.prompt_tokens == len(prompt.input_ids)
    assert policy.provenance(params).weights_sha256 == weights_sha256(policy.path)


@pytest.mark.slow
def test_smollm2_conversion_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full GGUF -> safetensors build (~60 s); the build itself checks identical logits."""
    try:
        gguf_path()
    except ModelError as exc:
        pytest.skip(str(exc))
    from agentbench.models import MARKER, build_model

    monkeypatch.setenv("AGENTBENCH_CACHE", str(tmp_path))
    path = build_model("smollm2-135m")
    assert (path / MARKER).is_file()
    assert sorted(p.name for p in path.glob("*.safetensors")) == ["model.safetensors"]
