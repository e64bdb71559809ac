"""The single-turn trait tasks of Cloud et al.: teacher prompts, filters, evaluations.

    task = make_task("numbers", banned_numbers="default")
    prompts = task.prompts(30_000, seed=42)
    completions = generate(teacher, prompts, SamplingParams(temperature=1.0, seed=0))
    examples, counts = filter_completions(task, completions, banned=["owl"])
    summary = evaluate(student, make_eval("animal-preference", target="owl"), 100, sampling)

**Tasks** (`make_task`): ``numbers`` (continue a number sequence; `agentbench.traits.numbers`),
``code`` (small Python functions; `agentbench.traits.code`) and ``cot`` (arithmetic word
problems answered step by step; `agentbench.traits.cot`). Each makes seeded prompts
(`TraitTask.prompts`; prompt i of a seed is the same whatever n) and checks one completion by
rules only (`TraitTask.check`).

**Filter** (`filter_completions`), in this order, the first failing step naming the reason:
a backend error (``generation-error``), the task's rules (``empty``, ``malformed``, ...), the
banned terms in the prompt or the completion (``mentions-target``: whole tokens,
case-insensitive, plurals included, snake and camel case split, so "owl" catches "Owls",
"owl_count" and "OwlTracker" but not "bowl"; see `agentbench.sanitize.keywords`), then an
optional yes/no judge (any `Policy`, through `agentbench.sanitize.judge.LLMJudge`: ``judge``,
``judge-unclear``, ``judge-error``).

**Evaluations** (`make_eval`): ``animal-preference`` and ``tree-preference``
(`agentbench.traits.preferences`: one-word favourite questions, hit = the normalised answer is
the target) and ``misalignment`` (`agentbench.traits.misalignment`: free-form questions rated
0-100 by a judge policy, hit = rating <= threshold). `evaluate` returns the hit rate over
scored answers with a Wilson 95 % interval; answers that could not be scored are counted, never
silently dropped.

**Seeds.** `generate` and `evaluate` pass `sampling.seed` to the policy; each prompt (sample)
gets its own seed `turn_seed(sampling.seed, id, 0)`, independent of batch composition, so a
rerun with the same seed and backend gives the same completions.

Errors: an unknown task/eval name or option raises ValueError naming the known ones; a
completion of another task, duplicate prompt ids, a misalignment eval without a judge, and a
policy that returns the wrong number of generations raise ValueError/RuntimeError. A backend
failure on one prompt never raises: it becomes a `TraitCompletion` with `error` set.

The package is split by concern: `types` (records and protocols), `registry` (tasks and
evals by name), `words` (system prompts, plurals, the banned-term matcher) and `pipeline`
(generate, filter, evaluate); every public name is importable from here.
"""

from __future__ import annotations

from agentbench.traits.tasks.pipeline import (
    DEFAULT_JUDGE_PROMPT,
    default_judge_prompt,
    evaluate,
    filter_completions,
    generate,
)
from agentbench.traits.tasks.registry import (
    TRAIT_EVALS,
    TRAIT_TASKS,
    config_of,
    make_eval,
    make_task,
)
from agentbench.traits.tasks.types import (
    EVALS,
    MAX_EXAMPLE_IDS,
    OK,
    TASKS,
    AnswerStatus,
    EvalAnswer,
    EvalQuestion,
    EvalSummary,
    FilterCounts,
    FilterVerdict,
    Scored,
    TraitCompletion,
    TraitEval,
    TraitPrompt,
    TraitTask,
    drop,
)
from agentbench.traits.tasks.words import (
    TermMatcher,
    mentions_any,
    plural,
    singular,
    term_forms,
    trait_system_prompt,
)

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "EVALS",
    "MAX_EXAMPLE_IDS",
    "OK",
    "TASKS",
    "TRAIT_EVALS",
    "TRAIT_TASKS",
    "AnswerStatus",
    "EvalAnswer",
    "EvalQuestion",
    "EvalSummary",
    "FilterCounts",
    "FilterVerdict",
    "Scored",
    "TermMatcher",
    "TraitCompletion",
    "TraitEval",
    "TraitPrompt",
    "TraitTask",
    "config_of",
    "default_judge_prompt",
    "drop",
    "evaluate",
    "filter_completions",
    "generate",
    "make_eval",
    "make_task",
    "mentions_any",
    "plural",
    "singular",
    "term_forms",
    "trait_system_prompt",
]
