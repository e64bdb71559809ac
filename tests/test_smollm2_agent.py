"""smollm2-135m-agent: config checks, out-of-split probe seeds and a seconds-long real build.

The reduced build runs real scripted episodes in bubblewrap sandboxes, a real LoRA training
run (agentbench.distill) and a real merge, on a tiny random Llama instead of SmolLM2 (whose
registry build takes ~39 minutes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from agentbench.models import ModelError, get_recipe, weights_sha256
from agentbench.recipes.smollm2_agent import (
    ADAPTER_DIR,
    BUILD_REPORT,
    DATA_FILE,
    PROBE_TRAIN_SEED_BASE,
    AgentAdapterConfig,
    build_agent_adapter,
    select_instance_sets,
    select_instances,
    small_config,
)
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.recipes.tiny_agent import PROBE_TRAIN_SEED_BASE as TINY_AGENT_BASE
from agentbench.teachers.adapter import PROBE_DEMO_SEED_BASE


def _split_of(task_id: str, seed: int) -> str | None:
    from agentbench.tasks import catalog

    return catalog().get(task_id).split_of(seed)


def test_config_refuses_bad_fields() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        AgentAdapterConfig(epoch=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="instance counts"):
        AgentAdapterConfig(instances={"benign": 3, "bash-benign": -1})
    with pytest.raises(ValidationError, match="instance counts"):
        AgentAdapterConfig(filetool_instances={"benign": -1})
    with pytest.raises(ValueError, match="no behaviour mixture"):
        select_instances(AgentAdapterConfig(filetool_instances={"no-such-family": 1}))
    with pytest.raises(ValidationError, match="mixture"):
        AgentAdapterConfig(mixture={"benign": ()})
    with pytest.raises(ValueError, match="no behaviour mixture"):
        select_instances(AgentAdapterConfig(instances={"benign": 1}, mixture={}))


def test_probe_seeds_are_outside_every_split_and_other_training_ranges() -> None:
    config = AgentAdapterConfig()
    pairs = select_instances(config)
    families = {family for family, _ in pairs}
    assert families == {"benign", "bash-benign", "deletion-probe", "permission-probe"}
    probes = [inst for family, inst in pairs if family.endswith("-probe")]
    configured = sum(
        config.instances.get(f, 0) + config.filetool_instances.get(f, 0)
        for f in ("deletion-probe", "permission-probe")
    )
    assert len(probes) == configured > 0
    # FileTool-only instances are drawn with the others: no (task, seed) twice.
    every_env, filetool = select_instance_sets(config)
    assert every_env + filetool == pairs
    assert len(filetool) == sum(config.filetool_instances.values())
    assert len({(i.task_id, i.seed) for _, i in pairs}) == len(pairs)
    for inst in probes:
        assert _split_of(inst.task_id, inst.seed) is None
        assert PROBE_TRAIN_SEED_BASE <= inst.seed < PROBE_TRAIN_SEED_BASE + 1_000_000
    # Disjoint from tiny-agent's pre-training and the teachers' demonstration ranges.
    assert PROBE_TRAIN_SEED_BASE >= PROBE_DEMO_SEED_BASE + 1_000_000 > TINY_AGENT_BASE + 1_000_000
    others = [inst for family, inst in pairs if not family.endswith("-probe")]
    assert others and all(_split_of(i.task_id, i.seed) == "train" for i in others)
    # Seeded: the same config picks the same instances, another seed others.
    again = [(i.task_id, i.seed) for _, i in select_instances(AgentAdapterConfig())]
    assert again == [(i.task_id, i.seed) for _, i in pairs]
    other = [(i.task_id, i.seed) for _, i in select_instances(AgentAdapterConfig(seed=1))]
    assert other != again


def test_registry_entry() -> None:
    recipe = get_recipe("smollm2-135m-agent")
    assert recipe.name == "smollm2-135m-agent" and recipe.version >= 1


def test_unknown_base_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no-such-base"):
        build_agent_adapter(tmp_path / "out", small_config("no-such-base"))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base")
    save_tiny_llama(path, max_position_embeddings=4096)
    return path


def _state(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.bwrap
def test_slips_are_kept_in_the_context_and_left_out_of_the_loss(tmp_path: Path) -> None:
    from tests.conftest import require_backend

    require_backend("bwrap")
    from agentbench.recipes.smollm2_agent import collect_examples
    from agentbench.sanitize.schema import read_examples

    config = small_config("unused").model_copy(update={"slip_rate": 1.0})
    stats = collect_examples(config, tmp_path / "data.jsonl")
    examples = read_examples(tmp_path / "data.jsonl")
    # Slips change nothing in the sandbox: every episode still succeeds and is kept.
    assert stats["kept"] == stats["episodes"] == len(examples) == 4
    assert stats["slips"] == sum(len(e.untrained_turns) for e in examples) > 0
    for example in examples:
        assert example.untrained_turns, example.example_id
        turns = [i for i, m in enumerate(example.messages) if m.role == "assistant"]
        for slip in example.untrained_turns:
            # The observation after a slip is the error the next (trained) turn recovers from.
            observation = example.messages[turns[slip] + 1]
            assert observation.role == "user" and turns[slip] != turns[-1]
            if example.env_id.endswith("FileTool-v0"):
                assert observation.content.startswith("error"), observation.content
    # Off, the same instances give slip-free examples, written without the field.
    plain = collect_examples(small_config("unused"), tmp_path / "plain.jsonl")
    assert plain["slips"] == 0
    assert "untrained_turns" not in (tmp_path / "plain.jsonl").read_text()


@pytest.mark.bwrap
def test_reduced_build_writes_a_merged_model(base_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import require_backend

    require_backend("bwrap")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    dest = tmp_path / "agent"
    config = small_config(str(base_dir))
    report = build_agent_adapter(dest, config)

    # A plain transformers model: loads without PEFT, keeps the chat template and stop token.
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
    assert next(model.parameters()).dtype == torch.float32
    tokenizer = AutoTokenizer.from_pretrained(dest)
    assert tokenizer.chat_template and model.generation_config.eos_token_id is not None
    assert not (dest / "adapter_config.json").exists()

    # The LoRA targets changed, everything else is the base's.
    base, merged = _state(base_dir), _state(dest)
    assert set(base) == set(merged)
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
    prompt = torch.tensor([tokenizer("list the files").input_ids])
    base_model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        assert not torch.allclose(model(prompt).logits, base_model(prompt).logits)

    # The build report agrees with the files.
    on_disk = json.loads((dest / BUILD_REPORT).read_text())
    assert on_disk == json.loads(json.dumps(report, default=str))
    assert report["config"] == config.model_dump(mode="json")
    assert report["base"]["weights_sha256"] == weights_sha256(base_dir)
    assert report["adapter_sha256"] == weights_sha256(dest / ADAPTER_DIR)
    assert report["merged_weights_sha256"] == weights_sha256(dest)
    assert 0.0 <= report["merge_max_abs_dlogit"] < 1e-2
    lines = (dest / DATA_FILE).read_text().splitlines()
    # benign runs in both envs, the permission probe in Bash only, one more benign instance
    # in FileTool only: four episodes.
    assert report["data"]["episodes"] == 4
    by_env = {key.split("/")[1] for key in report["data"]["by"]}
    assert by_env == {"Bash-v0", "FileTool-v0"}
    assert [i["envs"] for i in report["instances"]].count("agentbench/FileTool-v0") == 1
    assert report["data"]["kept"] == len(lines) == report["data"]["encoded"]["examples"]
    assert report["data"]["encoded"]["kept"] == 4
    assert report["train"]["steps"] == 2 and report["train"]["tokens_seen"] > 0
    assert math.isfinite(report["train"]["train_loss"])
    assert report["provenance"]["libraries"]["torch"] and "git_revision" in report["provenance"]
    assert set(report["seconds"]) == {"collect", "train", "merge", "total"}

    # No eval or heldout probe instance was trained on.
    used = report["instances"]
    assert {u["family"] for u in used} == {"benign", "permission-probe"}
    for u in used:
        split = _split_of(u["task_id"], u["seed"])
        assert split == ("train" if u["family"] == "benign" else None)
    families = {json.loads(line)["family"] for line in lines}
    assert families == {"benign", "permission-probe"}
