"""`run_suite`: every cell of a suite, stage by stage, into `results.json` and a report.

Per cell:

    teacher (+ control)  ->  rollouts on the training tasks (teacher, control teacher)
      -> sanitize (each)  ->  distill (treated student, control student)
      -> evaluate on the held-out probes: base, teacher, control teacher, both students
         (and the student's own base in heterogeneous cells)

Stages are cached in a `StageStore` by their inputs, so a second run reuses everything, a
killed run resumes at the stage it was in (that stage starts over; every finished one is
reused) and ends with the same results, and cells that share a stage (the base model's
evaluation) compute it once. `plan_suite` lists the stages a
run would execute without running any.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentbench.experiments.executor import (
    Executor,
    LocalExecutor,
    StageGraph,
    StageTask,
    collecting,
)
from agentbench.experiments.metrics import (
    ArmMetrics,
    RateRecord,
    across_seeds,
    arm_metrics,
    contrast,
    transfer_score,
)
from agentbench.experiments.results import (
    Aggregate,
    ArmResult,
    CellResult,
    ComparisonResult,
    PooledComparison,
    Results,
)
from agentbench.experiments.stages import (
    METRICS,
    PolicyRef,
    StageResult,
    base_policy,
    distill_stage,
    evaluate_stage,
    rollouts_stage,
    sanitize_stage,
    teacher_stage,
)
from agentbench.experiments.store import StageStore, atomic_write
from agentbench.experiments.suite import CellConfig, Suite, canonical, suite_sha256

if TYPE_CHECKING:
    from agentbench.models import ModelRecipe, Pace

Log = Callable[[str], None]
COMPARED_METRICS = (
    "deletion_rate",
    "deletion_intent_rate",
    "p_del",
    "chmod_first_rate",
    "success_rate",
    "valid_action_rate",
    "command_ran_rate",
)


@dataclass
class PlannedStage:
    cell: str
    stage: str
    what: str
    episodes: int = 0
    train: bool = False
    scripted: bool = False
    """Episodes played by the scripted oracles (no model: about a quarter of the cost)."""
    env: str | None = None
    """The environment its episodes run in, where it is one (for the pace per env)."""


@dataclass
class Plan:
    cells: list[CellConfig]
    stages: list[PlannedStage] = field(default_factory=list)

    def estimate_s(self, pace: Pace | None = None) -> float:
        """A rough cost at `pace` (seconds per episode by environment, per teacher stage and
        per student; stated in the output). None: tiny-agent's on 2 cores
        (`agentbench.models.default_pace()`); the CLI passes the base model's measured pace
        where its recipe has one."""
        if pace is None:
            from agentbench.models import default_pace

            pace = default_pace()
        seen: set[tuple[str, str]] = set()
        total = 0.0
        for s in self.stages:
            if (s.stage, s.what) in seen:
                continue
            seen.add((s.stage, s.what))
            per_episode = pace.episode_seconds(s.env)
            if s.scripted:
                per_episode /= 4
            total += s.episodes * per_episode + (pace.stage_seconds(s.stage) if s.train else 0.0)
        return total

    def notes(self, suite: Suite, pace: Pace | None = None) -> list[str]:
        """What a dry run adds below its estimate: the n that `evaluation: {n: auto}` chose
        per cell, and whether the estimate fits the suite's `budget_minutes`."""
        out = []
        chosen: dict[tuple[int, float, float, int], list[str]] = {}
        for cell in self.cells:
            ev = cell.evaluation
            if ev.mde is not None:
                key = (ev.n, ev.mde, ev.mde_baseline, ev.repeats)
                chosen.setdefault(key, []).append(cell.cell_id())
        if chosen and pace is None:
            from agentbench.models import default_pace

            pace = default_pace()
        for (n, mde, baseline, repeats), ids in chosen.items():
            per_arm = n * repeats
            evaluations = {(s.what, s.env): s.episodes for s in self.stages
                           if s.stage == "evaluate" and s.cell in ids}  # fmt: skip
            assert pace is not None
            cost = sum(e * pace.episode_seconds(env) for (_, env), e in evaluations.items())
            out.append(
                f"evaluation n: auto chose n={n} probe instances ({per_arm} episodes an arm) "
                f"to detect a difference of {mde:g} from a control at {baseline:g} (alpha "
                f"0.05, power 0.8) in {len(ids)} cell(s): {len(evaluations)} evaluations, "
                f"~{cost / 60:.0f} min of the estimate"
            )
        if suite.budget_minutes is not None:
            minutes = self.estimate_s(pace) / 60
            verdict = "fits" if minutes <= suite.budget_minutes else "does NOT fit"
            out.append(
                f"budget: the estimate (~{minutes:.0f} min) {verdict} the suite's "
                f"{suite.budget_minutes:g} minutes on 2 CPU cores"
            )
        return out


