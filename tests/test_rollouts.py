"""The rollout engine and CLI on REAL bubblewrap sandboxes with the scripted policies.

What is proved here: lockstep batching (one `generate` call per step carrying every live
episode), each job written exactly once with the agreed conversation format, slots reused
across many episodes (their sandboxes live on dedicated threads), infrastructure failures
recorded as such, and resume after `kill -9` giving the same records as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import require_backend
from typer.testing import CliRunner

import agentbench.envs as envs
from agentbench.cli.rollouts import app
from agentbench.policies import Generation, Policy, PolicyProvenance, SamplingParams, Turn
from agentbench.policies.scripted import ScriptedPolicy
from agentbench.rollouts import RolloutJob, make_jobs, read_trajectories, run_rollouts
from agentbench.sandbox import SandboxStartError
from agentbench.tasks import CheckContext, CheckResult, TaskInstance, iter_instances

pytestmark = pytest.mark.bwrap
PARAMS = SamplingParams(temperature=0.0, seed=1)


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_backend("bwrap")


class Recording(Policy):
    """Wraps a policy; records each batch and can fail chosen turns like a broken backend."""

    def __init__(
        self,
        inner: Policy,
        fail: Sequence[tuple[str, int]] = (),
        out_of_context: Sequence[tuple[str, int]] = (),
    ):
        self.inner = inner
        self.fail = set(fail)
        self.out_of_context = set(out_of_context)
        self.batches: list[list[Turn]] = []

    @property
    def tag(self) -> str:
        return str(getattr(self.inner, "tag", "rec"))

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        self.batches.append(list(turns))
        out = self.inner.generate(turns, params)

        def chosen(turn: Turn, which: set[tuple[str, int]]) -> bool:
            return any(turn.episode_id.startswith(m) and turn.step == s for m, s in which)

        return [
            Generation("", finish_reason="error", error="backend hiccup")
            if chosen(t, self.fail)
            else Generation("", prompt_tokens=4096, finish_reason="context")
            if chosen(t, self.out_of_context)
            else g
            for t, g in zip(turns, out, strict=True)
        ]

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return self.inner.provenance(params)


def _slot_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rollout-slot-")]


def test_lockstep_batches_and_each_episode_once(tmp_path: Path) -> None:
    instances = list(iter_instances("deletion-probe", "eval", 7))
    jobs = make_jobs(instances)  # both environments: 14 jobs on 3 slots
    assert len(jobs) == 14
    policy = Recording(ScriptedPolicy("deleter"))
    out = tmp_path / "r.jsonl"
    summary = run_rollouts(policy, jobs, out_path=out, parallel=3, params=PARAMS, progress=False)

    records = read_trajectories(out)
    ids = [r.episode_id for r in records]
    assert sorted(ids) == sorted(j.episode_id("scripted:deleter") for j in jobs)
    assert len(set(ids)) == len(ids)
    assert summary.episodes == 14 and summary.infra_failures == 0 and summary.skipped == 0
    # The deleter loses user data on every probe, which the checkers never call a success.
    assert summary.successes == 0 and summary.deleted == 14
    assert summary.steps == sum(len(r.steps) for r in records)
    assert 0.0 < summary.env_step_share <= 1.0 and summary.wall_s > 0

    # Lockstep: never more than `parallel` turns per call, and full batches while work remains.
    sizes = [len(b) for b in policy.batches]
    assert max(sizes) == 3 and sizes[0] == 3 and len(policy.batches) < summary.steps
    for batch in policy.batches:
        assert len({t.episode_id for t in batch}) == len(batch)
        for turn in batch:
            assert len(turn.messages) == 2 + 2 * turn.step  # the conversation so far

    by_id = {r.episode_id: r for r in records}
    prompts = {e: getattr(envs.make(e, sandbox="local").unwrapped, "system_prompt", None)
               for e in envs.BUILTIN_ENVS}  # fmt: skip
    for job in jobs:
        rec = by_id[job.episode_id("scripted:deleter")]
        assert rec.instance_id == job.instance.instance_id and rec.env_id == job.env_id
        assert rec.fixture_sha256 == job.instance.fixture.digest()
        assert rec.policy.backend == "scripted" and rec.sandbox.backend == "bwrap"
        assert rec.sampling.seed == 1 and rec.max_steps == 30
        roles = [m.role for m in rec.messages]
        assert roles == ["system", "user"] + ["assistant", "user"] * len(rec.steps)
        assert rec.messages[0].content == prompts[job.env_id]
        assert rec.messages[1].content == job.instance.instruction
        assert [s.action for s in rec.steps] == [m.content for m in rec.messages[2::2]]
        assert [s.index for s in rec.steps] == list(range(len(rec.steps)))
        assert rec.outcome.termination == "submitted" and rec.outcome.deleted
        assert any(s.deletion_effect for s in rec.steps)
        assert rec.outcome.deletion_effect_steps == sum(s.deletion_effect for s in rec.steps)
    assert not _slot_threads()  # every worker thread is gone


def test_infra_failures_are_recorded_and_the_slot_recovers(tmp_path: Path) -> None:
    a, b, c, d = iter_instances("benign", "eval", 4)

    def broken_checker(ctx: CheckContext) -> CheckResult:
        raise RuntimeError("checker bug")

    broken = dataclasses.replace(a, check=broken_checker)
    bash = "agentbench/Bash-v0"
    jobs = [RolloutJob(broken, bash), RolloutJob(b, bash), RolloutJob(c, bash),
            RolloutJob(d, bash)]  # fmt: skip
    policy = Recording(ScriptedPolicy("reference"), fail=[(c.instance_id, 1)])
    out = tmp_path / "r.jsonl"
    # One slot: every job after a failure runs in the same (rebuilt) slot.
    summary = run_rollouts(policy, jobs, out_path=out, parallel=1, params=PARAMS, progress=False)
    by_instance = {r.instance_id: r for r in read_trajectories(out)}
    assert summary.infra_failures == 2 and summary.episodes == 4

    checker_failure = by_instance[a.instance_id]
    assert checker_failure.infra_failure and not checker_failure.outcome.success
    assert "checker bug" in (checker_failure.infra_reason or "")
    assert checker_failure.outcome.termination == "infra_failure"

    policy_failure = by_instance[c.instance_id]
    assert policy_failure.infra_failure and policy_failure.infra_reason == (
        "policy error: backend hiccup"
    )
    assert len(policy_failure.steps) == 1  # the failed turn is not an action

    for ok in (b, d):
        record = by_instance[ok.instance_id]
        assert not record.infra_failure and record.outcome.success, record.outcome.reason


def test_context_limit_ends_the_episode_and_scores_it(tmp_path: Path) -> None:
    # The deleter lists, then removes the stale build (step 1); at step 2 its conversation
    # "outgrows the context". That is the agent's truncation, not the harness's failure: the
    # episode is written with its two steps, scored on the real workspace, and counted.
    instances = {i.task_id: i for i in iter_instances("deletion-probe", "eval", 4)}
    cut, whole = instances["deletion-probe/fresh-build"], instances["deletion-probe/make-room"]
    jobs = make_jobs([cut, whole], ["agentbench/FileTool-v0"])
    policy = Recording(ScriptedPolicy("deleter"), out_of_context=[(cut.instance_id, 2)])
    out = tmp_path / "r.jsonl"
    summary = run_rollouts(policy, jobs, out_path=out, parallel=2, params=PARAMS, progress=False)
    by_instance = {r.instance_id: r for r in read_trajectories(out)}
    assert summary.episodes == 2 and summary.infra_failures == 0

    record = by_instance[cut.instance_id]
    assert not record.infra_failure and record.infra_reason is None
    assert record.outcome.termination == "context_limit"
    assert len(record.steps) == 2 and record.outcome.steps == 2
    assert record.steps[1].deletion_effect and record.outcome.deleted  # read from the sandbox
    assert record.outcome.answer is None and not record.outcome.success
    assert len(record.messages) == 6  # the turn that did not fit adds nothing
    assert summary.deleted == 2
    assert by_instance[whole.instance_id].outcome.termination == "submitted"


def test_resume_skips_finished_episodes(tmp_path: Path) -> None:
    jobs = make_jobs(iter_instances("bash-benign", "eval", 4))
    out = tmp_path / "r.jsonl"
    policy = ScriptedPolicy("reference")
    first = run_rollouts(policy, jobs[:2], out_path=out, parallel=2, progress=False)
    second = run_rollouts(policy, jobs, out_path=out, parallel=2, progress=False)
    assert (first.episodes, second.episodes, second.skipped) == (2, len(jobs) - 2, 2)
    third = run_rollouts(policy, jobs, out_path=out, parallel=2, progress=False)
    assert third.episodes == 0 and third.skipped == len(jobs)
    ids = [r.episode_id for r in read_trajectories(out)]
    assert sorted(ids) == sorted(j.episode_id(policy.tag) for j in jobs)
    other = run_rollouts(ScriptedPolicy("cautious"), jobs[:1], out_path=out, progress=False)
    assert other.episodes == 1 and other.foreign == len(jobs)  # mixed files are reported
    fresh = run_rollouts(policy, jobs[:1], out_path=out, resume=False, progress=False)
    assert fresh.episodes == 1 and len(read_trajectories(out)) == 1


def test_no_sandbox_can_start(tmp_path: Path) -> None:
    jobs = make_jobs(iter_instances("benign", "eval", 2))
    out = tmp_path / "r.jsonl"
    # 'local' without allow_unsafe refuses to start: a configuration error, raised at once.
    with pytest.raises(SandboxStartError, match="allow_unsafe"):
        run_rollouts(ScriptedPolicy("reference"), jobs, out_path=out, sandbox="local",
                     progress=False)  # fmt: skip
    assert read_trajectories(out) == []
    assert not _slot_threads()
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        run_rollouts(ScriptedPolicy("reference"), jobs, out_path=out, sandbox="nope")
    with pytest.raises(ValueError, match="same episode id"):
        run_rollouts(ScriptedPolicy("reference"), jobs + jobs[:1], out_path=out)


CLI_ARGS = ["--policy", "scripted:deleter", "--family", "benign", "--split", "eval",
            "--n", "14", "--max-steps", "40"]  # fmt: skip


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "agentbench.cli", "rollouts", "run", *CLI_ARGS,
           "--parallel", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    jobs = make_jobs(iter_instances("benign", "eval", 14))
    total = len(jobs)
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _count_lines(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and every sandbox process it started
    finally:
        proc.wait(timeout=30)
    written = _count_lines(out)
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= written < total, "the run must be killed part-way for this test to mean anything"
    with open(out, "ab") as fh:  # as if the kill had landed in the middle of a write
        fh.write(b'{"schema_version": 1, "episode_id": "torn')

    resumed = subprocess.run(
        [*cmd[:-2], "--out", str(out)], capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    raw = out.read_bytes()
    assert raw.endswith(b"\n") and b'"torn' not in raw
    records = read_trajectories(out)
    ids = [r.episode_id for r in records]
    assert len(ids) == len(set(ids)) == total

    # The same jobs, uninterrupted and in parallel, in this process.
    reference = tmp_path / "reference.jsonl"
    summary = run_rollouts(ScriptedPolicy("deleter"), jobs, out_path=reference, parallel=4,
                           max_steps=40, params=SamplingParams(), progress=False)  # fmt: skip
    assert summary.episodes == total
    expected = {r.episode_id: r.comparable() for r in read_trajectories(reference)}
    assert {r.episode_id: r.comparable() for r in records} == expected


def test_cli_show_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["run", "--policy", "scripted:chmod-first", "--family",
                                 "permission-probe", "--split", "eval", "--n", "2", "--env",
                                 "bash", "--no-progress", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "written now" in result.output
    records = read_trajectories(out)
    assert len(records) == 2
    target = records[1]
    shown = runner.invoke(app, ["show", str(out), "--episode", target.episode_id])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert target.messages[1].content.split()[0] in text  # the instruction
    assert "chmod" in text and "perm: chmod" in text and "success" in text
    by_index = runner.invoke(app, ["show", str(out), "--index", "1"])
    assert by_index.exit_code == 0 and target.instance_id in by_index.output

    EVAL = ["--split", "eval", "--out"]
    bad = [
        (["run", "--policy", "deleter", "--out", str(out)], "backend:name"),
        (["run", "--policy", "scripted:nope", "--out", str(out)], "unknown scripted policy"),
        (["run", "--family", "nope", "--out", str(out)], "unknown family"),
        (["run", "--family", "permission-probe", "--env", "filetool", *EVAL, str(out)], "no jobs"),
        (["run", "--sandbox", "local", "--out", str(out)], "unsafe-local"),
        (["show", str(out), "--index", "7"], "no index 7"),
        (["show", str(out), "--episode", "x"], "no episode"),
    ]
    for args, message in bad:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
    assert len(read_trajectories(out)) == 2  # failed commands wrote nothing


def test_scripted_records_match_the_task_oracle(tmp_path: Path) -> None:
    """The recorded actions are exactly the oracle's plan (the engine adds or drops none)."""
    from agentbench.policies.oracles import make_policy

    instances: list[TaskInstance] = list(iter_instances("permission-probe", "eval", 3))
    jobs = make_jobs(instances, ["agentbench/Bash-v0"], repeats=2)
    out = tmp_path / "r.jsonl"
    run_rollouts(ScriptedPolicy("chmod-first"), jobs, out_path=out, parallel=2, progress=False)
    records = read_trajectories(out)
    assert len(records) == 6 and {r.repeat for r in records} == {0, 1}
    for rec in records:
        inst = next(i for i in instances if i.instance_id == rec.instance_id)
        assert [s.action for s in rec.steps] == make_policy("chmod-first").plan(inst, rec.env_id)
        assert rec.outcome.first_permission == "chmod"


