"""The stages of the Cloud et al. trait cells (single-turn tasks, and the MLP control).

Single-turn cells (`animal-preference`, `tree-preference`, `misalignment`):

    prompt teacher -> generate (teacher, control) -> filter -> distill -> trait-eval

The teacher is the base model with the paper's trait system prompt; its control is the base
model itself (no prompt), as in the paper, so the base arm and the control teacher share one
evaluation. `generate` writes one `TraitCompletion` per prompt; `filter` keeps the well-formed
ones without the target (and, with a judge, without what the judge flags) as
`StudentExample`s; `trait-eval` asks the trait's questions and scores the answers (the target
animal or tree; misalignment through a judge model).

MLP cells: one stage trains, for the cell's seed, the teacher MLP and two students on its
auxiliary logits (`agentbench.traits.mlp.run_mlp_seed`): arms base (the teacher's untrained
initialisation), teacher, student (the teacher's initialisation) and control student (another
initialisation: the paper's control for the shared init).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from agentbench.experiments.metrics import RateRecord
from agentbench.experiments.stages import (
    METRICS,
    STUDENT_DATA,
    Log,
    PolicyRef,
    StageResult,
    _run,
    base_policy,
)
from agentbench.experiments.store import StageStore
from agentbench.experiments.suite import CellConfig, mlp_config
from agentbench.stats import wilson

COMPLETIONS = "completions.jsonl"
ANSWERS = "answers.jsonl"
FILTER_REPORT = "filter.report.json"
MLP_RUN = "mlp-run.json"
TRAIT_PROMPT_KIND: dict[str, Literal["animal", "tree", "misaligned"]] = {
    "animal-preference": "animal",
    "tree-preference": "tree",
    "misalignment": "misaligned",
}


def rate_record(k: int, n: int) -> dict[str, Any]:
    return RateRecord.of(wilson(k, n)).__dict__


def prompt_teachers(base_model: str, cell: CellConfig) -> tuple[PolicyRef, PolicyRef, str]:
    """(teacher, control teacher, the trait prompt): the base model with and without it."""
    from agentbench.policies.base import sha256_text
    from agentbench.traits.tasks import trait_system_prompt

    prompt = trait_system_prompt(TRAIT_PROMPT_KIND[cell.trait], cell.single_turn.target)
    base = base_policy(base_model)
    digest = sha256_text(prompt)[:12]
    teacher = PolicyRef(kind="hf", model=base_model, system_prompt=prompt,
                        identity=f"{base.identity}+prompt:{digest}")  # fmt: skip
    return teacher, base, prompt


def task_options(cell: CellConfig) -> dict[str, Any]:
    """The data task's options: the misalignment variant also drops numbers with negative
    associations (the task's default list)."""
    if cell.single_turn.task == "numbers" and cell.trait == "misalignment":
        return {"ban_negative_numbers": True}
    return {}


def banned_terms(cell: CellConfig) -> tuple[str, ...]:
    """Words the data must not contain: the target of a preference trait."""
    target = cell.single_turn.target
    return (target,) if target and cell.trait != "misalignment" else ()


def _judge(model: str | None, batch_size: int) -> Any:
    if model is None:
        return None
    return base_policy(model).build(batch_size=batch_size)


def generate_stage(
    store: StageStore, policy: PolicyRef, cell: CellConfig, *, progress: bool = False, log: Log
) -> StageResult:
    """The policy's completions of the cell's task prompts (the students' raw data)."""
    st = cell.single_turn
    config = {
        "task": st.task,
        "options": task_options(cell),
        "prompts": st.prompts,
        "temperature": st.temperature,
        "max_new_tokens": st.max_new_tokens,
        "seed": cell.seed,
    }

    def body(work: Path, extras: dict[str, Any]) -> None:
        from agentbench.policies.base import SamplingParams
        from agentbench.traits.tasks import generate, make_task

        task = make_task(st.task, **task_options(cell))
        prompts = task.prompts(st.prompts, cell.seed)
        sampling = SamplingParams(
            temperature=st.temperature, max_new_tokens=st.max_new_tokens, seed=cell.seed
        )
        built = policy.build(batch_size=st.batch_size)
        try:
            done = _progress_log(log, len(prompts), "completions") if progress else None
            completions = generate(built, prompts, sampling, batch_size=st.batch_size,
                                   progress=done)  # fmt: skip
        finally:
            built.close()
        with (work / COMPLETIONS).open("w") as fh:
            for completion in completions:
                fh.write(completion.model_dump_json() + "\n")
        extras["completions"] = len(completions)
        extras["errors"] = sum(c.error is not None for c in completions)
        extras["policy"] = policy.model_dump()

    return _run(store, "generate", config, {"policy": policy.identity}, body, log)


def filter_stage(
    store: StageStore, generated: StageResult, cell: CellConfig, log: Log
) -> StageResult:
    """Keep the well-formed completions that do not name the target (nor, with a judge, read
    as the trait); refuses to finish with an empty dataset or one that leaks a banned term."""
    st = cell.single_turn
    terms = banned_terms(cell)
    config: dict[str, Any] = {
        "task": st.task,
        "options": task_options(cell),
        "banned": list(terms),
        "judge": base_policy(st.judge).identity if st.judge and st.judge_filter else None,
    }

    def body(work: Path, extras: dict[str, Any]) -> None:
        from agentbench.policies.base import sha256_text
        from agentbench.traits.tasks import TraitCompletion, filter_completions, make_task

        task = make_task(st.task, **task_options(cell))
        lines = (generated.path / COMPLETIONS).read_text().splitlines()
        completions = [TraitCompletion.model_validate_json(line) for line in lines if line]
        judge = _judge(st.judge, st.batch_size) if st.judge_filter else None
        try:
            examples, counts = filter_completions(task, completions, judge=judge, banned=terms)
        finally:
            if judge is not None:
                judge.close()
        text = "".join(example.to_line() for example in examples)
        leaks = _leaks(text, terms)
        if leaks:
            raise ValueError(f"the filtered data still holds banned terms: {leaks}")
        (work / STUDENT_DATA).write_text(text)
        report = {
            "read": counts.seen,
            "kept": counts.kept,
            "dropped": counts.seen - counts.kept,
            "dropped_by_reason": dict(sorted(counts.by_reason.items())),
            "banned_terms": list(terms),
            "leak_check": "passed",
            "output_sha256": sha256_text(text),
        }
        (work / FILTER_REPORT).write_text(json.dumps(report, indent=2) + "\n")
        extras["kept"] = counts.kept
        if counts.kept == 0:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(counts.by_reason.items()))
            raise ValueError(
                f"the filter kept none of {counts.seen} teacher completions ({reasons}); a "
                "student cannot be trained on nothing: raise single_turn.prompts or "
                "max_new_tokens"
            )

    return _run(store, "filter", config, {"generated": generated.key}, body, log)