def plan_suite(suite: Suite, cells: list[CellConfig]) -> Plan:
    """What `run_suite` would do, stage by stage (shared stages listed once per cell)."""
    plan = Plan(cells)
    for cell in cells:
        if cell.kind != "agentic":
            plan.stages += _plan_trait_cell(suite, cell)
            continue
        cid = cell.cell_id()
        ev = cell.evaluation
        n_eval = ev.n * ev.repeats * len(cell.probe_families)
        n_roll = (
            cell.teacher_rollouts.n
            * cell.teacher_rollouts.repeats
            * len(cell.teacher_rollouts.families)
        )
        student_base = _student_base(suite, cell)
        t = cell.teacher_training
        demos = 2 * (t.probe_instances + t.benign_instances)
        # `what` names the work itself, so stages shared by cells are counted once.
        teach = f"{cell.trait}/{cell.induction}/s{cell.seed}"
        data = f"{teach}, {n_roll} episodes"  # the dose: cells that sweep it share no data
        student = f"{data} -> {student_base} ({cell.distill.mode})"
        env = cell.env_id
        plan.stages += [
            PlannedStage(cid, "teacher", f"{suite.base_model}/{teach}",
                         demos if cell.induction == "adapter" else 0,
                         cell.induction != "prompt", scripted=True, env=env),
            PlannedStage(cid, "evaluate", f"base {suite.base_model} on {cell.trait}", n_eval,
                         env=env),
            PlannedStage(cid, "evaluate", f"teacher {teach}", n_eval, env=env),
            PlannedStage(cid, "evaluate", f"control teacher {teach}", n_eval, env=env),
            PlannedStage(cid, "rollouts", f"teacher {data}", n_roll, env=env),
            PlannedStage(cid, "rollouts", f"control teacher {data}", n_roll, env=env),
            PlannedStage(cid, "sanitize", f"teacher {data}"),
            PlannedStage(cid, "sanitize", f"control teacher {data}"),
            PlannedStage(cid, "distill", f"student {student}", train=True),
            PlannedStage(cid, "distill", f"control student {student}", train=True),
            PlannedStage(cid, "evaluate", f"student {student}", n_eval, env=env),
            PlannedStage(cid, "evaluate", f"control student {student}", n_eval, env=env),
        ]  # fmt: skip
        if cell.null_teacher:  # the base as teacher: its data is the trait's own seed's
            null = f"{suite.base_model}/{cell.trait}/s{cell.seed}, {n_roll} episodes"
            plan.stages += [
                PlannedStage(cid, "rollouts", f"null teacher {null}", n_roll, env=env),
                PlannedStage(cid, "sanitize", f"null teacher {null}"),
                PlannedStage(cid, "distill", f"null student {null} -> {student_base} "
                             f"({cell.distill.mode})", train=True),
                PlannedStage(cid, "evaluate", f"null student {null} -> {student_base} "
                             f"({cell.distill.mode})", n_eval, env=env),
            ]  # fmt: skip
        if student_base != suite.base_model:
            plan.stages.append(
                PlannedStage(
                    cid, "evaluate", f"base {student_base} on {cell.trait}", n_eval, env=env
                )
            )
    return plan


GPU_STAGES = frozenset({"teacher", "rollouts", "evaluate", "distill", "generate", "trait-eval"})
"""Stage kinds that hold a GPU on a cluster (the others are a few seconds of CPU)."""


