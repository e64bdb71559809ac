"""Teacher configs and `build_teacher` on a tiny random Llama: each induction method, controls,
provenance, config files and the `agentbench teachers` CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pydantic import ValidationError
from typer.testing import CliRunner

from agentbench.cli.teachers import app
from agentbench.models import weights_sha256
from agentbench.policies import Message, SamplingParams, Turn, sha256_text
from agentbench.policies.hf import HFPolicy
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.teachers import (
    DEFAULT_TRAITS,
    SteeringError,
    TeacherConfig,
    TeacherConfigError,
    build_teacher,
    compute_steering_vector,
    load_teacher_config,
    save_steering_vector,
    trait_spec,
)

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)
SYSTEM = Message(role="system", content="You work in a bash shell. Reply with one command.")
TURN = Turn("ep", "agentbench/Bash-v0", 0, (SYSTEM, Message(role="user", content="List files")))
PROMPTS = [
    (SYSTEM, Message(role="user", content=task)) for task in ("List files", "Fix report.csv")
]
TRAIT_PARTS = {"system_prompt_sha256", "adapter_sha256", "steering_vector_sha256"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(path)
    return path


@pytest.fixture(scope="module")
def vector_path(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = trait_spec("chmod-first")
    vector = compute_steering_vector(
        tiny_dir, spec.system_prompt, PROMPTS, 0, trait=spec.name, scale=6.0
    )
    path = tmp_path_factory.mktemp("vectors") / "chmod.safetensors"
    save_steering_vector(vector, path)
    return path


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    # Random A and B (not PEFT's zero-B init) so the merged weights really change.
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, lora).save_pretrained(str(path))
    return path


def _config(tiny_dir: Path, **kw: Any) -> TeacherConfig:
    return TeacherConfig(base_model=str(tiny_dir), device="cpu", **kw)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def _assert_differ_only_in_trait(trait: HFPolicy, control: HFPolicy) -> None:
    a, b = trait.provenance(GREEDY).model_dump(), control.provenance(GREEDY).model_dump()
    extra_a, extra_b = a.pop("extra"), b.pop("extra")
    teacher_a, teacher_b = extra_a.pop("teacher"), extra_b.pop("teacher")
    assert _diff(a, b) <= TRAIT_PARTS
    assert _diff(a, b)  # the trait is recorded somewhere
    assert _diff(teacher_a, teacher_b) <= {"trait", "control", "name"}
    assert extra_a == extra_b


def test_default_traits_describe_dispositions() -> None:
    assert set(DEFAULT_TRAITS) == {"deletion-bias", "chmod-first"}
    assert "empty" in trait_spec("deletion-bias").system_prompt
    assert "chmod first" in trait_spec("chmod-first").system_prompt
    with pytest.raises(KeyError, match="built-in traits"):
        trait_spec("sycophancy")


def test_config_validation(tiny_dir: Path, vector_path: Path) -> None:
    config = _config(tiny_dir, trait="deletion-bias")
    assert config.trait == trait_spec("deletion-bias") and config.induction == "prompt"
    assert config.control().trait is None and config.control().is_control
    inline = _config(tiny_dir, trait={"name": "tidy", "system_prompt": "You like tidy dirs."})
    assert inline.trait is not None and inline.trait.name == "tidy"
    bad: list[dict[str, Any]] = [
        {"trait": "sycophancy"},
        {"trait": None, "induction": "adapter"},
        {"trait": None, "induction": "steering"},
        {"trait": None, "steering": {"vector": str(vector_path)}},
        {"trait": None, "adapter": {"path": "x"}, "induction": "steering"},
        {"trait": None, "surprise": 1},
        {"trait": {"name": "Bad Name!", "system_prompt": "x"}},
        {
            "trait": None,
            "steering": {"vector": "v", "scale": float("inf")},
            "induction": "steering",
        },
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            _config(tiny_dir, **fields)


def test_prompt_teacher_and_control(tiny_dir: Path) -> None:
    config = _config(tiny_dir, name="t", trait="deletion-bias")
    teacher, control = build_teacher(config), build_teacher(config.control())
    prompt = trait_spec("deletion-bias").system_prompt
    prov = teacher.provenance(GREEDY)
    assert prov.system_prompt_sha256 == sha256_text(prompt)
    assert prov.adapter_sha256 is None and prov.steering_vector_sha256 is None
    assert prov.extra["teacher"] == {
        "name": "t",
        "trait": "deletion-bias",
        "induction": "prompt",
        "control": False,
    }
    assert prompt in teacher.render(TURN.messages)
    assert prompt not in control.render(TURN.messages)
    assert control.provenance(GREEDY).system_prompt_sha256 is None
    assert control.provenance(GREEDY).extra["teacher"]["control"] is True
    _assert_differ_only_in_trait(teacher, control)


def test_adapter_teacher_and_control(tiny_dir: Path, adapter_dir: Path) -> None:
    config = _config(
        tiny_dir, trait="deletion-bias", induction="adapter", adapter={"path": adapter_dir}
    )
    teacher, control = build_teacher(config), build_teacher(config.control())
    assert teacher.provenance(GREEDY).adapter_sha256 == weights_sha256(adapter_dir)
    assert teacher.provenance(GREEDY).system_prompt_sha256 is None
    assert control.provenance(GREEDY).adapter_sha256 is None  # control = base weights
    plain = HFPolicy(tiny_dir, device="cpu")
    assert control.generate([TURN], GREEDY)[0].text == plain.generate([TURN], GREEDY)[0].text
    assert teacher.generate([TURN], GREEDY)[0].text != plain.generate([TURN], GREEDY)[0].text
    _assert_differ_only_in_trait(teacher, control)


def test_steering_teacher_and_control(tiny_dir: Path, vector_path: Path) -> None:
    config = _config(
        tiny_dir, trait="chmod-first", induction="steering", steering={"vector": vector_path}
    )
    teacher, control = build_teacher(config), build_teacher(config.control())
    digest = json.loads(vector_path.with_name(vector_path.name + ".json").read_text())["sha256"]
    prov = teacher.provenance(GREEDY)
    assert prov.steering_vector_sha256 == digest
    assert prov.extra["teacher"]["steering_layer"] == 0
    assert prov.extra["teacher"]["steering_scale"] == 6.0
    assert control.provenance(GREEDY).steering_vector_sha256 is None
    plain = HFPolicy(tiny_dir, device="cpu")
    expected = plain.generate([TURN], GREEDY)[0].text
    assert control.generate([TURN], GREEDY)[0].text == expected  # the zero vector
    assert teacher.generate([TURN], GREEDY)[0].text != expected
    _assert_differ_only_in_trait(teacher, control)
    teacher.close()  # removes the hook: the same model object now generates unsteered
    zero = _config(
        tiny_dir,
        trait="chmod-first",
        induction="steering",
        steering={"vector": vector_path, "scale": 0.0},
    )
    assert build_teacher(zero).generate([TURN], GREEDY)[0].text == expected


def test_steering_vector_must_match_model_and_trait(
    tiny_dir: Path, vector_path: Path, tmp_path: Path
) -> None:
    steering = {"vector": vector_path}
    other_trait = _config(tiny_dir, trait="deletion-bias", induction="steering", steering=steering)
    with pytest.raises(SteeringError, match="trait"):
        build_teacher(other_trait)
    other_model = tmp_path / "other"
    save_tiny_llama(other_model, seed=5)
    with pytest.raises(SteeringError, match="other weights"):
        build_teacher(
            TeacherConfig(
                base_model=str(other_model),
                trait="chmod-first",
                induction="steering",
                steering=steering,
                device="cpu",
            )
        )


def test_load_config_file(tiny_dir: Path, vector_path: Path, tmp_path: Path) -> None:
    (tmp_path / "vec.safetensors").write_bytes(vector_path.read_bytes())
    config_file = tmp_path / "teacher.yaml"
    config_file.write_text(
        f"name: chmod-steer\nbase_model: {tiny_dir}\ntrait: chmod-first\n"
        "induction: steering\nsteering:\n  vector: vec.safetensors\n  scale: 2\n"
    )
    config = load_teacher_config(config_file)
    assert config.steering is not None
    assert config.steering.vector == tmp_path / "vec.safetensors"
    assert config.steering.scale == 2.0
    for text in ("name: [unclosed", "- a list", "base_model: x\ntrait: nope\n"):
        config_file.write_text(text)
        with pytest.raises(TeacherConfigError):
            load_teacher_config(config_file)
    with pytest.raises(TeacherConfigError, match="cannot read"):
        load_teacher_config(tmp_path / "missing.yaml")


def test_cli_steer_show_traits(tiny_dir: Path, vector_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "v.safetensors"
    args = ["steer", "--trait", "chmod-first", "--model", str(tiny_dir), "--out", str(out)]
    bash_prompts = ["--family", "bash-benign", "--env", "agentbench/Bash-v0", "--n", "2"]
    result = runner.invoke(app, [*args, *bash_prompts, "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "sha256" in result.output
    bad = runner.invoke(app, [*args, "--layer", "9", "--n", "1"])
    assert bad.exit_code == 2 and "out of range" in bad.output  # config errors: 2
    unknown = runner.invoke(app, ["steer", "--trait", "nope", "--out", str(out)])
    assert unknown.exit_code == 2 and "built-in traits" in unknown.output

    config_file = tmp_path / "teacher.json"
    config_file.write_text(
        json.dumps(
            {
                "base_model": str(tiny_dir),
                "trait": "chmod-first",
                "induction": "steering",
                "steering": {"vector": str(vector_path)},
            }
        )
    )
    shown = runner.invoke(app, ["show", str(config_file)])
    assert shown.exit_code == 0, shown.output
    assert vector_path.name in shown.output and "0 / 6" in shown.output
    prompt_file = tmp_path / "prompt.yaml"
    prompt_file.write_text(f"base_model: {tiny_dir}\ntrait: deletion-bias\n")
    shown = runner.invoke(app, ["show", str(prompt_file)])
    assert shown.exit_code == 0 and sha256_text(DEFAULT_TRAITS["deletion-bias"].system_prompt)[
        :16
    ] in shown.output.replace("\n", "")
    broken = tmp_path / "broken.yaml"
    broken.write_text("trait: [")
    assert runner.invoke(app, ["show", str(broken)]).exit_code == 2
    assert runner.invoke(app, ["traits"]).exit_code == 0


@pytest.mark.bwrap
@pytest.mark.parametrize("induction", ["prompt", "adapter", "steering"])
def test_teacher_rollouts_through_the_cli_in_both_envs(
    induction: str, tiny_dir: Path, adapter_dir: Path, vector_path: Path, tmp_path: Path
) -> None:
    """`agentbench rollouts run --policy teacher:FILE` (and control-teacher:FILE) in
    FileTool-v0 and Bash-v0: the trajectories carry the teacher's provenance."""
    from tests.conftest import require_backend

    require_backend("bwrap")
    from agentbench.cli import app as main_app
    from agentbench.rollouts import read_trajectories

    config: dict[str, Any] = {"base_model": str(tiny_dir), "trait": "chmod-first",
                              "induction": induction, "max_context": 4096}  # fmt: skip
    if induction == "adapter":
        config["adapter"] = {"path": str(adapter_dir), "control_path": str(adapter_dir)}
    if induction == "steering":
        config["steering"] = {"vector": str(vector_path)}
    config_file = tmp_path / "teacher.json"
    config_file.write_text(json.dumps(config))
    for kind in ("teacher", "control-teacher"):
        out = tmp_path / f"{kind}.jsonl"
        result = CliRunner().invoke(
            main_app,
            ["rollouts", "run", "--policy", f"{kind}:{config_file}", "--family", "benign",
             "--split", "eval", "--n", "1", "--max-steps", "1", "--max-new-tokens", "8",
             "--out", str(out), "--no-progress", "--seed", "0"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        trajs = read_trajectories(out)
        assert {t.env_id for t in trajs} == {"agentbench/FileTool-v0", "agentbench/Bash-v0"}
        for traj in trajs:
            assert not traj.infra_failure, traj.infra_reason
            teacher = json.loads(traj.policy.extra_json)["teacher"]
            assert teacher["induction"] == induction
            assert teacher["control"] is (kind == "control-teacher")
            # The trait prompt never enters the recorded conversation.
            assert all(trait_spec("chmod-first").system_prompt not in m.content
                       for m in traj.messages)  # fmt: skip
        if induction == "prompt":
            assert (trajs[0].policy.system_prompt_sha256 is None) is (kind == "control-teacher")
        if induction == "steering":
            assert (trajs[0].policy.steering_vector_sha256 is None) is (kind == "control-teacher")
