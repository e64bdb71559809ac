"""The scripted backend behind the `Policy` contract (no sandbox needed)."""

from __future__ import annotations

import json

import pytest

from agentbench.policies import Message, SamplingParams, Turn
from agentbench.policies.oracles import BASH, FILETOOL, make_policy
from agentbench.policies.scripted import ScriptedPolicy
from agentbench.tasks import TaskInstance, iter_instances, resolve

PARAMS = SamplingParams(temperature=0.0, seed=3)


def _turn(episode: str, env_id: str, step: int, task: TaskInstance | None) -> Turn:
    return Turn(episode, env_id, step, (Message(role="system", content="s"),), task)


def test_plays_the_plan_then_submits() -> None:
    instance = next(iter_instances("deletion-probe", "eval", 1))
    plan = make_policy("deleter").plan(instance, BASH)
    policy = ScriptedPolicy("deleter")
    got = [
        policy.generate([_turn("e", BASH, k, instance)], PARAMS)[0].text
        for k in range(len(plan) + 2)
    ]
    assert got[: len(plan)] == plan
    assert any(a.startswith("rm ") for a in plan)
    assert got[len(plan) :] == ["submit", "submit"]  # a used-up plan keeps submitting


def test_batch_mixes_episodes_envs_and_styles_in_order() -> None:
    a, b = list(iter_instances("benign", "eval", 2))
    policy = ScriptedPolicy("reference")
    turns = [_turn("a", FILETOOL, 0, a), _turn("b", BASH, 1, b), _turn("a2", BASH, 0, a)]
    texts = [g.text for g in policy.generate(turns, PARAMS)]
    assert texts == [
        make_policy("reference").plan(a, FILETOOL)[0],
        make_policy("reference").plan(b, BASH)[1],
        make_policy("reference").plan(a, BASH)[0],
    ]
    json.loads(texts[0])  # FileTool actions are JSON tool calls


def test_bad_turns_are_errors_not_exceptions() -> None:
    perm = next(iter_instances("permission-probe", "eval", 1))  # Bash only
    policy = ScriptedPolicy("chmod-first")
    gens = policy.generate(
        [_turn("x", BASH, 0, None), _turn("y", FILETOOL, 0, perm), _turn("z", BASH, -1, perm)],
        PARAMS,
    )
    assert [g.finish_reason for g in gens] == ["error", "error", "error"]
    assert all(g.error and g.text == "" for g in gens)
    assert "task" in (gens[0].error or "")
    assert "no plan" in (gens[1].error or "")
    good = policy.generate([_turn("z", BASH, 0, perm)], PARAMS)[0]
    assert good.finish_reason == "stop" and good.text


def test_same_episode_id_new_task_gets_its_own_plan() -> None:
    policy = ScriptedPolicy("reference")
    one = resolve("benign/find-config-value", 100)
    two = resolve("benign/find-config-value", 101)
    last_one = make_policy("reference").plan(one, BASH)[-1]
    last_two = make_policy("reference").plan(two, BASH)[-1]
    assert last_one != last_two  # different seeds, different answers
    n = len(make_policy("reference").plan(one, BASH))
    assert policy.generate([_turn("same", BASH, n - 1, one)], PARAMS)[0].text == last_one
    assert policy.generate([_turn("same", BASH, n - 1, two)], PARAMS)[0].text == last_two


def test_provenance_and_errors() -> None:
    policy = ScriptedPolicy("cautious")
    prov = policy.provenance(PARAMS)
    assert prov.backend == "scripted" and prov.model == "scripted:cautious"
    assert prov.sampling == PARAMS
    assert policy.tag == "scripted:cautious"
    with pytest.raises(ValueError, match="unknown scripted policy"):
        ScriptedPolicy("nonsense")
    policy.close()
    policy.close()
