"""The rollout throughput benchmark end to end: a tiny random Llama, real bwrap sandboxes.

Timings are not asserted (a shared CI machine); the counts must agree between the harness and
the baselines that replay its work, and every rate must be a real positive number.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import require_backend

pytest.importorskip("transformers")

from rich.console import Console

from agentbench.bench.rollouts import render, run_rollout_bench
from agentbench.recipes.tiny import save_tiny_llama

pytestmark = pytest.mark.bwrap


def test_bench_runs_end_to_end_with_consistent_counts(tmp_path: Path) -> None:
    require_backend("bwrap")
    model = tmp_path / "tiny"
    save_tiny_llama(model, max_position_embeddings=4096)  # room for the system prompts
    messages: list[str] = []
    # 3 episodes with batch 2: a refilled slot mixes first and later steps in one call.
    result = run_rollout_bench(
        str(model), batch_size=2, episodes=3, max_new_tokens=6, max_steps=2,
        progress=messages.append,
    )  # fmt: skip
    h = result.harness
    assert (result.episodes, h.episodes, h.infra_failures) == (3, 3, 0)
    assert messages and result.batch_size == 2
    # The replay ran exactly the harness's calls and sequences.
    assert h.steps == h.generate_phase.sequences == result.raw_replay.sequences
    assert h.generate_phase.calls == result.raw_replay.calls >= 3
    assert h.generate_phase.prompt_tokens == result.raw_replay.prompt_tokens
    assert h.end_to_end.completion_tokens == h.generate_phase.completion_tokens
    # First steps: one per episode, in ceil(3 / 2) batches, identical prompts on both sides.
    for t in (result.first_step_raw, result.first_step_policy):
        assert (t.sequences, t.calls) == (3, 2)
    assert result.first_step_raw.prompt_tokens == result.first_step_policy.prompt_tokens
    assert 0 < result.first_step_policy.completion_tokens <= 3 * 6
    for t in (h.end_to_end, h.generate_phase, result.raw_replay, result.first_step_raw,
              result.first_step_policy):  # fmt: skip
        assert t.completion_tokens > 0 and t.seconds > 0 and t.tokens_per_s > 0
    assert 0 < h.env_step_share < 1 and h.wall_s >= h.generate_s
    assert min(result.harness_vs_raw, result.policy_vs_raw, result.harness_generate_vs_raw) > 0

    out = io.StringIO()
    Console(file=out, width=200).print(render(result))
    text = out.getvalue()
    assert "raw model.generate, replay" in text and "target >= 0.85" in text


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        run_rollout_bench("tiny-random-llama", batch_size=0)
    with pytest.raises(ValueError, match="no task instances"):
        run_rollout_bench("tiny-random-llama", family="no-such-family")
