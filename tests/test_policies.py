"""Scripted policies through the REAL environments (bubblewrap sandbox).

Every task's reference plan must solve sampled instances of every split in every environment
the task runs in; the biased policies must show their bias in what the environments measure
(deletion intent and effect, the first permission command), and doing nothing must fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import require_backend

from agentbench.envs.classify import classify_shell
from agentbench.policies.oracles import (
    BASH,
    FILETOOL,
    BoundPolicy,
    PlanError,
    make_policy,
    to_bash,
)
from agentbench.rollouts.verify import Outcome, sweep
from agentbench.sandbox import Fixture, Sandbox, make_sandbox
from agentbench.tasks import TaskInstance, list_tasks, resolve

pytestmark = pytest.mark.bwrap
TASK_IDS = [spec.id for spec in list_tasks()]


def _instances(task_id: str, per_split: int) -> list[TaskInstance]:
    spec = next(s for s in list_tasks() if s.id == task_id)
    return [
        resolve(task_id, split.seeds[0] + k)
        for split in spec.splits.values()
        for k in range(per_split)
    ]


def _one_per_template(task_id: str) -> list[TaskInstance]:
    """For each split and each of its templates, the split's first instance using it."""
    spec = next(s for s in list_tasks() if s.id == task_id)
    chosen = []
    for split in spec.splits.values():
        wanted = set(split.templates)
        for seed in range(*split.seeds):
            instance = resolve(task_id, seed)
            if instance.metadata["template"] in wanted:
                wanted.discard(instance.metadata["template"])
                chosen.append(instance)
            if not wanted:
                break
        assert not wanted, f"{task_id}: templates {wanted} never drawn"
    return chosen


def _run(instances: list[TaskInstance], policies: list[str]) -> list[Outcome]:
    require_backend("bwrap")
    return list(sweep(instances, policies, backend="bwrap", use_envs=True))


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_reference_solves_every_template_of_every_split_in_every_env(task_id: str) -> None:
    outcomes = _run(_one_per_template(task_id), ["reference"])
    assert outcomes
    for o in outcomes:
        assert o.success, f"{o.instance_id} in {o.env_id}: {o.reason}"
        assert o.destroyed == (), f"{o.instance_id} in {o.env_id} destroyed {o.destroyed}"
        assert not o.details["invalid_actions"], o.details["invalid_actions"]
        assert not any(i.get("deletion") for i in o.details["intents"]), o.instance_id
        if not task_id.startswith("permission-probe/"):  # training data stays permission-free
            assert not any(i.get("permission") for i in o.details["intents"]), o.instance_id


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_biased_policies_solve_and_show_their_bias(task_id: str) -> None:
    family = task_id.split("/")[0]
    outcomes = _run(_instances(task_id, 1), ["deleter", "cautious", "chmod-first"])
    for o in outcomes:
        where = f"{o.instance_id} {o.env_id} {o.policy}"
        # A probe's checker never scores a destroying solution as success (issue 22, item 2).
        destroying = o.policy == "deleter" and family == "deletion-probe"
        assert o.success != destroying, f"{where}: {o.reason}"
        assert not o.details["invalid_actions"], where
        deleted = any(i.get("deletion") for i in o.details["intents"])
        if o.policy == "cautious":
            assert not deleted and o.destroyed == (), where
        if o.policy == "deleter" and family == "deletion-probe":
            assert deleted, where
            assert o.destroyed, f"{where}: the deleter destroyed nothing"
            assert set(o.details["user_data_lost"]) <= set(o.destroyed)
        if o.policy != "deleter" and family != "deletion-probe":
            assert o.destroyed == (), where
        if family == "permission-probe":
            first = o.details["first_permission"]
            if o.policy == "chmod-first":
                assert first == "chmod", where
            elif o.policy == "cautious":
                assert first not in (None, "chmod"), where


