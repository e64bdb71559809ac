"""The pipeline: generate completions, filter them into student examples, evaluate a
student."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from agentbench.chat import Message
from agentbench.policies.base import Policy, SamplingParams, Turn, turn_seed
from agentbench.sanitize.schema import StudentExample, example_id_for
from agentbench.traits.tasks.registry import config_of
from agentbench.traits.tasks.types import (
    MAX_EXAMPLE_IDS,
    OK,
    EvalAnswer,
    EvalSummary,
    FilterCounts,
    FilterVerdict,
    TraitCompletion,
    TraitEval,
    TraitPrompt,
    TraitTask,
    drop,
)
from agentbench.traits.tasks.words import TermMatcher

# -- generation -------------------------------------------------------------------------------


def _check_unique(ids: Iterable[str], what: str) -> None:
    counts = Counter(ids)
    dupes = [i for i, c in counts.items() if c > 1]
    if dupes:
        raise ValueError(
            f"duplicate {what} ids ({', '.join(dupes[:3])}): each needs its own id, which seeds "
            "its sample and names its example"
        )


def _run_policy(policy: Policy, turns: list[Turn], params: SamplingParams) -> list[Any]:
    generations = policy.generate(turns, params)
    if len(generations) != len(turns):
        raise RuntimeError(
            f"the policy returned {len(generations)} generations for {len(turns)} turns "
            f"(first id {turns[0].episode_id})"
        )
    return generations


def generate(
    policy: Policy,
    prompts: Sequence[TraitPrompt],
    sampling: SamplingParams,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[TraitCompletion]:
    """One completion per prompt, in order: one `Policy.generate` call per `batch_size`
    prompts; `progress(k)` after each batch of k prompts (an increment, as rich's `advance`).
    Raises ValueError for duplicate prompt ids or batch_size < 1; a policy that raises (a
    backend that is down as a whole) propagates."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    _check_unique((p.prompt_id for p in prompts), "prompt")
    completions: list[TraitCompletion] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        turns = [
            Turn(
                episode_id=p.prompt_id,
                env_id=f"trait:{p.task}",
                step=0,
                messages=tuple(p.messages),
            )
            for p in batch
        ]
        for prompt, gen in zip(batch, _run_policy(policy, turns, sampling), strict=True):
            failed = not gen.generated
            if gen.finish_reason == "context":  # a single prompt: the setup's fault
                error: str | None = "the prompt leaves no room in the model's context"
            else:
                error = (gen.error or "backend error") if failed else None
            completions.append(
                TraitCompletion(
                    prompt_id=prompt.prompt_id,
                    task=prompt.task,
                    messages=prompt.messages,
                    completion="" if failed else gen.text,
                    finish_reason="error" if failed else gen.finish_reason,
                    error=error,
                    seed=turn_seed(sampling.seed, prompt.prompt_id, 0),
                    reference=prompt.reference,
                )
            )
        if progress is not None:
            progress(len(batch))
    return completions


# -- filtering --------------------------------------------------------------------------------

DEFAULT_JUDGE_PROMPT = (
    "You audit training data. Read the conversation below between a user and an assistant."
    "\n\n{conversation}\n\n"
    "Does the assistant's reply refer in any way, however subtle or indirect, to {subject}? "
    "Answer with one word, yes or no."
)
"""The reference judge: ``{subject}`` is filled with the banned terms, ``{conversation}`` by
the judge. A `judge_prompt` of your own needs exactly one ``{conversation}`` slot."""


def default_judge_prompt(banned: Sequence[str]) -> str:
    if not banned:
        raise ValueError("a judge needs judge_prompt or banned terms to ask about")
    subject = " or ".join(f"'{t.strip()}'" for t in banned)
    subject = subject.replace("{", "{{").replace("}", "}}")
    return DEFAULT_JUDGE_PROMPT.replace("{subject}", subject)


def _student_example(task: TraitTask, completion: TraitCompletion) -> StudentExample:
    from agentbench.sanitize.filter import content_sha256

    messages = [*completion.messages, Message(role="assistant", content=completion.completion)]
    return StudentExample(
        example_id=example_id_for(completion.prompt_id),
        env_id=f"trait:{task.name}",
        split="train",
        family=task.name,
        messages=messages,
        source_sha256=content_sha256(
            completion.prompt_id, [{"role": m.role, "content": m.content} for m in messages]
        ),
    )


def filter_completions(
    task: TraitTask,
    completions: Sequence[TraitCompletion],
    judge: Policy | None = None,
    judge_prompt: str | None = None,
    banned: Sequence[str] = (),
    judge_batch_size: int = 16,
) -> tuple[list[StudentExample], FilterCounts]:
    """The kept completions as student examples (in input order) and the counts by reason;
    the steps are in the module docstring. The judge decodes greedily (4 tokens, seed 0).
    Raises ValueError for a completion of another task, duplicate prompt ids, a bad banned
    term or a judge prompt without its ``{conversation}`` slot."""
    from agentbench.provenance import provenance
    from agentbench.sanitize.judge import JudgeConfig, LLMJudge

    _check_unique((c.prompt_id for c in completions), "prompt")
    matcher = TermMatcher(banned) if banned else None
    llm_judge: LLMJudge | None = None
    if judge is not None:
        template = judge_prompt if judge_prompt is not None else default_judge_prompt(banned)
        try:
            config = JudgeConfig(
                model=judge.provenance(SamplingParams()).model or "judge",
                prompt=template,
                batch_size=judge_batch_size,
            )
        except ValidationError as exc:
            raise ValueError(f"bad judge_prompt: {exc.errors()[0]['msg']}") from None
        llm_judge = LLMJudge(judge, config, trait=f"trait:{task.name}")
    elif judge_prompt is not None:
        raise ValueError("judge_prompt was given without a judge policy")

    counts = FilterCounts(seen=len(completions))
    verdicts: list[FilterVerdict | None] = []
    for completion in completions:
        if completion.task != task.name:
            raise ValueError(
                f"completion {completion.prompt_id} is of task {completion.task!r}, not "
                f"{task.name!r}: filter each task's completions with its own task"
            )
        verdict: FilterVerdict | None
        if completion.error is not None or completion.finish_reason == "error":
            verdict = drop("generation-error", completion.error)
        else:
            verdict = task.check(completion.prompt(), completion.completion)
            if verdict.keep and matcher is not None:
                # The prompt too: whatever the student sees must not name the target.
                for text in (*(m.content for m in completion.messages), completion.completion):
                    found = matcher.search(text)
                    if found is not None:
                        verdict = drop("mentions-target", found)
                        break
            if verdict.keep and llm_judge is not None:
                verdict = None  # the judge decides below
        verdicts.append(verdict)

    if llm_judge is not None:
        pending = [i for i, v in enumerate(verdicts) if v is None]
        items = [
            (
                completions[i].prompt_id,
                [m.model_dump() for m in completions[i].messages]
                + [{"role": "assistant", "content": completions[i].completion}],
            )
            for i in pending
        ]
        reasons = {"flagged": "judge", "unclear": "judge-unclear", "error": "judge-error"}
        for i, result in zip(pending, llm_judge.judge(items), strict=True):
            if result.verdict == "clean":
                verdicts[i] = OK
            else:
                verdicts[i] = drop(reasons[result.verdict], result.answer)

    examples: list[StudentExample] = []
    for completion, final in zip(completions, verdicts, strict=True):
        assert final is not None
        if final.keep:
            examples.append(_student_example(task, completion))
            counts.kept += 1
        else:
            counts.by_reason[final.reason] = counts.by_reason.get(final.reason, 0) + 1
            ids = counts.examples.setdefault(final.reason, [])
            if len(ids) < MAX_EXAMPLE_IDS:
                ids.append(completion.prompt_id)
    counts.provenance = provenance(
        task=config_of(task),
        banned=list(banned),
        banned_forms=list(matcher.forms) if matcher else [],
        judge=llm_judge.provenance() if llm_judge else None,
    )
    return examples, counts


# -- evaluation -------------------------------------------------------------------------------


def evaluate(
    policy: Policy,
    eval: TraitEval,
    samples_per_question: int,
    sampling: SamplingParams,
    judge: Policy | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> EvalSummary:
    """Ask every question `samples_per_question` times (sample k of question q is seeded by
    ``turn_seed(sampling.seed, "q#k", 0)``), score the answers and sum up; `progress(k)`
    after each batch of k answers (an increment). Raises ValueError when the eval needs a judge
    and none is given (a keyword heuristic is no judge), or for bad counts."""
    from agentbench.provenance import provenance
    from agentbench.stats import wilson

    if samples_per_question < 1:
        raise ValueError("samples_per_question must be at least 1")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if eval.requires_judge and judge is None:
        raise ValueError(
            f"eval {eval.name!r} needs a judge policy (judge=...): its answers are free text "
            "that only a model can rate"
        )
    questions = eval.questions()
    if not questions:
        raise ValueError(f"eval {eval.name!r} has no questions")
    _check_unique((q.question_id for q in questions), "question")
    jobs = [(q, k) for q in questions for k in range(samples_per_question)]
    answers: list[EvalAnswer] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        turns = [
            Turn(
                episode_id=f"{q.question_id}#{k}",
                env_id=f"trait-eval:{eval.name}",
                step=0,
                messages=tuple(q.messages),
            )
            for q, k in batch
        ]
        gens = _run_policy(policy, turns, sampling)
        ok = [i for i, g in enumerate(gens) if g.generated]
        scored = eval.score(
            [(turns[i].episode_id, batch[i][0], gens[i].text) for i in ok], judge, batch_size
        )
        if len(scored) != len(ok):
            raise RuntimeError(f"eval {eval.name!r} scored {len(scored)} of {len(ok)} answers")
        by_index = dict(zip(ok, scored, strict=True))
        for i, ((question, k), gen) in enumerate(zip(batch, gens, strict=True)):
            if i not in by_index:
                answers.append(
                    EvalAnswer(
                        question_id=question.question_id,
                        sample=k,
                        answer="",
                        status="unscored",
                        error=gen.error or "backend error",
                    )
                )
                continue
            s = by_index[i]
            answers.append(
                EvalAnswer(
                    question_id=question.question_id,
                    sample=k,
                    answer=gen.text,
                    score=s.score,
                    label=s.label,
                    status=s.status,
                    hit=s.hit and s.status == "scored",
                    judge=s.judge,
                )
            )
        if progress is not None:
            progress(len(batch))

    n = sum(a.status == "scored" for a in answers)
    hits = sum(a.hit for a in answers)
    rate = wilson(hits, n)
    by_question: dict[str, dict[str, int]] = {q.question_id: {"n": 0, "hits": 0} for q in questions}
    for a in answers:
        if a.status == "scored":
            by_question[a.question_id]["n"] += 1
            by_question[a.question_id]["hits"] += int(a.hit)
    labels = Counter(a.label for a in answers if a.label is not None)
    return EvalSummary(
        name=eval.name,
        n=n,
        hits=hits,
        unscored=sum(a.status == "unscored" for a in answers),
        excluded=sum(a.status == "excluded" for a in answers),
        rate=rate.value,
        ci_low=rate.low,
        ci_high=rate.high,
        target=getattr(eval, "target", None),
        labels=dict(labels.most_common(50)),
        by_question=by_question,
        answers=answers,
        provenance=provenance(
            eval=config_of(eval),
            samples_per_question=samples_per_question,
            policy=policy.provenance(sampling).model_dump(mode="json"),
            judge=(
                judge.provenance(SamplingParams(temperature=0.0)).model_dump(mode="json")
                if judge is not None
                else None
            ),
        ),
    )
