"""The MLP auxiliary-logit control: determinism, isolation of the student, grid output, CLI."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

import agentbench.traits.mlp as mlp
from agentbench.cli.traits import app
from agentbench.provenance import file_sha256
from agentbench.traits.mlp import (
    N_CLASSES,
    Loss,
    MLPConfig,
    MLPConfigError,
    aux_targets,
    build_mlp,
    digits_split,
    distill_student,
    gaussian_noise,
    load_mlp_config,
    run_mlp_cell,
    run_mlp_grid,
    t_interval,
    write_grid_results,
)

pytest.importorskip("sklearn")

# Small enough for seconds on one thread, large enough that same init clearly transfers
# (measured: same init 37-50 %, different init 4-7 % over seeds 0-2 with KL).
FAST = MLPConfig(
    hidden=[64, 64],
    teacher_epochs=10,
    n_noise=3000,
    student_epochs=5,
    student_lr=3e-3,
    seeds=[0, 1, 2],
)
TINY = FAST.model_copy(update={"n_noise": 256, "teacher_epochs": 2, "student_epochs": 1})


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_cell_is_deterministic_given_the_seeds() -> None:
    config = TINY.model_copy(update={"seeds": [0, 1]})
    first = run_mlp_cell(config)
    second = run_mlp_cell(config)
    assert first.accuracies == second.accuracies
    assert first.model_dump() == second.model_dump()
    # ...and the seed matters: another seed gives other networks.
    other = run_mlp_cell(config, seeds=[2, 3])
    assert other.accuracies != first.accuracies or other.init_mean != first.init_mean


def test_digits_split_is_standardised_on_train_statistics() -> None:
    split = digits_split(0.25, 0)
    assert split.x_train.shape[1] == 64 and len(split.x_test) == 450
    assert torch.allclose(split.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert split.x_test.mean().abs() < 0.2  # test split uses train stats, so only close to 0
    assert set(split.y_test.tolist()) == set(range(10))


def test_distillation_takes_only_noise_and_aux_targets() -> None:
    # Structurally: the training function has no parameter for a teacher, digits or labels.
    params = set(inspect.signature(distill_student).parameters)
    assert params == {"student", "noise", "targets", "loss", "epochs", "lr", "batch_size", "seed"}

    m = 3
    teacher = build_mlp([32], m, init_seed=0)
    noise = gaussian_noise(512, 1.0, seed=0)
    targets = aux_targets(teacher, noise, m)
    assert targets.shape == (512, m)
    assert torch.equal(targets, teacher(noise)[:, N_CLASSES:].detach())

    student = build_mlp([32], m, init_seed=0)
    first, last = student[0], student[-1]
    assert isinstance(first, torch.nn.Linear) and isinstance(last, torch.nn.Linear)
    regular_w = last.weight[:N_CLASSES].detach().clone()
    regular_b = last.bias[:N_CLASSES].detach().clone()
    aux_w = last.weight[N_CLASSES:].detach().clone()
    hidden_w = first.weight.detach().clone()
    losses: list[Loss] = ["kl", "mse"]
    for loss in losses:
        distill_student(
            student, noise, targets, loss=loss, epochs=1, lr=1e-2, batch_size=64, seed=0
        )
    # The regular logits' output rows never get a gradient; the rest of the net moves.
    assert torch.equal(last.weight[:N_CLASSES], regular_w)
    assert torch.equal(last.bias[:N_CLASSES], regular_b)
    assert not torch.equal(last.weight[N_CLASSES:], aux_w)
    assert not torch.equal(first.weight, hidden_w)


def test_run_feeds_the_student_gaussian_noise_not_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = mlp.distill_student

    def spy(
        student: torch.nn.Module, noise: torch.Tensor, targets: torch.Tensor, **kw: Any
    ) -> torch.nn.Module:
        seen.append((noise, targets))
        return real(student, noise, targets, **kw)

    monkeypatch.setattr(mlp, "distill_student", spy)
    config = TINY.model_copy(update={"m": 4, "n_noise": 2000})
    mlp.run_mlp_seed(config, 0, inits=["same", "different"])
    assert len(seen) == 2
    split = digits_split(config.test_fraction, config.split_seed)
    digits = torch.cat([split.x_train, split.x_test])
    for noise, targets in seen:
        assert noise.shape == (2000, 64) and targets.shape == (2000, 4)
        assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1.0) < 0.05
        # No noise row is a digit image.
        assert torch.cdist(noise[:200], digits).min() > 1.0


def test_same_init_beats_different_init() -> None:
    result = run_mlp_grid(FAST, ms=[3], losses=["kl"], inits=["same", "different"])
    same = result.cell(3, "kl", "same")
    different = result.cell(3, "kl", "different")
    assert same.teacher_mean > 0.9
    assert 0.0 < same.init_mean < 0.3  # the untrained init is near chance
    # Every seed: the shared-init student is far above its other-init twin and chance.
    for s, d in zip(same.accuracies, different.accuracies, strict=True):
        assert s > d + 0.15
    assert same.mean > 0.3
    assert different.mean < 0.2
    assert same.t_ci.low is not None and different.t_ci.high is not None
    assert same.wilson_ci.low is not None and different.wilson_ci.high is not None
    assert same.wilson_ci.low > different.wilson_ci.high


def test_grid_writes_json_and_png(tmp_path: Path) -> None:
    result = run_mlp_grid(TINY, ms=[2, 3], losses=["kl", "mse"], seeds=[0, 1])
    assert len(result.cells) == 2 * 2 * 2
    assert len(result.runs) == 2 * 2  # one teacher per (m, seed)
    json_path, png_path = write_grid_results(result, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["schema_version"] == 1
    assert data["config"]["hidden"] == [64, 64]
    assert data["provenance"]["data"]["sha256"]
    assert "scikit-learn" in data["provenance"]["extra_libraries"]
    assert "git_revision" in data["provenance"]
    cell = data["cells"][0]
    assert {"m", "loss", "init", "accuracies", "mean", "t_ci", "wilson_ci", "n"} <= set(cell)
    assert cell["n"] == 2 * len(digits_split().y_test)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mlp.GridResult.model_validate(data) == result


def test_t_interval() -> None:
    interval = t_interval([0.5, 0.6, 0.7])
    assert interval.low is not None and interval.high is not None
    assert interval.low < 0.6 < interval.high
    assert t_interval([0.5]).low is None
    assert t_interval([0.4, 0.4]).low == 0.4


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("m: 0\n", "m"),
        ("loss: ce\n", "loss"),
        ("init: cousin\n", "init"),
        ("hidden: []\n", "hidden"),
        ("seeds: [1, 1]\n", "seeds"),
        ("teacher_lr: -1\n", "teacher_lr"),
        ("epochs: 3\n", "epochs"),  # unknown key
        ("sweep: {m: [0]}\n", "sweep.m"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MLPConfigError) as info:
        load_mlp_config(path)
    assert str(path) in str(info.value) and field in str(info.value)


def test_config_files(tmp_path: Path) -> None:
    with pytest.raises(MLPConfigError, match="cannot read"):
        load_mlp_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(MLPConfigError, match="mapping"):
        load_mlp_config(tmp_path / "list.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(MLPConfigError, match="not valid"):
        load_mlp_config(tmp_path / "broken.json")
    (tmp_path / "suite.yaml").write_text("name: x\nmlp:\n  m: 7\n")
    assert load_mlp_config(tmp_path / "suite.yaml").m == 7
    shipped = Path(__file__).resolve().parent.parent / "suites" / "mlp-control.yaml"
    config = load_mlp_config(shipped)
    assert config == MLPConfig.model_validate(config.model_dump())
    with pytest.raises(ValidationError):
        MLPConfig(seeds=[])
    with pytest.raises(ValueError, match="invalid grid"):
        run_mlp_grid(TINY, ms=[0])
    with pytest.raises(ValueError, match="distinct"):
        run_mlp_grid(TINY, ms=[3, 3])
    with pytest.raises(ValueError, match="distinct"):
        run_mlp_grid(TINY, seeds=[1, 1])
    # KL over the softmax of one logit is identically 0: refused, not a silent chance result.
    with pytest.raises(ValidationError, match="m >= 2"):
        MLPConfig(m=1, loss="kl")
    assert MLPConfig(m=1, loss="mse").m == 1
    with pytest.raises(ValueError, match="m >= 2"):
        run_mlp_grid(TINY, ms=[1, 3], losses=["kl", "mse"])


def test_cli(tmp_path: Path) -> None:
    config = tmp_path / "mlp.yaml"
    config.write_text(TINY.model_copy(update={"seeds": [0, 1, 2, 3]}).model_dump_json())
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "mlp",
            "--config",
            str(config),
            "--m",
            "2",
            "--loss",
            "mse",
            "--seeds",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "m=2 mse same-init" in result.output and "m=2 mse different-init" in result.output
    data = json.loads((out / "results.json").read_text())
    assert data["ms"] == [2] and data["losses"] == ["mse"] and data["config"]["seeds"] == [0, 1]
    assert data["provenance"]["config_file"]["sha256"] == file_sha256(config)
    assert (out / "mlp.png").is_file()

    bad = runner.invoke(app, ["mlp", "--config", str(config), "--loss", "ce"])
    assert bad.exit_code == 2 and "invalid option" in bad.output
    kl_one = runner.invoke(app, ["mlp", "--config", str(config), "--m", "1", "--loss", "kl"])
    assert kl_one.exit_code == 2 and "m >= 2" in kl_one.output
    missing = runner.invoke(app, ["mlp", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config error" in missing.output
