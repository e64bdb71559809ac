"""The vLLM backend (GPU): offline batched generation with `vllm.LLM`.

A counterpart of `HFPolicy` for fast rollouts on a GPU. Each rollout step is one batched
`LLM.chat` call over every live episode's conversation (vLLM schedules them with continuous
batching and paged attention):

- the chat template and the trait-prompt merge are `HFPolicy`'s (`merge_system_prompt`), so
  both backends see identical prompt text;
- every turn's `SamplingParams.seed` is its `turn_seed` (reproducible per turn, independent of
  what else is in the batch), with the caller's stop strings;
- `adapter`: a PEFT LoRA directory served through vLLM's LoRA support (`LoRARequest`);
- `constrained`: actions decoded inside the environment's JSON schema (FileTool's tool calls)
  through vLLM's structured outputs (`StructuredOutputsParams(json=...)`, vLLM >= 0.12);
  free-text environments (Bash) are unaffected, as with `HFPolicy`;
- the sampled token ids and their log-probabilities are kept (`Generation.token_ids`,
  `.logprobs`; the trajectory's step records), so logit distillation never re-tokenizes;
- a prompt that leaves no room in `max_context` gets finish_reason "context" (as in
  `HFPolicy`; vLLM would otherwise reject the whole batch);
- steering vectors are refused: vLLM exposes no hook on the residual stream.

Needs the `vllm` extra and a CUDA GPU; its tests skip elsewhere with that reason
(`tests/test_models_vllm.py`; `scripts/gpu-check.sh` runs them on a GPU machine).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentbench.chat import merge_system_prompt
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

STEERING_REFUSED = (
    "the vllm backend cannot apply a steering vector (vLLM has no hook on the residual "
    "stream); run steering teachers with the hf backend"
)


class VLLMPolicy(Policy):
    """A model served in-process by vLLM. Raises `ModelError` when vLLM or the model cannot
    load, or when a steering vector is asked for."""

    backend = "vllm"
    supports_constrained = True

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "auto",
        adapter: str | Path | None = None,
        system_prompt: str | None = None,
        max_context: int | None = None,
        gpu_memory_utilization: float = 0.85,
        steering: Any = None,
        max_lora_rank: int = 16,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if steering is not None:
            raise ModelError(STEERING_REFUSED)
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
            **(llm_kwargs or {}),
        }
        if max_context is not None:
            kwargs["max_model_len"] = max_context
        if adapter is not None:
            lora_request = importlib.import_module("vllm.lora.request").LoRARequest
            self._lora = lora_request("adapter", 1, str(adapter))
            self.adapter_sha256 = weights_sha256(adapter)
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:
            raise ModelError(f"vLLM cannot load {self.path}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"the tokenizer of {self.path} has no chat template")
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)
        self._schemas: dict[str, Any] = {}

    def _structured(self, env_id: str) -> Any:
        """The structured-outputs constraint of an environment's actions (None: free text)."""
        if env_id not in self._schemas:
            from agentbench.envs import action_schema

            schema = action_schema(env_id)
            params = importlib.import_module("vllm.sampling_params").StructuredOutputsParams
            self._schemas[env_id] = None if schema is None else params(json=schema)
        return self._schemas[env_id]

    def sampling_params(self, turn: Turn, params: SamplingParams, room: int) -> Any:
        """vLLM's sampling parameters of one turn (its own seed, stops, constraint)."""
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": min(params.max_new_tokens, room),
            "seed": turn_seed(params.seed, turn.episode_id, turn.step),
            "stop": list(params.stop) or None,
            "logprobs": 0,  # the sampled token's log-probability only
        }
        if params.constrained:
            structured = self._structured(turn.env_id)
            if structured is not None:
                kwargs["structured_outputs"] = structured
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        results: list[Generation | None] = [None] * len(turns)
        conversations: list[list[dict[str, str]]] = []
        sampling: list[Any] = []
        indices: list[int] = []
        for i, turn in enumerate(turns):
            try:
                chat = merge_system_prompt(turn.messages, self.system_prompt)
                ids = self.tokenizer.apply_chat_template(
                    chat, tokenize=True, add_generation_prompt=True
                )
            except Exception as exc:
                results[i] = _error(f"cannot render the conversation: {exc}")
                continue
            room = self.max_context - len(ids)
            if room < 1:
                results[i] = context_full(len(ids))
                continue
            conversations.append(list(chat))
            sampling.append(self.sampling_params(turn, params, room))
            indices.append(i)
        if conversations:
            try:
                outputs = self.llm.chat(
                    conversations, sampling_params=sampling, lora_request=self._lora,
                    use_tqdm=False, add_generation_prompt=True,
                )  # fmt: skip
            except Exception as exc:  # the whole batch failed: every turn is an infra failure
                for i in indices:
                    results[i] = _error(f"vLLM failed: {exc}")
                outputs = []
            for i, output in zip(indices, outputs, strict=False):
                results[i] = _generation(output)
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


def _generation(output: Any) -> Generation:
    """A vLLM `RequestOutput` as a `Generation` (token ids and their log-probabilities kept)."""
    completion = output.outputs[0]
    token_ids = tuple(int(t) for t in completion.token_ids)
    logprobs: tuple[float, ...] = ()
    if completion.logprobs:  # one {token id: Logprob} per position, the sampled id among them
        logprobs = tuple(
            float(step[t].logprob) for t, step in zip(token_ids, completion.logprobs, strict=True)
        )
    return Generation(
        text=completion.text,
        prompt_tokens=len(output.prompt_token_ids or ()),
        completion_tokens=len(token_ids),
        finish_reason="length" if completion.finish_reason == "length" else "stop",
        token_ids=token_ids,
        logprobs=logprobs,
    )


def _error(message: str, prompt_tokens: int = 0) -> Generation:
    return Generation(text="", prompt_tokens=prompt_tokens, finish_reason="error", error=message)
