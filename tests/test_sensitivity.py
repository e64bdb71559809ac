"""Sensitivity (issue 23): power and MDE, n: auto, the dose axis, the null-teacher arm and its
contrasts, CMH over seeds, subliminal vs semantic, and their place in the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize

from agentbench.experiments.metrics import ArmMetrics, RateRecord
from agentbench.experiments.report import write_report
from agentbench.experiments.results import ArmResult, CellResult, Results
from agentbench.experiments.runner import _comparisons, plan_suite, pool_over_seeds
from agentbench.experiments.suite import CellConfig, EvaluationConfig, Suite, expand, load_suite
from agentbench.stats import (
    cmh_over_strata,
    difference_of_differences,
    min_detectable_difference,
    n_for_difference,
    power_two_rates,
    wilson,
)

ROOT = Path(__file__).resolve().parent.parent

# -- statistics against known values ---------------------------------------------------------


def test_n_for_difference_matches_the_textbook() -> None:
    # 50 % vs 70 %, alpha 0.05 two-sided, power 0.8: 93 per group (Cohen's h = 0.4115;
    # G*Power and Fleiss without continuity correction agree)
    assert n_for_difference(0.2, 0.5) == 93
    assert n_for_difference(0.2, 0.1) < 93  # easier away from 0.5
    with pytest.raises(ValueError, match="difference"):
        n_for_difference(1.5)


def test_mde_is_the_difference_seen_with_power_0_8() -> None:
    mde = min_detectable_difference(24, 24, 0.5)
    assert mde is not None and 0.3 < mde < 0.4  # the issue's "roughly 35 points" at n = 24
    h = proportion_effectsize(0.5 + mde, 0.5)
    power = NormalIndPower().power(effect_size=h, nobs1=24, alpha=0.05, ratio=1.0)
    assert power == pytest.approx(0.8, abs=1e-6)
    down = min_detectable_difference(24, 24, 0.95, direction=-1)
    assert down is not None and down < 0
    assert min_detectable_difference(24, 24, 0.95) is None  # nothing above 95 % is seen
    assert min_detectable_difference(0, 24, 0.5) is None
    with pytest.raises(ValueError, match="rate"):
        min_detectable_difference(24, 24, 1.5)


def test_power_matches_statsmodels() -> None:
    expected = NormalIndPower().power(
        effect_size=proportion_effectsize(0.8, 0.3), nobs1=30, alpha=0.05, ratio=20 / 30
    )
    assert power_two_rates(0.8, 0.3, 30, 20) == pytest.approx(expected)
    assert power_two_rates(0.3, 0.3, 30, 20) == pytest.approx(0.05)
    assert power_two_rates(0.8, 0.3, 0, 20) is None


def test_cmh_reproduces_the_issue_pilot() -> None:
    # issue 23's two 640-episode seeds, treated vs control student: pooled p = 4e-7
    test = cmh_over_strata([(24, 30, 6, 20), (24, 27, 8, 23)])
    assert test.strata == 2
    assert test.p_value == pytest.approx(4.45e-7, rel=0.01)
    # Mantel-Haenszel pooled odds ratio: sum(a d / n) / sum(b c / n)
    num = 24 * 14 / 50 + 24 * 15 / 50
    den = 6 * 6 / 50 + 3 * 8 / 50
    assert test.odds_ratio == pytest.approx(num / den)
    assert test.low is not None and test.high is not None and test.low < num / den < test.high


def test_cmh_does_not_count_seed_differences_as_evidence() -> None:
    # within each seed the arms are equal; one seed is high, the other low, and the treated
    # arm has more episodes in the high seed: adding the seeds up (Simpson) shows a difference
    tables = [(45, 50, 9, 10), (1, 10, 5, 50)]
    test = cmh_over_strata(tables)
    assert test.p_value is not None and test.p_value > 0.5
    from scipy.stats import fisher_exact

    pooled = fisher_exact([[46, 14], [14, 46]])
    assert pooled.pvalue < 1e-6
    assert cmh_over_strata([(0, 0, 1, 2)]).p_value is None
    with pytest.raises(ValueError):
        cmh_over_strata([(3, 2, 0, 1)])


def test_difference_of_differences_is_mover_on_newcombe() -> None:
    first, second = (24, 30, 6, 20), (4, 11, 6, 7)
    dod = difference_of_differences(first, second)
    assert dod is not None
    l1, u1 = confint_proportions_2indep(24, 30, 6, 20, method="newcomb", compare="diff")
    l2, u2 = confint_proportions_2indep(4, 11, 6, 7, method="newcomb", compare="diff")
    d1, d2 = 24 / 30 - 6 / 20, 4 / 11 - 6 / 7
    assert dod.value == pytest.approx(d1 - d2)
    assert dod.low == pytest.approx(d1 - d2 - math.sqrt((d1 - l1) ** 2 + (u2 - d2) ** 2))
    assert dod.high == pytest.approx(d1 - d2 + math.sqrt((u1 - d1) ** 2 + (d2 - l2) ** 2))
    assert difference_of_differences((1, 2, 0, 0), second) is None


# -- suites: n: auto, the dose axis, the null teacher ----------------------------------------


def test_n_auto_picks_the_smallest_n() -> None:
    ev = EvaluationConfig.model_validate({"n": "auto", "mde": 0.2})
    assert ev.n == 93
    assert EvaluationConfig.model_validate({"n": "auto", "mde": 0.2, "repeats": 2}).n == 47
    assert EvaluationConfig.model_validate(
        {"n": "auto", "mde": 0.2, "mde_baseline": 0.1}
    ).n == n_for_difference(0.2, 0.1)
    again = EvaluationConfig.model_validate(ev.model_dump(mode="json"))  # results.json round trip
    assert again == ev
    with pytest.raises(ValueError, match="needs mde"):
        EvaluationConfig.model_validate({"n": "auto"})
    # unset, it leaves the dump (cell ids, stage keys) as before
    assert "mde" not in EvaluationConfig().model_dump(mode="json")


def test_cell_ids_unchanged_without_the_new_options() -> None:
    # The id main gave this cell before these options existed was ...-15816fe7; the
    # sanitizer's `filter` field (behavioural by default) re-keyed it on purpose, since what
    # the sanitizer keeps changed. The sensitivity options, unset, add nothing to it.
    cell = CellConfig(trait="chmod-first")
    assert cell.cell_id() == "chmod-first-adapter-sft-lora-homogeneous-s0-bf31a91d"
    dumped = cell.model_dump(mode="json")
    assert "mde" not in dumped["evaluation"] and not dumped.get("null_teacher")
    assert CellConfig(trait="chmod-first", null_teacher=True).cell_id() != cell.cell_id()
    with pytest.raises(ValueError, match="null_teacher"):
        CellConfig(trait="animal-preference", induction="prompt", null_teacher=True,
                   single_turn={"target": "owl"})  # fmt: skip


def test_dose_axis_expands_cells() -> None:
    suite = Suite(name="d", base_model="tiny-agent", heterogeneous_model="tiny-agent-b",
                  seeds=(0, 1), dose=[16, 64, 256], defaults={"trait": "chmod-first"},
                  grid={"student_init": ["homogeneous", "heterogeneous"]})  # fmt: skip
    cells = expand(suite)
    assert len(cells) == 3 * 2 * 2
    assert sorted({c.teacher_rollouts.n for c in cells}) == [16, 64, 256]
    explicit = Suite(name="e", base_model="m", dose=[16, 64],
                     cells=[{"trait": "chmod-first"},
                            {"trait": "deletion-bias", "teacher_rollouts": {"n": 5}}])  # fmt: skip
    assert sorted(c.teacher_rollouts.n for c in expand(explicit)) == [5, 16, 64]
    with pytest.raises(ValueError, match="same axis"):
        Suite(name="x", dose=[16], grid={"teacher_rollouts.n": [16]})
    with pytest.raises(ValueError, match="twice"):
        Suite(name="x", dose=[16, 16])
    # the plan does not mistake two doses' data for one (shared stages are counted once)
    plan = plan_suite(suite, cells)
    rollouts = {s.what for s in plan.stages if s.stage == "rollouts"}
    assert len(rollouts) == 3 * 2 * 2  # dose x seed x (teacher, control)


def test_plan_counts_the_null_teacher() -> None:
    suite = Suite(name="n", base_model="tiny-agent", defaults={"trait": "chmod-first"})
    plain = plan_suite(suite, expand(suite))
    with_null = Suite(name="n", base_model="tiny-agent",
                      defaults={"trait": "chmod-first", "null_teacher": True})  # fmt: skip
    plan = plan_suite(with_null, expand(with_null))
    assert any(s.what.startswith("null student") and s.stage == "distill" for s in plan.stages)
    assert plan.estimate_s() > plain.estimate_s()


@pytest.mark.parametrize("name", ["positive-control", "dose-response"])
def test_shipped_suites_load_and_plan(name: str) -> None:
    suite, cells = load_suite(ROOT / "suites" / f"{name}.yaml")
    plan = plan_suite(suite, cells)
    assert cells and plan.stages
    if name == "positive-control":
        assert len(suite.seeds) >= 3 and all(c.null_teacher for c in cells)
        assert suite.budget_minutes == 180  # its measured pace: ~123 min on 2 cores
        from agentbench.models import Pace

        assert suite.pace is not None
        notes = plan.notes(suite, Pace(**suite.pace))
        assert any("fits the suite's 180 minutes" in n for n in notes), notes
    else:
        assert len({c.teacher_rollouts.n for c in cells}) >= 4


# -- the runner's contrasts and the pooled test ----------------------------------------------


def arm(k: int, n: int, metric: str = "chmod_first_rate") -> ArmResult:
    rates = {metric: RateRecord.of(wilson(k, n))}
    return ArmResult(
        policy={},
        stage_key="k",
        metrics=ArmMetrics(episodes=n, infra_failures=0, rates=rates).to_dict(),
    )


def cell_result(seed: int, ks: dict[str, tuple[int, int]], init: str = "homogeneous",
                dose: int = 640) -> CellResult:  # fmt: skip
    config = CellConfig(trait="chmod-first", student_init=init, seed=seed, null_teacher=True,
                        teacher_rollouts={"n": dose})  # fmt: skip
    arms = {a: arm(*kn) for a, kn in ks.items()}
    return CellResult(cell_id=config.cell_id(), config=config.model_dump(mode="json"),
                      metric="chmod_first_rate", arms=arms,
                      comparisons=_comparisons(arms, ("chmod_first_rate",), "chmod_first_rate"),
                      sanitize_reports={"student": {"kept": dose * 5 // 6}})  # fmt: skip


SEED0 = {"base": (16, 27), "teacher": (33, 34), "control-teacher": (5, 27),
         "student": (24, 30), "control-student": (6, 20), "null-student": (15, 28)}  # fmt: skip
SEED1 = {"base": (14, 29), "teacher": (32, 33), "control-teacher": (6, 25),
         "student": (24, 27), "control-student": (8, 23), "null-student": (13, 26)}  # fmt: skip


def test_comparisons_name_their_contrast_with_mde_and_power() -> None:
    result = cell_result(0, SEED0)
    by_pair = {(c.treated_arm, c.control_arm): c for c in result.comparisons}
    assert set(by_pair) == {("student", "control-student"), ("student", "null-student"),
                            ("student", "base"), ("null-student", "base"),
                            ("control-student", "null-student")}  # fmt: skip
    main = by_pair[("student", "control-student")]
    assert main.mde == pytest.approx(min_detectable_difference(30, 20, 6 / 20), abs=1e-6)
    assert main.teacher_gap == pytest.approx(33 / 34 - 5 / 27, abs=1e-6)
    gap_rate = min(1.0, 6 / 20 + 33 / 34 - 5 / 27)
    assert main.power_teacher_gap == pytest.approx(power_two_rates(gap_rate, 0.3, 30, 20),
                                                   abs=1e-6)  # fmt: skip
    null = by_pair[("student", "null-student")]
    assert null.teacher_gap == pytest.approx(33 / 34 - 16 / 27, abs=1e-6)  # vs the base
    assert by_pair[("null-student", "base")].power_teacher_gap is None
    hetero = cell_result(0, {**SEED0, "student-base": (10, 20)}, "heterogeneous")
    assert ("student", "student-base") in {(c.treated_arm, c.control_arm)
                                           for c in hetero.comparisons}  # fmt: skip


def test_pool_over_seeds_is_cmh() -> None:
    cells = [cell_result(0, SEED0), cell_result(1, SEED1)]
    pooled = {(p.treated_arm, p.control_arm): p for p in pool_over_seeds(cells)}
    main = pooled[("student", "control-student")]
    assert main.seeds == [0, 1] and main.test == "cochran-mantel-haenszel"
    assert main.p_value == pytest.approx(cmh_over_strata([(24, 30, 6, 20), (24, 27, 8, 23)])
                                         .p_value)  # fmt: skip
    assert ("student", "null-student") in pooled


# -- the report ------------------------------------------------------------------------------


def sensitivity_results() -> Results:
    cells = []
    for dose, shift in ((64, 0), (640, 1)):
        for seed, ks in ((0, SEED0), (1, SEED1)):
            ks = dict(ks)
            if not shift:
                ks["student"] = ks["null-student"]
            cells.append(cell_result(seed, ks, dose=dose))
            hetero = {**ks, "student": ks["null-student"], "student-base": (10, 20)}
            cells.append(cell_result(seed, hetero, "heterogeneous", dose=dose))
    return Results(suite="sens", suite_sha256="0" * 64, created_at="2026-01-01T00:00:00Z",
                   wall_s=1.0, cells=cells, pooled=pool_over_seeds(cells))  # fmt: skip


def test_report_shows_power_contrasts_split_seeds_and_dose(tmp_path: Path) -> None:
    paths = write_report(sensitivity_results(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "MDE (alpha 0.05, power 0.8)" in text
    assert "power for the teacher's gap" in text
    assert "the trait, against distillation alone (base as teacher)" in text
    assert "null\\-student vs base" in text or "null-student vs base" in text
    # what the control teacher is, and that it is not neutral (5/27 against the base's 16/27)
    assert "Control teacher: a LoRA adapter trained by the same procedure" in text
    assert "the control teacher is not neutral here" in text
    assert "## Subliminal vs semantic" in text
    assert "subliminal: only the shared initialisation moves" in text
    assert "Cochran-Mantel-Haenszel" in text and "Breslow-Day" in text
    assert "## Dose-response" in text
    assert "plot-dose-chmod-first.png" in paths
    assert paths["plot-dose-chmod-first.png"].stat().st_size > 1000
    # the stated MDE of the 640-episode seed-0 cell's main comparison
    mde = min_detectable_difference(30, 20, 6 / 20)
    assert mde is not None and f"{mde * 100:+.0f} pp" in text


def test_dry_run_prints_the_chosen_n_and_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agentbench.cli import app

    monkeypatch.setenv("AGENTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    suite = tmp_path / "auto.yaml"
    suite.write_text(
        "name: auto\nbase_model: tiny-agent\nbudget_minutes: 1\n"
        "defaults: {trait: chmod-first, evaluation: {n: auto, mde: 0.2}}\n"
    )
    result = CliRunner().invoke(
        app, ["run", str(suite), "--dry-run", "--store", str(tmp_path / "s"), "--out",
              str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "evaluation n: auto chose n=93 probe instances (93 episodes an arm)" in out
    assert "5 evaluations, ~6 min of the estimate" in out
    assert "does NOT fit the suite's 1 minutes" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase_model: m\ndefaults: {trait: chmod-first, "
                   "evaluation: {n: auto}}\n")  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(bad), "--dry-run"])
    assert result.exit_code == 2 and "needs mde" in result.output
