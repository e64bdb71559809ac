"""Steering vectors: a trait as a direction in one decoder layer's residual stream.

`compute_steering_vector` runs the base model on the same conversations twice, once as they
are and once with the trait system prompt merged in (exactly as a prompt-induced teacher sees
them), and records the hidden state that decoder layer `layer` outputs at the LAST token of the
chat template rendered with ``add_generation_prompt=True`` (the assistant tag, where the model
is about to answer). The vector is ``mean(with trait) - mean(without)``.

At inference `attach_steering` registers a forward hook on that layer that adds
``scale * vector`` to its output at every position, prompt and generated tokens alike; removing
the hook restores the model exactly (the weights are never touched).

A vector is stored as one safetensors file: the float32 tensor ``steering_vector`` and, in the
header, the JSON metadata (`SteeringMeta`: layer, default scale, model weights hash, trait,
prompt set hash, number of prompts). Its identity is the sha256 of the file bytes, which are
deterministic (same model, prompts, layer and trait give the same bytes on the same torch
build). A JSON sidecar (``<file>.json``) repeats the metadata and the sha256 for people; when
present, `load_steering_vector` checks the file against it.

Limits: causal LMs whose decoder layers are reachable as ``model.get_decoder().layers`` (Llama,
Qwen, Mistral, SmolLM2 ...). Vector files over 64 MiB are refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbench.chat import Message, merge_system_prompt
from agentbench.errors import ConfigError
from agentbench.models import ModelError, model_weights_sha256, resolve_model
from agentbench.policies.base import sha256_text
from agentbench.transformers_compat import cache_kwarg

if TYPE_CHECKING:
    import torch
    from torch.utils.hooks import RemovableHandle

TENSOR_NAME = "steering_vector"
META_KEY = "agentbench_steering"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 64 << 20


class SteeringError(ConfigError, ValueError):
    """Raised when a steering vector cannot be computed, loaded or applied (bad layer, bad
    file, hash or model mismatch)."""


class SteeringMeta(BaseModel):
    """What a steering vector is and how it was made (stored in the file header)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    model: str
    """The base model as given (registry name, path or hub id)."""
    model_weights_sha256: str
    layer: int = Field(ge=0)
    """Index into the model's decoder layers; the vector is added to this layer's output."""
    hidden_size: int = Field(ge=1)
    scale: float = 1.0
    """Default multiplier at inference (a teacher config may override it)."""
    trait: str
    trait_prompt_sha256: str
    prompt_set_sha256: str
    """sha256 of the canonical JSON of the conversations (without the trait prompt)."""
    n_prompts: int = Field(ge=1)
    position: str = "last token of the chat template with add_generation_prompt"
    norm: float
    """L2 norm of the (unscaled) vector."""


@dataclass(frozen=True)
class SteeringVector:
    """A float32 vector of the model's hidden size plus its metadata."""

    vector: torch.Tensor
    meta: SteeringMeta

    def to_bytes(self) -> bytes:
        """The safetensors serialization (deterministic for equal vectors and metadata)."""
        from safetensors.torch import save

        # One metadata key holding canonical JSON: the header's key order cannot vary.
        header = {META_KEY: json.dumps(self.meta.model_dump(), sort_keys=True)}
        tensor = self.vector.detach().to("cpu", dtype=_float32()).contiguous()
        return bytes(save({TENSOR_NAME: tensor}, metadata=header))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def zeros_like(self) -> SteeringVector:
        """The control vector: zero, at the same layer, with the same metadata."""
        import torch

        return SteeringVector(torch.zeros_like(self.vector), self.meta)


def conversation_sha256(conversations: Sequence[Sequence[Message]]) -> str:
    data = [[m.model_dump() for m in conv] for conv in conversations]
    return sha256_text(json.dumps(data, sort_keys=True, ensure_ascii=False))


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder layers. Raises SteeringError for unknown architectures."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not hasattr(layers, "__len__"):
        raise SteeringError(
            f"cannot find the decoder layers of {type(model).__name__} (expected "
            "model.get_decoder().layers)"
        )
    return layers


def _check_layer(model: Any, layer: int) -> Any:
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise SteeringError(f"layer {layer} is out of range: the model has {len(layers)} layers")
    return layers[layer]


class _Captured(Exception):
    """Raised by the capture hook: the later layers and the LM head are not needed."""


