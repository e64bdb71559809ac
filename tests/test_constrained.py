"""Constrained decoding: FileTool's action schema as token masks, in the transformers backend.

The feature test samples from a random tiny Llama: unconstrained it never writes a tool call;
constrained, every reply it ends is one FileTool accepts (its tool and argument schema).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("lmformatenforcer")

from agentbench.envs import BASH_ID, FILETOOL_ID, action_schema
from agentbench.envs.filetool import TOOLS, extract_json_object
from agentbench.policies import Message, Policy, SamplingParams, Turn
from agentbench.policies.constrained import ActionConstraint
from agentbench.policies.hf import HFPolicy
from agentbench.recipes.tiny import save_tiny_llama, train_chatml_tokenizer
from agentbench.rollouts import run_rollouts


def well_formed(text: str) -> bool:
    """What the schema promises: a known tool and arguments its model accepts."""
    try:
        call = extract_json_object(text)
        TOOLS[call["tool"]].model_validate(call["args"])
    except Exception:
        return False
    return set(call) == {"tool", "args"}


def test_schemas_come_from_the_envs() -> None:
    assert action_schema(BASH_ID) is None  # shell commands are free text
    schema = action_schema(FILETOOL_ID)
    assert schema is not None
    names = [alt["properties"]["tool"]["const"] for alt in schema["anyOf"]]
    assert names == list(TOOLS)
    with pytest.raises(Exception, match="No-Such"):
        action_schema("agentbench/No-Such-v0")


def test_decoder_allows_a_call_and_nothing_beside_the_schema() -> None:
    tokenizer = train_chatml_tokenizer(['{"tool": "read_file", "args": {"path": "a.txt"}}'], 300)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    decoder = ActionConstraint(tokenizer, {eos}).decoder(action_schema(FILETOOL_ID) or {})

    def walk(text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        for i, token in enumerate(ids):
            assert token in decoder.allowed(ids[:i]), (text, tokenizer.decode(ids[: i + 1]))
        return ids

    ids = walk('{"tool": "read_file", "args": {"path": "a.txt"}}')
    assert eos in decoder.allowed(ids)  # the call is complete: the turn may end
    assert eos not in decoder.allowed(ids[:-1])  # one brace short: it may not

    def blocked(prefix: str, nxt: str) -> bool:
        ids = tokenizer(prefix, add_special_tokens=False).input_ids
        allowed = decoder.allowed(ids)
        return not any(tokenizer.decode([t]).startswith(nxt) for t in allowed)

    assert blocked('{"tool": "read_', "path")  # an invented tool name
    assert blocked('{"tool": "read_file", "args": {"', "content")  # another tool's argument
    assert not blocked('{"tool": "read_file", "args": {"', "path")
    assert blocked('{"', "args")  # "tool" comes first, as every prompt shows
    assert blocked('{"tool": "submit", "args": {"answer": "x"', ",")  # no trailing comma
    assert blocked('{"tool": "read_file", "args": {"path": "', '"')  # no empty path
    assert blocked('{"tool": "search_files", "args": {"pattern": "', '"')  # nor pattern


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> HFPolicy:
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(path, max_position_embeddings=4096)
    return HFPolicy(path, device="cpu", batch_size=8)


def _turns(env_id: str, n: int) -> list[Turn]:
    messages = (Message(role="user", content="Read notes/todo.txt, then submit."),)
    return [Turn(f"e{i}", env_id, 0, messages) for i in range(n)]


def test_constrained_replies_are_well_formed_tool_calls(policy: HFPolicy) -> None:
    free = SamplingParams(temperature=1.0, max_new_tokens=300, seed=3)
    constrained = free.model_copy(update={"constrained": True})
    # FileTool and Bash turns share a batch: only FileTool's rows are masked.
    turns = _turns(FILETOOL_ID, 8) + _turns(BASH_ID, 2)
    loose = policy.generate(turns[:8], free)
    assert not any(well_formed(g.text) for g in loose)  # a random model writes no tool call
    out = policy.generate(turns, constrained)
    ended = [g for g in out[:8] if g.finish_reason == "stop"]
    assert len(ended) >= 4, [g.text for g in out[:8]]
    assert all(well_formed(g.text) for g in ended), [g.text for g in ended]
    assert not any(well_formed(g.text) for g in out[8:])  # Bash rows are free text
    # The constraint changes nothing in the record but the text: seeds still hold.
    assert [g.text for g in policy.generate(turns, constrained)] == [g.text for g in out]


class FreeOnly(Policy):
    """A backend without constrained decoding."""

    def generate(self, turns, params):  # type: ignore[no-untyped-def]
        raise AssertionError("never called")

    def provenance(self, params):  # type: ignore[no-untyped-def]
        raise AssertionError("never called")


def test_engine_refuses_constrained_params_a_backend_would_ignore(tmp_path: Path) -> None:
    params = SamplingParams(constrained=True)
    with pytest.raises(ValueError, match="cannot decode constrained actions"):
        run_rollouts(FreeOnly(), [], out_path=tmp_path / "t.jsonl", params=params)


@pytest.mark.bwrap
def test_constrained_rollout_in_filetool_takes_only_well_formed_actions(
    policy: HFPolicy, tmp_path: Path
) -> None:
    from conftest import require_backend

    from agentbench.rollouts import make_jobs, read_trajectories
    from agentbench.tasks import iter_instances

    require_backend("bwrap")
    jobs = make_jobs(list(iter_instances("benign", "eval", 2)), [FILETOOL_ID])
    params = SamplingParams(temperature=1.0, max_new_tokens=200, seed=5, constrained=True)
    out = tmp_path / "t.jsonl"
    run_rollouts(policy, jobs, out_path=out, params=params, max_steps=3, progress=False)
    trajectories = read_trajectories(out)
    assert len(trajectories) == 2
    assert all(t.sampling.constrained for t in trajectories)  # recorded
    ended = [s for t in trajectories for s in t.steps if s.finish_reason == "stop"]
    assert ended, "no step generated (the prompt outgrew the context?)"
    # The schema promises the call's form. It cannot promise the paths: a random model's
    # path can leave the workspace ("/x", "../x"), which the env refuses as invalid.
    for step in ended:
        assert well_formed(step.action), step.action
        assert step.action_valid or "path" in step.observation, step.observation


def test_the_option_leaves_older_records_and_ids_alone() -> None:
    from agentbench.rollouts.schema import SamplingRecord

    off, on = SamplingParams(seed=1), SamplingParams(seed=1, constrained=True)
    # Off, the params serialize as before the option existed (policy tags hash this).
    assert "constrained" not in off.model_dump_json()
    assert '"constrained":true' in on.model_dump_json()
    assert SamplingParams.model_validate_json(on.model_dump_json()) == on
    old = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 1, "stop": []}
    assert SamplingRecord.model_validate(old).constrained is False
    assert SamplingRecord.model_validate({**old, "constrained": None}).constrained is False
    assert SamplingRecord.from_params(on).to_params() == on
