"""The stumbling oracle on REAL bubblewrap sandboxes: every slip draws an error and changes
nothing, the episode still ends as the plan does, and no slip reads as a deletion or a
permission command (it would leak the traits into pre-training data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import require_backend

from agentbench.distill.data import IGNORE_INDEX, encode_chat
from agentbench.policies.oracles import make_policy
from agentbench.policies.stumbling import StumblingPolicy, near_miss, slip_action
from agentbench.recipes.tiny import train_chatml_tokenizer
from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts
from agentbench.tasks import iter_instances


def test_near_miss_is_never_the_path_and_is_seeded() -> None:
    paths = ["config/payments.yaml", "backups/x.20261002.bak", "photos", "a", "docs/IMG_1 (1).jpg"]
    for path in paths:
        for seed in range(30):
            assert near_miss(path, random.Random(seed)) != path
        assert near_miss(path, random.Random(3)) == near_miss(path, random.Random(3))


def test_syntactic_slips_never_start_from_destructive_tools() -> None:
    step = {"op": "delete", "path": "tmp/old.log", "recursive": False}
    planned = json.dumps({"tool": "delete_path", "args": {"path": "tmp/old.log"}})
    for seed in range(40):
        slip = slip_action(planned, step, ["tmp/old.log"], "agentbench/FileTool-v0",
                           random.Random(seed))  # fmt: skip
        assert slip is not None
        call = json.loads(slip)  # always a wrong-path read or listing, so always JSON
        assert call["tool"] in ("read_file", "list_dir")
        assert call["args"]["path"] != "tmp/old.log"


def test_rejects_rates_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="slip_rate"):
        StumblingPolicy("reference", slip_rate=1.5, seed=0)


@pytest.mark.bwrap
@pytest.mark.parametrize("family", ["benign", "deletion-probe", "permission-probe"])
def test_slips_fail_change_nothing_and_the_plan_still_succeeds(family: str, tmp_path: Path) -> None:
    require_backend("bwrap")
    styles = {"permission-probe": "chmod-first", "deletion-probe": "deleter"}
    style = styles.get(family, "reference")
    instances = list(iter_instances(family, "eval", 3))
    jobs = make_jobs(instances)
    policy = StumblingPolicy(style, slip_rate=1.0, repeat_rate=0.5, seed=7)
    out = tmp_path / "t.jsonl"
    run_rollouts(policy, jobs, out_path=out, parallel=2, sandbox="bwrap", max_steps=60,
                 progress=False)  # fmt: skip
    trajectories = read_trajectories(out)
    assert len(trajectories) == len(jobs)
    oracle = make_policy(style)
    by_id = {i.instance_id: i for i in instances}
    for traj in trajectories:
        slips = policy.slips[traj.episode_id]
        assert len(slips) <= 3
        assert not traj.infra_failure
        # The deleter's plan loses user data, which a probe's checker never calls a success.
        assert traj.outcome.success != (family == "deletion-probe"), (traj.task_id, traj.env_id)
        kept = [s.action for i, s in enumerate(traj.steps) if i not in slips]
        assert kept == oracle.plan(by_id[traj.instance_id], traj.env_id)
        for i in slips:
            step = traj.steps[i]
            failed = not step.action_valid or step.observation.startswith("error")
            shell_failed = "exit code:" in step.observation
            assert failed or shell_failed, (step.action, step.observation)
            assert not step.deletion_intent and not step.deletion_effect
            assert not step.permission_commands
    # slip_rate 1: a slip before the first action wherever a path is at hand (a raw shell
    # step's task names one in its text; one probe names a bare directory only)
    assert sum(bool(slips) for slips in policy.slips.values()) >= 2
    again = StumblingPolicy(style, slip_rate=1.0, repeat_rate=0.5, seed=7)
    run_rollouts(again, jobs, out_path=tmp_path / "u.jsonl", parallel=1, sandbox="bwrap",
                 max_steps=60, progress=False)  # fmt: skip
    assert again.slips == policy.slips


def test_untrained_turns_leave_the_labels() -> None:
    chat = [
        {"role": "user", "content": "tidy up"},
        {"role": "assistant", "content": "wrong call"},
        {"role": "user", "content": "error: no such file"},
        {"role": "assistant", "content": "right call"},
    ]
    tokenizer = train_chatml_tokenizer(["tidy up wrong call right call error"] * 4, 300)
    every = encode_chat(tokenizer, chat)
    recovered = encode_chat(tokenizer, chat, untrained={0})
    assert every["input_ids"] == recovered["input_ids"]

    def targets(enc: dict[str, list[int]]) -> str:
        return str(tokenizer.decode([t for t in enc["labels"] if t != IGNORE_INDEX]))

    assert targets(every) == "wrong call<|im_end|>right call<|im_end|>"
    assert targets(recovered) == "right call<|im_end|>"