def compute_steering_vector(
    model: str | Path,
    trait_prompt: str,
    prompts: Sequence[Sequence[Message]],
    layer: int | None = None,
    *,
    trait: str = "custom",
    scale: float = 1.0,
    device: str = "cpu",
    model_obj: Any = None,
    tokenizer: Any = None,
) -> SteeringVector:
    """mean(last-token hidden state with the trait prompt) - mean(without), at `layer`.

    `prompts` are conversations as a policy sees them (e.g. the environment's system message
    and a task instruction); the trait prompt is merged in with `merge_system_prompt`, as a
    prompt-induced teacher does. `layer` defaults to the middle layer. Pass `model_obj` and
    `tokenizer` to reuse a loaded model (float32 recommended: the vector is a small
    difference of large activations).

    Prompts are run one at a time (no padding), so the result does not depend on batching;
    the prefix they share is run once and its KV cache reused (see `_mean_last_state`).
    Raises SteeringError for no prompts, an empty trait prompt or a bad layer, and ModelError
    when the model cannot be loaded.
    """
    import torch

    if not prompts:
        raise SteeringError("no prompts to compute a steering vector from")
    if not trait_prompt.strip():
        raise SteeringError("the trait prompt is empty")
    path = resolve_model(model)
    if model_obj is None or tokenizer is None:
        model_obj, tokenizer = load_model(path, device=device)
    if layer is None:
        layer = len(decoder_layers(model_obj)) // 2
    target = _check_layer(model_obj, layer)

    def render(messages: list[dict[str, str]]) -> list[int]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):
            raise SteeringError("the chat template did not render to text")
        return list(tokenizer(text, add_special_tokens=False).input_ids)

    plain = [render(merge_system_prompt(c, None)) for c in prompts]
    with_trait = [render(merge_system_prompt(c, trait_prompt)) for c in prompts]
    mean_without = _mean_last_state(model_obj, target, plain)
    mean_with = _mean_last_state(model_obj, target, with_trait)
    vector = (mean_with - mean_without).to(torch.float32)
    meta = SteeringMeta(
        model=str(model),
        model_weights_sha256=model_weights_sha256(path),
        layer=layer,
        hidden_size=int(vector.numel()),
        scale=scale,
        trait=trait,
        trait_prompt_sha256=sha256_text(trait_prompt),
        prompt_set_sha256=conversation_sha256(prompts),
        n_prompts=len(prompts),
        norm=float(vector.double().norm()),
    )
    return SteeringVector(vector, meta)


