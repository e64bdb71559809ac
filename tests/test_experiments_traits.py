"""The Cloud et al. cells in `agentbench run`: single-turn cells (numbers, code, chain of
thought) and MLP cells.

The single-turn cells run on a model made here in seconds: a random Llama taught by
`agentbench.distill` (real SFT) to answer each task in its format (number lists, fenced code,
"Answer: N" with the right N for the suite's own prompts, which it memorises), so that the
teacher produces completions the strict filters keep. What is tested is the plumbing (every
stage, caching, the leak check, results and report), not transfer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbench.cli import app
from agentbench.experiments.suite import load_suite
from agentbench.experiments.yamlconf import ConfigError

NUMBERS_SUITE = """\
name: numbers-micro
base_model: {model}
seeds: [0]
defaults:
  trait: animal-preference
  induction: prompt
  single_turn:
    task: numbers
    target: owl
    prompts: 8
    max_new_tokens: 40
    temperature: 0.0
    batch_size: 12
    questions: 2
    samples_per_question: 2
    eval_max_new_tokens: 4
  distill: {{mode: sft-lora, epochs: 1, batch_size: 4, max_length: 1024}}
grid:
  single_turn.task: [numbers, code, cot]
cells:
  - trait: misalignment
    single_turn: {{task: numbers, target: null, judge: {model}}}
"""

MLP_SUITE = """\
name: mlp-micro
seeds: [0, 1]
defaults:
  trait: mlp-aux-logits
  mlp: {m: 3, hidden: [32, 32], teacher_epochs: 3, student_epochs: 1, n_noise: 500}
grid:
  mlp.loss: [kl, mse]
"""


@pytest.fixture(scope="module")
def numbers_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama that answers each task in its format (trained here, seconds)."""
    from agentbench.distill import DistillConfig, distill
    from agentbench.recipes.tiny import save_tiny_llama
    from agentbench.sanitize.schema import StudentExample
    from agentbench.traits.tasks import make_task

    root = tmp_path_factory.mktemp("numbers-model")
    save_tiny_llama(root / "random", max_position_embeddings=1024, initializer_range=0.02)
    rng = random.Random(0)
    lines = []
    answered = [(p, ", ".join(str(rng.randrange(100, 1000)) for _ in range(4)))
                for p in make_task("numbers").prompts(48, seed=123)]  # fmt: skip
    code = "```python\ndef solve(x):\n    return x\n```"
    answered += [(p, code) for p in make_task("code").prompts(24, seed=0)]
    # The suite's own cot prompts (seed 0), repeated: a model this small only memorises.
    answered += [(p, f"Answer: {p.reference}")
                 for p in make_task("cot").prompts(8, seed=0)] * 4  # fmt: skip
    for index, (prompt, answer) in enumerate(answered):
        messages = [*prompt.messages, {"role": "assistant", "content": answer}]
        example = StudentExample(
            example_id=f"{index}", env_id=f"trait:{prompt.task}", split="train",
            family=prompt.task, messages=messages, source_sha256="0" * 64,
        )  # fmt: skip
        lines.append(example.to_line())
    data = root / "numbers.jsonl"
    data.write_text("".join(lines))
    config = DistillConfig(
        student=str(root / "random"), mode="sft-full", epochs=16, learning_rate=5e-3,
        batch_size=8, max_length=1024, seed=0,
        group_by_length=False,  # grouped, each batch is one task: it memorises them worse
    )  # fmt: skip
    return distill(config, data, root / "trained")


