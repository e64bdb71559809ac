"""The vLLM backend (GPU): offline batched generation with `vllm.LLM`.

A thin counterpart of `HFPolicy` for fast rollouts on a GPU: every turn of a batch is one
request to `LLM.generate`, which schedules them with continuous batching and paged attention.
Prompts are rendered with the same chat template and trait-prompt merge as `HFPolicy`, so both
backends see identical prompt text. Each turn's `SamplingParams.seed` is its `turn_seed`, so
sampling is reproducible per turn. `adapter` is a PEFT LoRA directory served through vLLM's
LoRA support. A prompt that leaves no room in `max_context` gets finish_reason "context" (as in
`HFPolicy`; vLLM would otherwise reject the whole batch).

Needs the `vllm` extra and a CUDA GPU; it is not exercised by the CPU test suite.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentbench.models import ModelError, model_weights_sha256, resolve_model, weights_sha256
from agentbench.policies.base import (
    Generation,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
    context_full,
    sha256_text,
    turn_seed,
)
from agentbench.policies.hf import merge_system_prompt


class VLLMPolicy(Policy):
    """A model served in-process by vLLM. Raises `ModelError` when vLLM or the model cannot
    load."""

    backend = "vllm"

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "auto",
        adapter: str | Path | None = None,
        system_prompt: str | None = None,
        max_context: int | None = None,
        gpu_memory_utilization: float = 0.85,
    ) -> None:
        try:
            vllm: Any = importlib.import_module("vllm")
        except ImportError as exc:
            raise ModelError(
                f"the vllm backend needs `pip install agentbench[vllm]`: {exc}"
            ) from exc
        self._vllm = vllm
        self.model_name = str(model)
        self.path = resolve_model(model)
        self.system_prompt = system_prompt
        self.weights_sha256 = model_weights_sha256(self.path)
        self.adapter_sha256: str | None = None
        self._lora: Any = None
        kwargs: dict[str, Any] = {
            "model": str(self.path),
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        if max_context is not None:
            kwargs["max_model_len"] = max_context
        if adapter is not None:
            lora_request = importlib.import_module("vllm.lora.request").LoRARequest
            self._lora = lora_request("adapter", 1, str(adapter))
            self.adapter_sha256 = weights_sha256(adapter)
            kwargs["enable_lora"] = True
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:
            raise ModelError(f"vLLM cannot load {self.path}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"the tokenizer of {self.path} has no chat template")
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        results: list[Generation | None] = [None] * len(turns)
        prompts: list[dict[str, list[int]]] = []
        sampling: list[Any] = []
        indices: list[int] = []
        for i, turn in enumerate(turns):
            try:
                chat = merge_system_prompt(turn.messages, self.system_prompt)
                text = self.tokenizer.apply_chat_template(
                    chat, tokenize=False, add_generation_prompt=True
                )
                ids = self.tokenizer(text, add_special_tokens=False).input_ids
            except Exception as exc:
                results[i] = _error(f"cannot render the conversation: {exc}")
                continue
            room = self.max_context - len(ids)
            if room < 1:
                results[i] = context_full(len(ids))
                continue
            prompts.append({"prompt_token_ids": ids})
            sampling.append(
                self._vllm.SamplingParams(
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=min(params.max_new_tokens, room),
                    seed=turn_seed(params.seed, turn.episode_id, turn.step),
                    stop=list(params.stop) or None,
                )
            )
            indices.append(i)
        if prompts:
            outputs = self.llm.generate(prompts, sampling, lora_request=self._lora, use_tqdm=False)
            for i, output in zip(indices, outputs, strict=True):
                completion = output.outputs[0]
                results[i] = Generation(
                    text=completion.text,
                    prompt_tokens=len(output.prompt_token_ids),
                    completion_tokens=len(completion.token_ids),
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                )
        return [r if r is not None else _error("no output") for r in results]

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return PolicyProvenance(
            backend=self.backend,
            model=self.model_name,
            weights_sha256=self.weights_sha256,
            adapter_sha256=self.adapter_sha256,
            system_prompt_sha256=(
                sha256_text(self.system_prompt) if self.system_prompt is not None else None
            ),
            sampling=params,
            extra={
                "path": str(self.path),
                "vllm": str(getattr(self._vllm, "__version__", "?")),
                "max_context": self.max_context,
            },
        )

    def close(self) -> None:
        self.__dict__.pop("llm", None)


def _error(message: str, prompt_tokens: int = 0) -> Generation:
    return Generation(text="", prompt_tokens=prompt_tokens, finish_reason="error", error=message)
