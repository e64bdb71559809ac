"""Harness rollouts with `VLLMPolicy` against vLLM's own `LLM.chat` on the same prompts (GPU).

The harness runs `run_rollouts(VLLMPolicy(model), jobs, parallel=B)` on real task instances
in real sandboxes; a recording wrapper keeps every batch of conversations the engine passed
to the policy. The baseline replays exactly those batches through the same `vllm.LLM`'s
`chat` (same sampling parameters, per-turn seeds), without the harness. Headline: harness
end-to-end tokens/s (sandboxes and env steps included) over replay tokens/s; target
`TARGET` (0.8). Run by `scripts/gpu-check.sh`; needs vLLM and a CUDA GPU.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentbench.policies.base import (
    Generation,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
)

TARGET = 0.8


class _Recording(Policy):
    """Passes calls through to `inner` (a `VLLMPolicy`) and keeps each batch of turns."""

    backend = "vllm"
    supports_constrained = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[Turn]] = []

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        self.calls.append(list(turns))
        return list(self.inner.generate(turns, params))

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return PolicyProvenance.model_validate(self.inner.provenance(params).model_dump())


def run_vllm_bench(
    model: str, *, episodes: int = 64, batch_size: int = 64, max_new_tokens: int = 96,
    max_steps: int = 4, family: str = "benign", env_id: str = "agentbench/FileTool-v0",
    sandbox: str = "bwrap",
) -> dict[str, Any]:  # fmt: skip
    """The figures as a dict (also what `scripts/gpu-check.sh` writes as JSON)."""
    from agentbench.chat import merge_system_prompt
    from agentbench.experiments.stages import instances_for
    from agentbench.policies.vllm import VLLMPolicy
    from agentbench.rollouts import make_jobs, run_rollouts

    policy = VLLMPolicy(model)
    recorder = _Recording(policy)
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens, seed=0)
    jobs = make_jobs(instances_for(family, "train", episodes, env_id), [env_id], 1)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = run_rollouts(recorder, jobs, out_path=Path(tmp) / "t.jsonl",
                               parallel=batch_size, sandbox=sandbox, params=params,
                               max_steps=max_steps, resume=False)  # fmt: skip
        harness_s = time.perf_counter() - began
    harness_tokens = summary.completion_tokens
    replay_tokens, began = 0, time.perf_counter()
    for turns in recorder.calls:
        chats = [list(merge_system_prompt(t.messages, policy.system_prompt)) for t in turns]
        sampling = [policy.sampling_params(t, params, max_new_tokens) for t in turns]
        outputs = policy.llm.chat(chats, sampling_params=sampling, use_tqdm=False)
        replay_tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    replay_s = time.perf_counter() - began
    harness_rate, replay_rate = harness_tokens / harness_s, replay_tokens / replay_s
    return {
        "model": model, "env": env_id, "episodes": len(jobs), "batch_size": batch_size,
        "max_new_tokens": max_new_tokens, "max_steps": max_steps, "calls": len(recorder.calls),
        "harness_tokens": harness_tokens, "harness_s": round(harness_s, 2),
        "harness_tokens_per_s": round(harness_rate, 1), "replay_tokens": replay_tokens,
        "replay_s": round(replay_s, 2), "replay_tokens_per_s": round(replay_rate, 1),
        "ratio": round(harness_rate / replay_rate, 3), "target": TARGET,
    }  # fmt: skip


def main() -> None:  # pragma: no cover - GPU only
    """`python -m agentbench.bench.vllm MODEL [OUT.json]`."""
    import sys

    figures = run_vllm_bench(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m")
    text = json.dumps(figures, indent=2)
    print(text)
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(text + "\n")
    if figures["ratio"] < TARGET:
        raise SystemExit(f"harness/vLLM ratio {figures['ratio']} is under the target {TARGET}")


if __name__ == "__main__":  # pragma: no cover
    main()