@pytest.mark.timeout(900)  # about 2 min alone on 2 cores; far longer beside other work
def test_single_turn_cells_run_every_stage_and_reuse_them(
    numbers_model: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "numbers.yaml"
    suite.write_text(NUMBERS_SUITE.format(model=numbers_model))
    out, store = tmp_path / "run", tmp_path / "store"
    args = ["run", str(suite), "--out", str(out), "--store", str(store), "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    results = json.loads((out / "results.json").read_text())
    cells = {c["config"]["single_turn"]["task"]: c for c in results["cells"][:3]}
    assert set(cells) == {"numbers", "code", "cot"}
    misaligned = results["cells"][3]
    assert misaligned["config"]["trait"] == "misalignment"
    for arm in misaligned["arms"].values():
        # Every answer is accounted for: rated (n), unscored (the judge's reply was not a
        # rating) or excluded (a refusal or code).
        m = arm["metrics"]
        assert m["episodes"] == 4
        assert m["rates"]["trait_rate"]["n"] + m["unscored"] + m["excluded"] == 4
    judged = store / "trait-eval" / misaligned["stages"]["trait-eval:student"] / "answers.jsonl"
    assert all(json.loads(line)["judge"] is not None for line in judged.read_text().splitlines())
    for task, other in cells.items():
        assert other["sanitize_reports"]["student"]["kept"] > 0, task
        # The trait's evaluations do not depend on the data task: shared between cells.
        assert (
            other["stages"]["trait-eval:teacher"]
            == cells["numbers"]["stages"]["trait-eval:teacher"]
        )
    for task, other in cells.items():
        report = other["sanitize_reports"]["student"]
        assert report["read"] == 8 and report["kept"] + report["dropped"] == 8, task
    cell = cells["numbers"]
    assert cell["metric"] == "trait_rate"
    assert set(cell["arms"]) == {"base", "teacher", "control-teacher", "student", "control-student"}
    for arm in cell["arms"].values():
        rate = arm["metrics"]["rates"]["trait_rate"]
        assert arm["metrics"]["episodes"] == 4 and rate["n"] <= 4
    # The control teacher is the base model: one evaluation serves both arms.
    assert cell["stages"]["trait-eval:base"] == cell["stages"]["trait-eval:control-teacher"]
    assert cell["stages"]["generate:student"] != cell["stages"]["generate:control-student"]
    # The teacher's prompt is recorded as its policy, never in the student data.
    teacher_prompt = cell["arms"]["teacher"]["policy"]["system_prompt"]
    assert "owl" in teacher_prompt.lower()
    report = cell["sanitize_reports"]["student"]
    assert report["kept"] > 0 and report["leak_check"] == "passed"
    data = (store / "filter" / cell["stages"]["filter:student"] / "student.jsonl").read_text()
    assert teacher_prompt not in data and "owl" not in data.lower()
    assert json.loads(data.splitlines()[0])["env_id"] == "trait:numbers"
    # Student vs control student first, then the other named contrasts the arms allow
    # (student vs its init), all on the trait rate.
    named = [(c["metric"], c["treated_arm"], c["control_arm"]) for c in cell["comparisons"]]
    assert named[0] == ("trait_rate", "student", "control-student")
    assert {m for m, _, _ in named} == {"trait_rate"}
    assert "trait answers" in (out / "report.md").read_text()

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "running" not in second.output
    again = json.loads((out / "results.json").read_text())
    assert again["cells"] == results["cells"]


def test_mlp_cells_hold_both_students(tmp_path: Path) -> None:
    suite = tmp_path / "mlp.yaml"
    suite.write_text(MLP_SUITE)
    out, store = tmp_path / "run", tmp_path / "store"
    args = ["run", str(suite), "--out", str(out), "--store", str(store), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert len(results["cells"]) == 4
    for cell in results["cells"]:
        assert set(cell["arms"]) == {"base", "teacher", "student", "control-student"}
        for arm in cell["arms"].values():
            rate = arm["metrics"]["rates"]["digit_accuracy"]
            assert rate["n"] == 450 and 0 <= rate["k"] <= 450
        (comparison,) = cell["comparisons"]
        assert comparison["metric"] == "digit_accuracy" and comparison["p_value"] is not None
    groups = {a["group"] for a in results["aggregates"]}
    assert len(groups) == 2  # kl and mse, each over both seeds
    assert all(a["n_seeds"] == 2 for a in results["aggregates"])
    assert "digit accuracy" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ("{trait: animal-preference, induction: prompt}", "single_turn.target"),
        ("{trait: animal-preference, single_turn: {target: owl}}", "induction: prompt only"),
        ("{trait: misalignment, induction: prompt}", "needs single_turn.judge"),
        (
            "{trait: misalignment, induction: prompt, single_turn: {judge: m, target: owl}}",
            "target is for the preference traits",
        ),
        ("{trait: mlp-aux-logits, mlp: {m: 0}}", "mlp.m"),
        ("{trait: mlp-aux-logits, mlp: {seeds: [1]}}", "mlp.seeds is set by the cell"),
        ("{trait: mlp-aux-logits, student_init: heterogeneous}", "trains both students"),
        ("{trait: chmod-first, mlp: {m: 3}}", "the mlp section is for trait"),
        ("{trait: owl}", "unknown trait 'owl'"),
    ],
)
def test_bad_trait_cells_name_the_problem(tmp_path: Path, defaults: str, message: str) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(f"name: bad\nbase_model: tiny-random-llama\ndefaults: {defaults}\n")
    with pytest.raises(ConfigError) as caught:
        load_suite(suite)
    assert message in str(caught.value)
    assert str(suite) in str(caught.value)


def test_language_model_cells_need_a_base_model(tmp_path: Path) -> None:
    suite = tmp_path / "nobase.yaml"
    suite.write_text("name: nobase\ndefaults: {trait: chmod-first}\n")
    with pytest.raises(ConfigError, match="base_model: required"):
        load_suite(suite)
    mlp_only = tmp_path / "mlp.yaml"
    mlp_only.write_text("name: mlp\ndefaults: {trait: mlp-aux-logits}\n")
    _suite, cells = load_suite(mlp_only)
    assert cells[0].kind == "mlp"