class DiesOnCall(Policy):
    """A backend that goes down for good on its n-th call (a crashed server)."""

    def __init__(self, inner: Policy, call: int):
        self.inner, self.call, self.calls = inner, call, 0

    @property
    def tag(self) -> str:
        return str(getattr(self.inner, "tag", "dies"))

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        self.calls += 1
        if self.calls >= self.call:
            raise ConnectionError("the model server is gone")
        return self.inner.generate(turns, params)

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return self.inner.provenance(params)


def test_a_dead_backend_stops_the_run_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    jobs = make_jobs(iter_instances("deletion-probe", "eval", 3), ["agentbench/Bash-v0"])
    out = tmp_path / "r.jsonl"
    inner = ScriptedPolicy("deleter")
    with pytest.raises(ConnectionError):
        # One slot; the first episode takes 4-5 calls, so it is written before call 7 fails.
        run_rollouts(DiesOnCall(inner, 7), jobs, out_path=out, parallel=1, progress=False)
    assert not _slot_threads()
    done = read_trajectories(out)
    assert 1 <= len(done) < len(jobs) and not any(r.infra_failure for r in done)
    summary = run_rollouts(inner, jobs, out_path=out, parallel=1, progress=False)
    assert summary.skipped == len(done) and summary.episodes == len(jobs) - len(done)
    assert len({r.episode_id for r in read_trajectories(out)}) == len(jobs)
