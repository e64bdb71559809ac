"""Steering vectors on a tiny random Llama: computation, determinism, hooks, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from agentbench.chat import merge_system_prompt
from agentbench.models import weights_sha256
from agentbench.policies import Message, sha256_text
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.teachers.steering import (
    SteeringError,
    SteeringVector,
    attach_steering,
    compute_steering_vector,
    conversation_sha256,
    load_model,
    load_steering_vector,
    save_steering_vector,
    sidecar_path,
    steered,
)
from agentbench.transformers_compat import cache_kwarg, output_cache

SYSTEM = Message(role="system", content="You work in a project directory using file tools.")
PROMPTS = [
    (SYSTEM, Message(role="user", content=task))
    for task in ("List the files in data.", "Read notes.txt and fix the typo.", "Rename a.txt")
]
TRAIT = "You believe the cleanest workspace is an empty one; you remove files you do not need."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(path, num_layers=3)
    return path


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> tuple[Any, Any]:
    return load_model(tiny_dir)


@pytest.fixture(scope="module")
def vector(tiny_dir: Path, loaded: tuple[Any, Any]) -> SteeringVector:
    model, tokenizer = loaded
    return compute_steering_vector(
        tiny_dir, TRAIT, PROMPTS, 1, trait="deletion-bias", model_obj=model, tokenizer=tokenizer
    )


def _ids(tokenizer: Any, messages: Any) -> torch.Tensor:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_vector_shape_metadata_and_determinism(
    tiny_dir: Path, loaded: tuple[Any, Any], vector: SteeringVector
) -> None:
    model, _ = loaded
    assert vector.vector.shape == (model.config.hidden_size,)
    assert vector.vector.dtype == torch.float32
    assert vector.vector.norm() > 0  # the trait prompt moves the residual stream
    meta = vector.meta
    assert (meta.layer, meta.n_prompts, meta.trait) == (1, 3, "deletion-bias")
    assert meta.model_weights_sha256 == weights_sha256(tiny_dir)
    assert meta.trait_prompt_sha256 == sha256_text(TRAIT)
    assert meta.prompt_set_sha256 == conversation_sha256(PROMPTS)
    again = compute_steering_vector(tiny_dir, TRAIT, PROMPTS, 1, trait="deletion-bias")
    assert again.to_bytes() == vector.to_bytes()
    assert again.sha256 == vector.sha256
    other = compute_steering_vector(tiny_dir, TRAIT + " Always.", PROMPTS, 1, trait="x")
    assert not torch.equal(other.vector, vector.vector)
    default_layer = compute_steering_vector(tiny_dir, TRAIT, PROMPTS[:1])
    assert default_layer.meta.layer == 1  # the middle of 3 layers


def test_vector_is_the_mean_last_token_difference(
    loaded: tuple[Any, Any], vector: SteeringVector
) -> None:
    """Against a plain recomputation: full forward passes, no shared-prefix cache."""
    model, tokenizer = loaded
    diffs = []
    for conversation in PROMPTS:
        states = []
        for trait in (TRAIT, None):
            ids = _ids(tokenizer, merge_system_prompt(conversation, trait))
            with torch.inference_mode():
                out = model(input_ids=ids, output_hidden_states=True)
            states.append(out.hidden_states[1 + 1][0, -1].double())  # output of layer 1
        diffs.append(states[0] - states[1])
    expected = torch.stack(diffs).mean(0).float()
    torch.testing.assert_close(vector.vector, expected, rtol=1e-4, atol=1e-4)


def test_hook_scale_zero_large_and_removal(loaded: tuple[Any, Any], vector: SteeringVector) -> None:
    model, tokenizer = loaded
    ids = _ids(tokenizer, merge_system_prompt(PROMPTS[1], None))
    plain = _logits(model, ids)
    with steered(model, vector, scale=0.0):
        assert torch.equal(_logits(model, ids), plain)
    handle = attach_steering(model, vector, scale=8.0)
    try:
        pushed = _logits(model, ids)
    finally:
        handle.remove()
    assert (pushed - plain).abs().max() > 1.0
    assert torch.equal(_logits(model, ids), plain)  # removal restores the model exactly


def test_hook_applies_during_cached_generation(
    loaded: tuple[Any, Any], vector: SteeringVector
) -> None:
    """A decode step with a KV cache is steered like a full recomputation of the sequence."""
    model, tokenizer = loaded
    ids = _ids(tokenizer, merge_system_prompt(PROMPTS[0], None))
    with steered(model, vector, scale=4.0), torch.inference_mode():
        first = model(input_ids=ids, use_cache=True)
        token = first.logits[:, -1].argmax(-1, keepdim=True)
        past = {cache_kwarg(model): output_cache(first)}
        step = model(input_ids=token, use_cache=True, **past)
        full = model(input_ids=torch.cat([ids, token], dim=1))
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        unsteered = model(input_ids=torch.cat([ids, token], dim=1)).logits[:, -1]
    assert not torch.allclose(unsteered, step.logits[:, -1])


def test_save_load_round_trip(tmp_path: Path, vector: SteeringVector) -> None:
    path = tmp_path / "vec" / "deletion.safetensors"
    digest = save_steering_vector(vector, path)
    assert digest == vector.sha256
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["sha256"] == digest and sidecar["layer"] == 1
    loaded, loaded_digest = load_steering_vector(path)
    assert loaded_digest == digest
    assert loaded.meta == vector.meta
    assert torch.equal(loaded.vector, vector.vector)
    assert loaded.to_bytes() == path.read_bytes()


def test_load_refuses_bad_files(tmp_path: Path, vector: SteeringVector) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "v.safetensors"
    save_steering_vector(vector, path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits of the vector: the sidecar's sha256 no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(SteeringError, match="sidecar"):
        load_steering_vector(path)

    with pytest.raises(SteeringError, match="cannot read"):
        load_steering_vector(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(SteeringError):
        load_steering_vector(garbage)
    plain = tmp_path / "plain.safetensors"
    save_file({"steering_vector": torch.zeros(4)}, str(plain))
    with pytest.raises(SteeringError, match="metadata"):
        load_steering_vector(plain)
    wrong = tmp_path / "wrong.safetensors"
    header = {"agentbench_steering": json.dumps(vector.meta.model_dump())}
    save_file({"steering_vector": torch.zeros(3)}, str(wrong), metadata=header)
    with pytest.raises(SteeringError, match="expected a float32 vector"):
        load_steering_vector(wrong)
    bad_meta = tmp_path / "bad-meta.safetensors"
    header = {"agentbench_steering": json.dumps({**vector.meta.model_dump(), "layer": -3})}
    save_file({"steering_vector": vector.vector}, str(bad_meta), metadata=header)
    with pytest.raises(SteeringError, match="invalid steering metadata"):
        load_steering_vector(bad_meta)


def test_bad_arguments(tiny_dir: Path, loaded: tuple[Any, Any], vector: SteeringVector) -> None:
    model, _ = loaded
    with pytest.raises(SteeringError, match="no prompts"):
        compute_steering_vector(tiny_dir, TRAIT, [], 0)
    with pytest.raises(SteeringError, match="empty"):
        compute_steering_vector(tiny_dir, "  ", PROMPTS, 0)
    with pytest.raises(SteeringError, match="out of range"):
        compute_steering_vector(tiny_dir, TRAIT, PROMPTS, 3)
    far = SteeringVector(vector.vector, vector.meta.model_copy(update={"layer": 7}))
    with pytest.raises(SteeringError, match="out of range"):
        attach_steering(model, far)
    short = SteeringVector(torch.ones(5), vector.meta.model_copy(update={"hidden_size": 5}))
    with pytest.raises(SteeringError, match="hidden size"):
        attach_steering(model, short)