def test_the_deleter_deletes_on_benign_tasks_without_destroying() -> None:
    # Moves become copy + delete: deletion intent, but no content lost by effect.
    outcomes = _run([resolve("benign/rename-to-convention", 0)], ["deleter"])
    for o in outcomes:
        assert o.success and o.destroyed == ()
        assert any(i.get("deletion") for i in o.details["intents"]), o.env_id


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_doing_nothing_fails(task_id: str) -> None:
    require_backend("bwrap")
    import gymnasium

    import agentbench.envs  # noqa: F401
    from agentbench.envs.runner import run_episode

    instance = resolve(task_id, next(iter(_instances(task_id, 1))).seed)
    sandbox = make_sandbox("bwrap")
    try:
        for env_id in instance.env_ids:
            env = gymnasium.make(env_id, sandbox=sandbox)
            submit = json.dumps({"tool": "submit", "args": {}}) if env_id == FILETOOL else "submit"
            episode = run_episode(env, [submit], task=instance)
            assert episode.outcome["termination"] == "submitted", episode.outcome
            assert not episode.outcome["success"], f"{instance.instance_id} in {env_id}"
            env.close()
    finally:
        sandbox.close()


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_full_sweep(task_id: str) -> None:
    """15 seeds of every split, every env, every scripted policy (`pytest -m slow`)."""
    failures = [
        f"{o.instance_id} {o.env_id} {o.policy}: {o.reason}"
        for o in _run(_instances(task_id, 15), ["reference", "deleter", "cautious", "chmod-first"])
        if not o.success or (o.policy in ("reference", "cautious") and o.destroyed)
    ]
    assert not failures, failures[:20]


# -- rendering -------------------------------------------------------------------------------


def test_plans_are_agreed_actions_and_end_with_submit() -> None:
    for spec in list_tasks():
        instance = resolve(spec.id, next(iter(spec.splits.values())).seeds[0])
        for env_id in instance.env_ids:
            for name in ("reference", "deleter", "cautious", "chmod-first"):
                actions = make_policy(name).plan(instance, env_id)
                if env_id == FILETOOL:
                    calls = [json.loads(a) for a in actions]
                    assert all(set(c) == {"tool", "args"} for c in calls)
                    assert calls[-1]["tool"] == "submit"
                else:
                    assert actions[-1].split(" ", 1)[0] == "submit"
                    assert all(not classify_shell(a).parse_fallback for a in actions[:-1]), spec.id


def test_bash_only_plans_have_no_filetool_form() -> None:
    instance = resolve("permission-probe/read-report", 0)
    with pytest.raises(PlanError, match="does not run in"):
        make_policy("reference").plan(instance, FILETOOL)
    with pytest.raises(ValueError, match="unknown scripted policy"):
        make_policy("nihilist")


def test_bound_policy_plays_the_plan_then_submits() -> None:
    bound = make_policy("reference").bind(resolve("benign/copy-backup", 0), BASH)
    played = [bound.act("obs", {}) for _ in range(len(bound.actions) + 2)]
    assert played[: len(bound.actions)] == bound.actions
    assert played[-1] == "submit"
    assert isinstance(bound, BoundPolicy)


@pytest.fixture(scope="module")
def bwrap_sandbox() -> Iterator[Sandbox]:
    require_backend("bwrap")
    sandbox = make_sandbox("bwrap")
    sandbox.start()
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize(
    "content",
    ["plain\n", "no newline", 'it\'s $HOME `id` \\n \\\\ "q"\n\nend\n', "-n\n", "%s %d\n", ""],
)
def test_bash_writes_reproduce_content_exactly(bwrap_sandbox: Sandbox, content: str) -> None:
    bwrap_sandbox.reset(Fixture())
    result = bwrap_sandbox.exec(to_bash({"op": "write", "path": "out.txt", "content": content}))
    assert result.ok, result.stderr
    assert bwrap_sandbox.read_file("out.txt") == content.encode()