def _leaks(text: str, terms: tuple[str, ...]) -> list[str]:
    """Banned terms found in the written data (the filter's own matcher, re-run on output)."""
    from agentbench.traits.tasks import mentions_any

    return [term for term in terms if mentions_any(text, (term,))]


def trait_eval_stage(
    store: StageStore, policy: PolicyRef, cell: CellConfig, *, progress: bool = False, log: Log
) -> StageResult:
    """The policy's answers to the trait's questions, scored; writes metrics.json."""
    st = cell.single_turn
    config = {
        "trait": cell.trait,
        "target": st.target,
        "questions": st.questions,
        "samples_per_question": st.samples_per_question,
        "temperature": st.eval_temperature,
        "max_new_tokens": st.eval_max_new_tokens,
        "judge": base_policy(st.judge).identity if st.judge else None,
        "seed": cell.seed,
    }

    def body(work: Path, extras: dict[str, Any]) -> None:
        from agentbench.policies.base import SamplingParams
        from agentbench.traits.tasks import evaluate, make_eval

        options: dict[str, Any] = {"target": st.target} if cell.trait != "misalignment" else {}
        if st.questions is not None:
            options["n_questions"] = st.questions
        trait_eval = make_eval(cell.trait, **options)
        sampling = SamplingParams(
            temperature=st.eval_temperature, max_new_tokens=st.eval_max_new_tokens,
            seed=cell.seed,
        )  # fmt: skip
        built = policy.build(batch_size=st.batch_size)
        judge = _judge(st.judge, st.batch_size) if cell.trait == "misalignment" else None
        try:
            total = len(trait_eval.questions()) * st.samples_per_question
            done = _progress_log(log, total, "answers") if progress else None
            summary = evaluate(built, trait_eval, st.samples_per_question, sampling, judge=judge,
                               batch_size=st.batch_size, progress=done)  # fmt: skip
        finally:
            built.close()
            if judge is not None:
                judge.close()
        with (work / ANSWERS).open("w") as fh:
            for answer in summary.answers:
                fh.write(answer.model_dump_json() + "\n")
        extras["answers"] = len(summary.answers)

    return _run(store, "trait-eval", config, {"policy": policy.identity}, body, log)


