"""The rollout engine with a REAL transformers model (tiny random Llama) in bubblewrap.

A random model writes gibberish: the engine must record it as the agent's (mostly invalid)
actions with token counts, never as infrastructure failures, and the file must still load with
HF `datasets` (control characters and odd Unicode in actions and observations).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_backend

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from agentbench.policies import SamplingParams
from agentbench.policies.hf import HFPolicy
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.rollouts import Trajectory, make_jobs, read_trajectories, run_rollouts
from agentbench.tasks import iter_instances

pytestmark = pytest.mark.bwrap


def test_tiny_model_rollouts_record_tokens_and_load_as_a_dataset(tmp_path: Path) -> None:
    import datasets

    require_backend("bwrap")
    model = tmp_path / "tiny"
    save_tiny_llama(model, max_position_embeddings=4096)  # room for the system prompt
    policy = HFPolicy(model, device="cpu")
    jobs = make_jobs(iter_instances("deletion-probe", "eval", 1))  # FileTool and Bash
    out = tmp_path / "r.jsonl"
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=5)
    summary = run_rollouts(policy, jobs, out_path=out, parallel=2, max_steps=2, params=params,
                           progress=False)  # fmt: skip
    records = read_trajectories(out)
    assert summary.episodes == 2 and summary.infra_failures == 0
    assert summary.completion_tokens > 0 and summary.tokens_per_s > 0
    assert summary.generate_share > 0
    for rec in records:
        assert rec.policy.backend == policy.provenance(params).backend
        assert rec.policy.weights_sha256 and rec.sampling.seed == 5
        assert rec.outcome.termination == "max_steps" and len(rec.steps) == 2
        assert all(s.prompt_tokens > 0 and 0 < s.completion_tokens <= 8 for s in rec.steps)
        # The prompt grows by the previous action and observation.
        assert rec.steps[1].prompt_tokens > rec.steps[0].prompt_tokens
        assert [m.content for m in rec.messages[2::2]] == [s.action for s in rec.steps]

    ds = datasets.load_dataset("json", data_files=str(out), split="train",
                               cache_dir=str(tmp_path / "cache"))  # fmt: skip
    by_id = {r.episode_id: r for r in records}
    for row in ds:
        assert Trajectory.model_validate(row) == by_id[row["episode_id"]]


def test_outgrowing_the_context_ends_and_scores_the_episode(tmp_path: Path) -> None:
    # A real model whose context holds the first turn (plus 8 new tokens) but not the second:
    # the episode ends at the context limit, scored by the checker, not as an infra failure.
    require_backend("bwrap")
    model = tmp_path / "tiny"
    save_tiny_llama(model, max_position_embeddings=4096)
    jobs = make_jobs(iter_instances("deletion-probe", "eval", 1), ["agentbench/FileTool-v0"])
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=5)
    probe = tmp_path / "probe.jsonl"
    run_rollouts(HFPolicy(model, device="cpu"), jobs, out_path=probe, max_steps=1,
                 params=params, progress=False)  # fmt: skip
    first_prompt = read_trajectories(probe)[0].steps[0].prompt_tokens
    cramped = HFPolicy(model, device="cpu", max_context=first_prompt + 8)
    out = tmp_path / "r.jsonl"
    summary = run_rollouts(cramped, jobs, out_path=out, max_steps=4, params=params,
                           progress=False)  # fmt: skip
    [record] = read_trajectories(out)
    assert summary.infra_failures == 0 and not record.infra_failure
    assert record.outcome.termination == "context_limit"
    assert len(record.steps) == 1 and record.outcome.steps == 1
    assert record.outcome.reason and not record.outcome.success  # the checker's verdict