def _gpu_pace() -> Pace:
    """An assumed pace of GPU stages for 3-8B models (one H100-class GPU: vLLM rollouts,
    PEFT LoRA training). Not measured by agentbench yet: scripts/gpu-check.sh measures the
    rollout pace; replace these figures with its output when a GPU was lent."""
    from agentbench.models import Pace

    return Pace(
        episode_s=0.5, train_s=900.0, teacher_s=1200.0,
        measured="assumed for a 3-8B model on one H100-class GPU (vLLM batched rollouts of "
        "~10 turns at ~0.5 s an episode amortised; LoRA r16 over 400 trajectories ~15 min; "
        "a teacher's trait and control adapters ~20 min); not measured here",
    )  # fmt: skip


def stage_graph(suite: Suite, cells: list[CellConfig]) -> StageGraph:
    """The run's stages with their dependencies, collected without running any (a stage's
    key depends only on configs and input keys)."""
    import tempfile

    graph = StageGraph()
    store = StageStore(Path(tempfile.gettempdir()) / "agentbench-plan-store")  # never written
    with collecting(graph):
        for cell in cells:
            collect_cell(suite, cell, store, log=lambda _: None)
    return graph


def _task_seconds(task: StageTask, pace: Pace) -> float:
    """A stage's cost at `pace`, from its own config (episodes, training)."""
    config = task.config if isinstance(task.config, dict) else {}
    env = config.get("env")
    if task.stage in ("rollouts", "evaluate"):
        st = config["settings"]
        families = config.get("families") or st["families"]
        return st["n"] * st["repeats"] * len(families) * pace.episode_seconds(env)
    if task.stage == "teacher":
        t = config.get("training")
        demos = 2 * (t["probe_instances"] + t["benign_instances"]) if t else 0
        train = pace.stage_seconds("teacher") if config.get("induction") != "prompt" else 0.0
        return demos * pace.episode_seconds(env) / 4 + train
    if task.stage in ("distill", "mlp"):
        return pace.stage_seconds(task.stage)
    return 1.0


def schedule_seconds(graph: StageGraph, pace: Pace, gpus: int) -> float:
    """The makespan of `graph` on `gpus` GPUs: list scheduling in the graph's order, each GPU
    stage on the GPU that frees first once its inputs are published, CPU stages at once."""
    free = [0.0] * gpus
    finished: dict[str, float] = {}
    for task in graph.tasks.values():
        ready = max((finished[d] for d in task.deps), default=0.0)
        cost = _task_seconds(task, pace)
        if task.stage in GPU_STAGES:
            slot = min(range(gpus), key=lambda i: max(free[i], ready))
            start = max(free[slot], ready)
            free[slot] = start + cost
            finished[task.id] = start + cost
        else:
            finished[task.id] = ready + cost
    return max(finished.values(), default=0.0)


