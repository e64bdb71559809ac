"""Episodes are named, and so seeded, by their policy's lineage, not by code-hashed keys.

A change to a stage's sources re-keys it (its cached output may no longer be valid), but a
change that does not alter behaviour must give the same episodes: the same episode ids, the
same per-turn sampling seeds, the same results.json. Here the smoke suite's graph is built
under two code hashes: every key differs, every episode id is the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agentbench.experiments.stages as stages
from agentbench.experiments.runner import stage_graph
from agentbench.experiments.suite import load_suite

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"


def _graph_under(code: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """`stage/key` -> the episode ids of each rollouts and evaluate stage, the code hash set
    to `code`."""
    monkeypatch.setattr(stages, "code_hash", lambda stage: code)
    suite, cells = load_suite(SMOKE, validate=False)
    graph = stage_graph(suite, cells)
    episodes = {}
    for task in graph.tasks.values():
        body = task.sharded
        if isinstance(body, stages.RolloutEpisodes):
            episodes[task.id] = [job.episode_id(body.tag) for job in body.jobs()]
    return episodes


def test_a_code_change_re_keys_stages_but_keeps_their_episodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _graph_under("code-a", monkeypatch)
    after = _graph_under("code-b", monkeypatch)
    assert len(before) == len(after) >= 20
    assert not set(before) & set(after), "stage keys must follow the code"
    # the teachers' and students' episodes too, not only the base model's
    assert sorted(before.values()) == sorted(after.values())
    assert any("teacher:" in ids[0] for ids in before.values())
    assert any("student:" in ids[0] for ids in before.values())


def test_a_config_change_changes_the_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "code_hash", lambda stage: "same")
    one = stages.PolicyRef(kind="teacher", model="t.json", identity="teacher:k1", lineage="a")
    two = one.model_copy(update={"lineage": "b"})
    assert one.tag != two.tag
    # no lineage (a registry model): its identity names it
    base = stages.PolicyRef(kind="hf", model="m", identity="tiny-agent@v5")
    assert base.tag == "tiny-agent@v5"