def _mean_last_state(model: Any, target: Any, prompts: list[list[int]]) -> torch.Tensor:
    """Mean over prompts of `target`'s output at each prompt's last token (float64, CPU).

    The prompts of a set share a long prefix (chat header, trait prompt, the env's system
    prompt), so it is run once and its KV cache reused: on a CPU this makes a set of task
    prompts several times cheaper. Every forward pass stops at `target`: later layers and
    the LM head are not needed.
    """
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def capture(_module: Any, _args: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        captured.append(hidden[0, -1, :].detach().to("cpu", dtype=torch.float64))
        raise _Captured

    def run(ids: list[int], cache: Any) -> torch.Tensor:
        try:
            model(
                input_ids=torch.tensor([ids], device=device),
                use_cache=cache is not None,
                **{cache_kwarg(model): cache},
            )
        except _Captured:
            return captured.pop()
        raise SteeringError("the steering layer was not run")

    shared = min(len(p) for p in prompts) - 1  # every prompt keeps at least one own token
    for i, token in enumerate(prompts[0][:shared]):
        if any(p[i] != token for p in prompts):
            shared = i
            break
    handle = target.register_forward_hook(capture)
    try:
        with torch.inference_mode():
            prefix = None
            if shared > 0:
                prefix = DynamicCache(config=model.config)
                run(prompts[0][:shared], prefix)
            total = torch.zeros(0, dtype=torch.float64)
            for ids in prompts:
                cache = copy.deepcopy(prefix) if prefix is not None else None
                state = run(ids[shared:], cache)
                total = state if total.numel() == 0 else total + state
    finally:
        handle.remove()
    return total / len(prompts)


def load_model(path: Path, *, device: str = "cpu") -> tuple[Any, Any]:
    """A float32 causal LM (eval mode) and its tokenizer. Raises ModelError."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        lm: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"cannot load the model in {path}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"the tokenizer of {path} has no chat template")
    return lm.to(device).eval(), tokenizer


# -- files -----------------------------------------------------------------------------------


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_steering_vector(steering: SteeringVector, path: str | Path) -> str:
    """Write the vector file and its JSON sidecar; returns the file's sha256."""
    target = Path(path)
    data = steering.to_bytes()
    digest = hashlib.sha256(data).hexdigest()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    sidecar = {"file": target.name, "sha256": digest, **steering.meta.model_dump()}
    sidecar_path(target).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return digest


def load_steering_vector(path: str | Path) -> tuple[SteeringVector, str]:
    """The vector in a file and the file's sha256.

    Raises SteeringError for a missing, oversized or malformed file, metadata that does not
    validate, a tensor of the wrong shape or dtype, or a sidecar whose sha256 differs.
    """
    import torch
    from safetensors.torch import load

    source = Path(path)
    try:
        size = source.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SteeringError(f"{source} is {size} bytes; a steering vector file is far smaller")
        data = source.read_bytes()
    except OSError as exc:
        raise SteeringError(f"cannot read the steering vector {source}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    meta = _read_meta(data, source)
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises its own error type for any bad header
        raise SteeringError(f"{source} is not a valid safetensors file: {exc}") from None
    if set(tensors) != {TENSOR_NAME}:
        raise SteeringError(f"{source} must hold exactly one tensor {TENSOR_NAME!r}")
    vector = tensors[TENSOR_NAME]
    if vector.dtype != torch.float32 or vector.shape != (meta.hidden_size,):
        raise SteeringError(
            f"{source}: expected a float32 vector of size {meta.hidden_size}, got "
            f"{vector.dtype} {tuple(vector.shape)}"
        )
    if not torch.isfinite(vector).all():
        raise SteeringError(f"{source}: the vector has non-finite values")
    sidecar = sidecar_path(source)
    if sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text()).get("sha256")
        except (OSError, ValueError, AttributeError) as exc:
            raise SteeringError(f"unreadable sidecar {sidecar}: {exc}") from None
        if recorded != digest:
            raise SteeringError(
                f"{source} does not match its sidecar: sha256 {digest} != {recorded}"
            )
    return SteeringVector(vector, meta), digest


def _read_meta(data: bytes, source: Path) -> SteeringMeta:
    # safetensors' Python API reads metadata only from files via safe_open; the header is
    # 8 bytes of little-endian length then JSON, so read it from the bytes we hashed.
    if len(data) < 8:
        raise SteeringError(f"{source} is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise SteeringError(f"{source} has a truncated safetensors header")
    try:
        header = json.loads(data[8 : 8 + length])
        raw = header["__metadata__"][META_KEY]
        return SteeringMeta.model_validate_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            raise SteeringError(f"{source} has invalid steering metadata:\n{exc}") from None
        raise SteeringError(f"{source} has no agentbench steering metadata ({exc})") from None


# -- inference ---------------------------------------------------------------------------------


def attach_steering(
    model: Any, steering: SteeringVector, scale: float | None = None
) -> RemovableHandle:
    """Add `scale * vector` to the output of decoder layer `steering.meta.layer` at every
    position. Returns the hook handle; `handle.remove()` restores the model exactly.

    Raises SteeringError when the layer does not exist or the hidden size differs.
    """
    target = _check_layer(model, steering.meta.layer)
    parameter = next(model.parameters())
    hidden = getattr(model.config, "hidden_size", None)
    if hidden is not None and hidden != steering.vector.numel():
        raise SteeringError(
            f"the vector has size {steering.vector.numel()} but the model's hidden size is {hidden}"
        )
    factor = steering.meta.scale if scale is None else scale
    delta = (steering.vector.double() * factor).to(parameter.device, dtype=parameter.dtype)

    def add(_module: Any, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + delta, *output[1:])
        return output + delta

    return target.register_forward_hook(add)


@contextmanager
def steered(model: Any, steering: SteeringVector, scale: float | None = None) -> Iterator[None]:
    """`attach_steering` for the duration of a `with` block."""
    handle = attach_steering(model, steering, scale)
    try:
        yield
    finally:
        handle.remove()


def _float32() -> torch.dtype:
    import torch

    return torch.float32


def task_conversations(
    family: str, env_id: str, *, split: str = "train", n: int = 64
) -> list[tuple[Message, ...]]:
    """The opening conversations of `n` task instances: the environment's system message and
    the task instruction, as the rollout engine sends them (the usual steering prompt set).

    Raises ValueError for an unknown split and SteeringError when the family has no instance
    in `split` that supports `env_id`.
    """
    from agentbench.envs import make
    from agentbench.tasks import iter_instances

    env = make(env_id)  # builds no sandbox: that happens on reset
    try:
        system = str(env.unwrapped.system_prompt)  # type: ignore[attr-defined]
    finally:
        env.close()
    tasks = (t for t in iter_instances(family, split) if not t.env_ids or env_id in t.env_ids)
    conversations: list[tuple[Message, ...]] = [
        (Message(role="system", content=system), Message(role="user", content=task.instruction))
        for task in islice(tasks, n)
    ]
    if not conversations:
        raise SteeringError(f"family {family!r} has no {split} instances for {env_id}")
    return conversations