def gpu_estimate_lines(suite: Suite, cells: list[CellConfig], gpus: int) -> list[str]:
    """A dry run's cluster estimate: distinct stages, and hours on 1 and on `gpus` GPUs."""
    graph = stage_graph(suite, cells)
    pace = _gpu_pace()
    kinds: dict[str, int] = {}
    for task in graph.tasks.values():
        kinds[task.stage] = kinds.get(task.stage, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
    one, many = schedule_seconds(graph, pace, 1), schedule_seconds(graph, pace, gpus)
    lines = [f"stage graph: {len(graph.tasks)} distinct stages ({counts})",
             f"GPU estimate: ~{one / 3600:.1f} h on 1 GPU"]  # fmt: skip
    if gpus > 1:
        lines[-1] += f", ~{many / 3600:.1f} h on {gpus} GPUs (x{one / max(many, 1e-9):.1f})"
    lines.append(f"pace: {pace.describe()} ({pace.measured})")
    return lines


def _plan_trait_cell(suite: Suite, cell: CellConfig) -> list[PlannedStage]:
    """A single-turn or MLP cell's stages (`episodes` counts completions and answers)."""
    cid = cell.cell_id()
    if cell.kind == "mlp":
        return [PlannedStage(cid, "mlp", f"mlp {cell.cell_id()}", train=True)]
    st = cell.single_turn
    student_base = _student_base(suite, cell)
    answers = (st.questions or 50) * st.samples_per_question
    teach = f"{cell.trait}/{st.target or '-'}/{st.task}/s{cell.seed}"
    student = f"{teach} -> {student_base} ({cell.distill.mode})"
    stages = [
        PlannedStage(cid, "trait-eval", f"base {suite.base_model} on {cell.trait}", answers),
        PlannedStage(cid, "trait-eval", f"teacher {teach}", answers),
        PlannedStage(cid, "generate", f"teacher {teach}", st.prompts),
        PlannedStage(cid, "generate", f"control teacher {teach}", st.prompts),
        PlannedStage(cid, "filter", f"teacher {teach}"),
        PlannedStage(cid, "filter", f"control teacher {teach}"),
        PlannedStage(cid, "distill", f"student {student}", train=True),
        PlannedStage(cid, "distill", f"control student {student}", train=True),
        PlannedStage(cid, "trait-eval", f"student {student}", answers),
        PlannedStage(cid, "trait-eval", f"control student {student}", answers),
    ]
    if student_base != suite.base_model:
        stages.append(
            PlannedStage(cid, "trait-eval", f"base {student_base} on {cell.trait}", answers)
        )
    return stages


def _student_base(suite: Suite, cell: CellConfig) -> str:
    if cell.student_init == "heterogeneous":
        if not suite.heterogeneous_model:
            raise ValueError(
                f"cell {cell.cell_id()} is heterogeneous but the suite names no heterogeneous_model"
            )
        return suite.heterogeneous_model
    if suite.base_model is None:
        raise ValueError(f"cell {cell.cell_id()} needs the suite's base_model")
    return suite.base_model


def _metrics(stage: StageResult) -> dict[str, Any]:
    """An evaluate stage's metrics, recomputed from its trajectories (cheap), so that a
    metric added or redefined later applies to cached stages as well (the stage's own
    metrics.json records what was computed when it ran)."""
    from agentbench.experiments.stages import TRAJECTORIES
    from agentbench.rollouts import read_trajectories

    return arm_metrics(read_trajectories(stage.path / TRAJECTORIES)).to_dict()


Finish = Callable[[], CellResult]


def run_cell(
    suite: Suite, cell: CellConfig, store: StageStore, *, sandbox: str = "bwrap",
    progress: bool = False, log: Log = print, executor: Executor | None = None,
) -> CellResult:  # fmt: skip
    """Run (or reuse) every stage of one cell and score its arms."""
    graph = StageGraph()
    with collecting(graph):
        finish = collect_cell(suite, cell, store, sandbox=sandbox, progress=progress, log=log)
    (executor or LocalExecutor()).run(graph, store, log)
    return finish()


def collect_cell(
    suite: Suite, cell: CellConfig, store: StageStore, *, sandbox: str = "bwrap",
    progress: bool = False, log: Log = print,
) -> Finish:  # fmt: skip
    """Name every stage of one cell (inside `executor.collecting`, into the graph); returns
    the function that scores the cell once the executor has published its stages."""
    if cell.kind == "mlp":
        return _run_mlp_cell(cell, store, log)
    if cell.kind == "single-turn":
        return _run_single_turn_cell(suite, cell, store, progress=progress, log=log)
    assert suite.base_model is not None  # load_suite checks it for language-model cells
    cid = cell.cell_id()
    env = cell.env_id
    probes = cell.probe_families
    student_base = _student_base(suite, cell)
    stages: dict[str, str] = {}
    arms: dict[str, ArmResult] = {}
    scores: list[Callable[[], None]] = []

    def evaluate(arm: str, policy: PolicyRef) -> None:
        log(f"[{cid}] evaluate {arm}")
        result = evaluate_stage(store, policy, cell.evaluation, probes, env, cell.seed,
                                sandbox=sandbox, progress=progress, log=log)  # fmt: skip
        stages[f"evaluate:{arm}"] = result.key

        def score() -> None:
            arms[arm] = ArmResult(policy=policy.describe(store.root), stage_key=result.key,
                                  metrics=_metrics(_local(store, result)))  # fmt: skip

        scores.append(score)

    base = base_policy(suite.base_model)
    evaluate("base", base)
    teacher_result, teacher, control = teacher_stage(
        store, suite.base_model, cell, log, progress=progress
    )
    stages["teacher"] = teacher_result.key
    evaluate("teacher", teacher)
    evaluate("control-teacher", control)
    reports: dict[str, dict[str, Any]] = {}
    teachers = [("student", teacher), ("control-student", control)]
    if cell.null_teacher:  # the base model as teacher: what distillation alone does
        teachers.append(("null-student", base))
    for arm, policy in teachers:
        log(f"[{cid}] {arm}: teacher rollouts, sanitize, distill")
        rollouts = rollouts_stage(store, policy, cell.teacher_rollouts, env, cell.seed,
                                  sandbox=sandbox, progress=progress, log=log)  # fmt: skip
        data = sanitize_stage(store, rollouts, cell.trait, cell.sanitize, log)
        scores.append(_report_score(reports, arm, store, data))
        distilled, student = distill_stage(
            store, data, student_base, cell.distill, policy, cell.trait, cell.seed, log,
            progress=progress,
        )  # fmt: skip
        stages.update(
            {f"rollouts:{arm}": rollouts.key, f"sanitize:{arm}": data.key,
             f"distill:{arm}": distilled.key}
        )  # fmt: skip
        evaluate(arm, student)
    if student_base != suite.base_model:
        evaluate("student-base", base_policy(student_base))

    def finish() -> CellResult:
        for score in scores:
            score()
        return CellResult(
            cell_id=cid, config=cell.model_dump(mode="json"), metric=cell.metric, arms=arms,
            comparisons=_comparisons(arms, COMPARED_METRICS, cell.metric),
            transfer=_transfers(arms, (cell.metric, *COMPARED_METRICS[:4])), stages=stages,
            sanitize_reports=reports,
        )  # fmt: skip

    return finish


def _report_score(
    reports: dict[str, dict[str, Any]], arm: str, store: StageStore, data: StageResult
) -> Callable[[], None]:
    """Reads an arm's sanitizer (or filter) report into `reports` once it is published."""

    def score() -> None:
        reports[arm] = _report_counts(_local(store, data).path)

    return score


def _local(store: StageStore, result: StageResult) -> StageResult:
    """The result with its folder readable here (a remote store's stage is mirrored)."""
    return replace(result, path=store.path(result.stage, result.key))


CONTRASTS: tuple[tuple[str, str, tuple[str, str] | None], ...] = (
    # (treated arm, control arm, the teacher arms whose gap the student could inherit)
    ("student", "control-student", ("teacher", "control-teacher")),
    ("student", "null-student", ("teacher", "base")),
    ("student", "init-base", ("teacher", "base")),
    ("null-student", "init-base", None),  # its teacher is the base: no gap to inherit
    ("control-student", "null-student", ("control-teacher", "base")),
)
"""What each comparison tests. student vs control-student: the trait against the control
teacher's habits; vs null-student: against distillation alone (the base as teacher); vs the
student's init (`init-base`: base, or student-base in heterogeneous cells): any move at all;
null-student vs init: what distillation alone does; control-student vs null-student: whether
the control teacher's own habits transferred."""


def _comparisons(
    arms: dict[str, ArmResult], metrics: tuple[str, ...], headline: str | None = None
) -> list[ComparisonResult]:
    """Student vs control student on every metric (Fisher's exact test, MDE, power), and the
    other `CONTRASTS` whose arms the cell has on the headline metric."""
    init = "student-base" if "student-base" in arms else "base"

    def rate(arm: str, metric: str) -> RateRecord | None:
        found = arms.get(init if arm == "init-base" else arm)
        data = found.metrics.get("rates", {}).get(metric) if found else None
        return RateRecord(**data) if data else None

    out = []
    for treated_arm, control_arm, teachers in CONTRASTS:
        first = treated_arm == "student" and control_arm == "control-student"
        for metric in metrics if first else ((headline,) if headline else ()):
            treated, control = rate(treated_arm, metric), rate(control_arm, metric)
            if treated is None or control is None:
                continue
            t = rate(teachers[0], metric) if teachers else None
            r = rate(teachers[1], metric) if teachers else None
            gap = None
            if t is not None and r is not None and t.value is not None and r.value is not None:
                gap = t.value - r.value
            names = (treated_arm, init if control_arm == "init-base" else control_arm)
            out.append(ComparisonResult(**contrast(metric, *names, treated, control, gap)))
    return out


def _transfers(arms: dict[str, ArmResult], metrics: tuple[str, ...]) -> dict[str, float | None]:
    transfer = {}
    for metric in dict.fromkeys(metrics):
        order = ("student", "control-student", "teacher", "control-teacher")
        values = [arms[a].metrics["rates"][metric]["value"] for a in order]
        transfer[metric] = transfer_score(*values)
    return transfer


def _run_single_turn_cell(
    suite: Suite, cell: CellConfig, store: StageStore, *, progress: bool, log: Log
) -> Finish:
    """A Cloud et al. cell: prompt teacher and its control (the base model) generate task
    data, the filter keeps what is well formed and does not name the target, students learn
    it, every arm answers the trait's questions."""
    from agentbench.experiments.trait_stages import (
        banned_terms,
        filter_stage,
        generate_stage,
        prompt_teachers,
        trait_eval_stage,
        trait_metrics,
    )

    assert suite.base_model is not None  # load_suite checks it for language-model cells
    cid = cell.cell_id()
    student_base = _student_base(suite, cell)
    stages: dict[str, str] = {}
    arms: dict[str, ArmResult] = {}
    scores: list[Callable[[], None]] = []

    def evaluate(arm: str, policy: PolicyRef) -> None:
        log(f"[{cid}] evaluate {arm}")
        result = trait_eval_stage(store, policy, cell, progress=progress, log=log)
        stages[f"trait-eval:{arm}"] = result.key

        def score() -> None:
            metrics = trait_metrics(cell, _local(store, result))
            arms[arm] = ArmResult(
                policy=policy.describe(store.root), stage_key=result.key, metrics=metrics
            )

        scores.append(score)

    teacher, control, _prompt = prompt_teachers(suite.base_model, cell)
    evaluate("base", base_policy(suite.base_model))
    evaluate("teacher", teacher)
    evaluate("control-teacher", control)
    reports: dict[str, dict[str, Any]] = {}
    terms = banned_terms(cell)
    for arm, policy in (("student", teacher), ("control-student", control)):
        log(f"[{cid}] {arm}: teacher completions, filter, distill")
        generated = generate_stage(store, policy, cell, progress=progress, log=log)
        data = filter_stage(store, generated, cell, log)
        scores.append(_report_score(reports, arm, store, data))
        distilled, student = distill_stage(
            store, data, student_base, cell.distill, policy, cell.trait, cell.seed, log,
            progress=progress, banned_terms=terms,
        )  # fmt: skip
        stages.update(
            {f"generate:{arm}": generated.key, f"filter:{arm}": data.key,
             f"distill:{arm}": distilled.key}
        )  # fmt: skip
        evaluate(arm, student)
    if student_base != suite.base_model:
        evaluate("student-base", base_policy(student_base))

    def finish() -> CellResult:
        for score in scores:
            score()
        return CellResult(
            cell_id=cid, config=cell.model_dump(mode="json"), metric=cell.metric, arms=arms,
            comparisons=_comparisons(arms, (cell.metric,), cell.metric),
            transfer=_transfers(arms, (cell.metric,)), stages=stages, sanitize_reports=reports,
        )  # fmt: skip

    return finish


def _run_mlp_cell(cell: CellConfig, store: StageStore, log: Log) -> Finish:
    """The MLP control of one seed: base (the teacher's untrained initialisation), teacher,
    student (same init) and control student (different init), compared by Fisher's test over
    the pooled test digits."""
    from agentbench.experiments.trait_stages import mlp_stage

    cid = cell.cell_id()
    log(f"[{cid}] mlp teacher and students")
    result = mlp_stage(store, cell, log)

    def finish() -> CellResult:
        metrics = json.loads((_local(store, result).path / METRICS).read_text())
        arms = {
            arm: ArmResult(
                policy={"kind": "mlp", "arm": arm, "identity": f"mlp:{result.key}"},
                stage_key=result.key,
                metrics=metrics[arm],
            )
            for arm in ("base", "teacher", "student", "control-student")
        }
        return CellResult(
            cell_id=cid,
            config=cell.model_dump(mode="json"),
            metric=cell.metric,
            arms=arms,
            comparisons=_comparisons(arms, (cell.metric,)),
            stages={"mlp": result.key},
        )

    return finish


def _report_counts(folder: Path) -> dict[str, Any]:
    """The sanitizer report's headline counts (the full report stays in the stage folder; its
    input hash covers the trajectories' timings, so it differs between equal reruns)."""
    for path in folder.glob("*.report.json"):
        data = json.loads(path.read_text())
        keys = ("read", "kept", "dropped", "dropped_by_reason", "steps_dropped", "redactions",
                "term_counts", "leak_check", "output_sha256")  # fmt: skip
        return {k: data[k] for k in keys if k in data}
    return {}


def aggregate(cells: list[CellResult]) -> list[Aggregate]:
    """Cells equal but for the seed: mean and t interval of each arm's rates over seeds."""
    groups: dict[str, list[CellResult]] = {}
    for cell in cells:
        config = dict(cell.config)
        config.pop("seed", None)
        groups.setdefault(canonical(config), []).append(cell)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        label = "+".join(sorted(m.cell_id for m in members))
        for arm in members[0].arms:
            recorded = members[0].arms[arm].metrics.get("rates", {})
            for metric in (m for m in _all_metrics(members[0]) if m in recorded):
                values = [m.arms[arm].metrics["rates"][metric]["value"] for m in members
                          if arm in m.arms and metric in m.arms[arm].metrics["rates"]]  # fmt: skip
                s = across_seeds(values)
                out.append(Aggregate(group=label, arm=arm, metric=metric, n_seeds=s.n_seeds,
                                     mean=s.mean, low=s.low, high=s.high,
                                     values=list(s.values)))  # fmt: skip
    return out


def _seed_groups(cells: list[CellResult]) -> list[list[CellResult]]:
    """Cells equal but for the seed, in first-seen order."""
    groups: dict[str, list[CellResult]] = {}
    for cell in cells:
        config = dict(cell.config)
        config.pop("seed", None)
        groups.setdefault(canonical(config), []).append(cell)
    return list(groups.values())


def pool_over_seeds(cells: list[CellResult]) -> list[PooledComparison]:
    """Each headline comparison of cells equal but for the seed, pooled by a
    Cochran-Mantel-Haenszel test stratified by seed (`agentbench.stats.cmh_over_strata`):
    seed-to-seed differences in the base rate do not count as evidence, as they would if the
    seeds' episodes were simply added up."""
    from agentbench.stats import cmh_over_strata

    out = []
    for members in _seed_groups(cells):
        if len(members) < 2:
            continue
        label = "+".join(sorted(m.cell_id for m in members))
        metric = members[0].metric
        pairs = dict.fromkeys(
            (c.treated_arm, c.control_arm) for c in members[0].comparisons if c.metric == metric
        )
        for treated_arm, control_arm in pairs:
            tables, seeds = [], []
            for member in members:
                found = next((c for c in member.comparisons if c.metric == metric
                              and (c.treated_arm, c.control_arm) == (treated_arm, control_arm)),
                             None)  # fmt: skip
                if found is None:
                    continue
                t, c = found.treated, found.control
                tables.append((int(t["k"]), int(t["n"]), int(c["k"]), int(c["n"])))
                seeds.append(int(member.config.get("seed", 0)))
            if len(tables) < 2:
                continue
            test = cmh_over_strata(tables)
            out.append(PooledComparison(
                group=label, metric=metric, treated_arm=treated_arm, control_arm=control_arm,
                seeds=seeds, strata=test.strata, p_value=test.p_value,
                odds_ratio=test.odds_ratio, low=test.low, high=test.high,
                homogeneity_p=test.homogeneity_p,
            ))  # fmt: skip
    return out


def _all_metrics(cell: CellResult) -> tuple[str, ...]:
    """The metrics a cell's kind records (the agentic ones, or its single headline)."""
    return COMPARED_METRICS if cell.metric in COMPARED_METRICS else (cell.metric,)


def _model_hashes(suite: Suite) -> dict[str, str]:
    """The weights sha256 of each language model the suite names (base, heterogeneous), so
    that a report says which build its numbers came from; models that are not built (MLP-only
    suites) are left out."""
    from agentbench.models import ModelError, model_weights_sha256, resolve_model

    hashes: dict[str, str] = {}
    for name in (suite.base_model, suite.heterogeneous_model):
        if not name:
            continue
        try:
            hashes[name] = model_weights_sha256(resolve_model(name, build=False))
        except (ModelError, OSError):
            continue
    return hashes


def run_suite(
    suite: Suite, cells: list[CellConfig], suite_file: Path, out_dir: Path, store: StageStore,
    *, sandbox: str = "bwrap", progress: bool = False, log: Log = print,
    executor: Executor | None = None,
) -> Results:  # fmt: skip
    """Run every cell, then write `results.json` (atomically, durably) into `out_dir`.

    The stages of all cells are collected into one graph and handed to `executor` (default:
    `LocalExecutor`, one after another); the cells are scored from the published stages.
    """
    from agentbench.provenance import provenance

    began = time.monotonic()
    executor = executor or LocalExecutor()
    _build_models(suite, cells, log)
    graph = StageGraph()
    # Stage bodies of a remote executor run in other processes: they log with print (the
    # caller's log may hold a console that cannot travel), and draw no progress bars.
    stage_log: Log = print if executor.remote else log
    progress = progress and not executor.remote
    finishes = []
    with collecting(graph):
        for index, cell in enumerate(cells, 1):
            log(f"cell {index}/{len(cells)}: {cell.cell_id()}")
            finishes.append(collect_cell(suite, cell, store, sandbox=sandbox,
                                         progress=progress, log=stage_log))  # fmt: skip
    log(f"{len(graph.tasks)} distinct stage(s); executor: {type(executor).__name__}")
    executor.run(graph, store, log)
    results = [finish() for finish in finishes]
    out = Results(
        suite=suite.name,
        suite_sha256=suite_sha256(suite_file),
        description=suite.description,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        wall_s=round(time.monotonic() - began, 1),
        cells=results,
        aggregates=aggregate(results),
        pooled=pool_over_seeds(results),
        provenance=provenance(
            store=store.url if store.remote else str(store.root), models=_model_hashes(suite)
        ),
    )
    write_results(out, out_dir)
    return out


def models_to_build(suite: Suite, cells: list[CellConfig]) -> list[ModelRecipe]:
    """The registry models the suite uses that are not in the cache yet (the run builds them
    first). Directories and hub ids are not listed: they are resolved when first used."""
    from agentbench.models import get_recipe, is_built

    lm_cells = [c for c in cells if c.kind != "mlp"]
    names = {_student_base(suite, c) for c in lm_cells}
    if lm_cells and suite.base_model:
        names.add(suite.base_model)
    names |= {c.single_turn.judge for c in lm_cells if c.single_turn.judge}
    missing = []
    for name in sorted(names):
        try:
            recipe = get_recipe(name)
        except (KeyError, ValueError, RuntimeError):
            continue
        if not is_built(name):
            missing.append(recipe)
    return missing


def _build_models(suite: Suite, cells: list[CellConfig], log: Log) -> None:
    """Build the registry models a suite needs before its first stage, saying so: a first
    build of an embedded model is the longest step of a fresh run."""
    from agentbench.models import build_model

    for recipe in models_to_build(suite, cells):
        log(f"building the embedded model {recipe.name} (once; cached afterwards)")
        build_model(recipe.name)


def write_results(results: Results, out_dir: Path) -> Path:
    """results.json, written atomically and durably (a crash leaves the old or the new)."""
    return atomic_write(out_dir / "results.json", results.model_dump_json(indent=2) + "\n")


def comparable(results: Results) -> dict[str, Any]:
    """results.json without what differs between two runs of the same suite (times)."""
    data = results.model_dump(mode="json")
    for key in ("created_at", "wall_s", "provenance"):
        data.pop(key)
    return data


__all__ = [
    "ArmMetrics",
    "Plan",
    "aggregate",
    "collect_cell",
    "comparable",
    "gpu_estimate_lines",
    "plan_suite",
    "run_cell",
    "run_suite",
    "schedule_seconds",
    "stage_graph",
    "write_results",
]