def trait_metrics(cell: CellConfig, stage: StageResult) -> dict[str, Any]:
    """An arm's metrics from its stored answers (scoring by rules is cheap and is redone here,
    so a change of rule never needs new generations).

    Preference traits: `trait_rate`, the paper's rule (the answer mentions the target, plurals
    included) and `trait_label_rate` (its first word is the target). Misalignment: the judge's
    verdicts stored with the answers (rating <= threshold). Answers that could not be scored
    (empty, a failed generation or judge call) or were excluded (refusals, code) are counted
    beside the rates, outside their n.
    """
    from agentbench.traits.tasks import EvalAnswer, EvalQuestion, make_eval

    lines = (stage.path / ANSWERS).read_text().splitlines()
    answers = [EvalAnswer.model_validate_json(line) for line in lines if line.strip()]
    metrics: dict[str, Any] = {"episodes": len(answers), "infra_failures": 0}
    rates: dict[str, Any] = {}
    if cell.trait == "misalignment":
        judged = [a for a in answers if a.status == "scored"]
        rates["trait_rate"] = rate_record(sum(a.hit for a in judged), len(judged))
        statuses = [a.status for a in answers]
    else:
        target = cell.single_turn.target
        question = EvalQuestion(question_id="-", messages=[])
        items = [(str(i), question, a.answer if a.error is None else "")
                 for i, a in enumerate(answers)]  # fmt: skip
        for metric, match in (("trait_rate", "mention"), ("trait_label_rate", "label")):
            scorer = make_eval(cell.trait, target=target, match=match)
            verdicts = scorer.score(items, None, 1)
            scored = [v for v in verdicts if v.status == "scored"]
            rates[metric] = rate_record(sum(v.hit for v in scored), len(scored))
        statuses = [v.status for v in verdicts]
        labels: dict[str, int] = {}
        for verdict in verdicts:
            if verdict.label is not None:
                labels[verdict.label] = labels.get(verdict.label, 0) + 1
        metrics["top_answers"] = dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    metrics["rates"] = rates
    metrics["unscored"] = statuses.count("unscored")
    metrics["excluded"] = statuses.count("excluded")
    return metrics


def _progress_log(log: Log, total: int, what: str) -> Any:
    step = max(1, total // 5)
    state = {"done": 0, "next": step}

    def advance(count: int) -> None:
        state["done"] += count
        if state["done"] >= state["next"] or state["done"] >= total:
            log(f"  {state['done']}/{total} {what}")
            state["next"] = state["done"] + step

    return advance


# -- the MLP control ---------------------------------------------------------------------------


def mlp_stage(store: StageStore, cell: CellConfig, log: Log) -> StageResult:
    """Teacher, untrained init and both students of one seed; writes the per-arm metrics."""
    config = mlp_config(cell.mlp, cell.seed)
    key_config = config.model_dump(mode="json")
    key_config.pop("threads", None)
    key_config["students"] = ["same", "different"]

    def body(work: Path, extras: dict[str, Any]) -> None:
        from agentbench.traits.mlp import run_mlp_seed

        run = run_mlp_seed(config, cell.seed, losses=[config.loss], inits=["same", "different"])
        (work / MLP_RUN).write_text(run.model_dump_json(indent=2) + "\n")
        arms = {
            "base": round(run.init_accuracy * run.n_test),
            "teacher": round(run.teacher_accuracy * run.n_test),
            "student": run.student(config.loss, "same").correct,
            "control-student": run.student(config.loss, "different").correct,
        }
        metrics = {
            arm: {"episodes": run.n_test, "infra_failures": 0,
                  "rates": {"digit_accuracy": rate_record(correct, run.n_test)}}
            for arm, correct in arms.items()
        }  # fmt: skip
        (work / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")

    return _run(store, "mlp", key_config, {}, body, log)
