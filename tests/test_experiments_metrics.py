"""Metrics from real trajectories, statistics against known values, the stage store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agentbench.experiments.metrics import (
    RateRecord,
    across_seeds,
    arm_metrics,
    fisher_exact,
    transfer_score,
)
from tests.conftest import require_backend


def test_fisher_exact_matches_a_known_table() -> None:
    # The classic tea-tasting table: [[3, 1], [1, 3]] has a two-sided p of 0.486.
    c = fisher_exact(RateRecord(3, 4, 0.75, None, None), RateRecord(1, 4, 0.25, None, None))
    assert c.p_value == pytest.approx(0.4857, abs=1e-3)
    assert c.difference == pytest.approx(0.5)
    empty = fisher_exact(RateRecord(0, 0, None, None, None), RateRecord(1, 4, 0.25, None, None))
    assert empty.p_value is None


def test_transfer_score() -> None:
    assert transfer_score(0.4, 0.1, 0.7, 0.1) == pytest.approx(0.5)
    assert transfer_score(0.4, 0.1, 0.1, 0.1) is None  # no trait to transfer
    assert transfer_score(None, 0.1, 0.7, 0.1) is None
    assert transfer_score(float("nan"), 0.1, 0.7, 0.1) is None


def test_across_seeds_t_interval() -> None:
    s = across_seeds([0.2, 0.4, 0.6])
    assert s.n_seeds == 3 and s.mean == pytest.approx(0.4)
    # mean +- t(0.975, 2) * sd / sqrt(3) = 0.4 +- 4.303 * 0.2 / 1.732
    assert s.high == pytest.approx(0.4 + 4.303 * 0.2 / math.sqrt(3), abs=1e-3)
    one = across_seeds([0.5, None])
    assert one.n_seeds == 1 and one.low is None
    assert across_seeds([]).mean is None


@pytest.mark.bwrap
def test_arm_metrics_from_scripted_episodes(tmp_path: Path) -> None:
    require_backend("bwrap")
    from agentbench.experiments.stages import instances_for
    from agentbench.policies.scripted import ScriptedPolicy
    from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts

    def episodes(style: str, family: str, env: str, n: int) -> list:
        out = tmp_path / f"{style}-{family}.jsonl"
        jobs = make_jobs(instances_for(family, "heldout", n, env), [env])
        run_rollouts(ScriptedPolicy(style), jobs, out_path=out, parallel=2, progress=False)
        return read_trajectories(out)

    deleter = arm_metrics(episodes("deleter", "deletion-probe", "agentbench/FileTool-v0", 4))
    cautious = arm_metrics(episodes("cautious", "deletion-probe", "agentbench/FileTool-v0", 4))
    assert deleter.episodes == 4 and deleter.infra_failures == 0
    assert deleter.rates["deletion_rate"].k >= 3
    assert deleter.rates["p_del"].k >= 3
    assert cautious.rates["deletion_rate"].k == 0 and cautious.rates["p_del"].k == 0
    assert deleter.rates["valid_action_rate"].value == 1.0

    chmod = arm_metrics(episodes("chmod-first", "permission-probe", "agentbench/Bash-v0", 3))
    assert chmod.rates["chmod_first_rate"].n + chmod.no_permission_command == chmod.episodes
    assert chmod.rates["chmod_first_rate"].k == chmod.rates["chmod_first_rate"].n > 0


def test_command_ran_reads_the_real_shell(tmp_path: Path) -> None:
    """Prose is a valid Bash action (any text is) but not a command that ran."""
    require_backend("bwrap")
    import json

    import gymnasium

    from agentbench.experiments.metrics import command_ran
    from agentbench.rollouts.schema import StepRecord

    env = gymnasium.make("agentbench/Bash-v0", sandbox="bwrap")
    env.reset(seed=0)
    verdicts = {}
    try:
        for index, action in enumerate(
            ("ls -la", "The goal is to back up the file first.", "if then fi", "false")
        ):
            observation, _, _, _, info = env.step(action)
            assert info["action_valid"]
            extra = {k: info[k] for k in ("exec",) if k in info}
            step = StepRecord(index=index, action=action, observation=observation,
                              action_valid=True, extra_json=json.dumps(extra))  # fmt: skip
            verdicts[action] = command_ran(step)
    finally:
        env.close()
    assert verdicts == {
        "ls -la": True,
        "The goal is to back up the file first.": False,
        "if then fi": False,
        "false": True,  # it ran and failed: a real command
    }
    submit = StepRecord(index=9, action="submit", observation="submitted", action_valid=True)
    assert command_ran(submit) is None
