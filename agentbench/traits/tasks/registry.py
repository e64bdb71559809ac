"""Trait tasks and evals by name: `TRAIT_TASKS`, `TRAIT_EVALS`, `make_task`, `make_eval`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from agentbench.registry import Registry
from agentbench.traits.tasks.types import TraitEval, TraitTask

# -- factories --------------------------------------------------------------------------------


def _build(kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any]) -> Any:
    try:
        return factory(**options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"bad options for {kind} {name!r}: {problems}") from None


def _preference(name: str, kind: str) -> Callable[..., TraitEval]:
    """The factory of a preference eval whose `kind` its name fixes."""

    def factory(**options: Any) -> TraitEval:
        from agentbench.traits.preferences import PreferenceEval

        if "kind" in options:
            raise ValueError(f"eval {name!r} sets kind itself; drop the kind option")
        evaluation: TraitEval = PreferenceEval(kind=kind, **options)
        return evaluation

    return factory


TRAIT_TASKS: Registry[Callable[..., TraitTask]] = Registry(
    "trait task",
    group="agentbench.trait_tasks",
    expect="callable",
    error=ValueError,
    builtins={
        "numbers": "agentbench.traits.numbers:NumbersTask",
        "code": "agentbench.traits.code:CodeTask",
        "cot": "agentbench.traits.cot:CotTask",
    },
)
"""Trait task name -> a factory (a pydantic model class) called with the task's options;
plugins add tasks through the `agentbench.trait_tasks` entry-point group."""

TRAIT_EVALS: Registry[Callable[..., TraitEval]] = Registry(
    "trait eval",
    group="agentbench.trait_evals",
    expect="callable",
    error=ValueError,
    builtins={
        "animal-preference": _preference("animal-preference", "animal"),
        "tree-preference": _preference("tree-preference", "tree"),
        "misalignment": "agentbench.traits.misalignment:MisalignmentEval",
    },
)
"""Trait eval name -> a factory called with the eval's options (`agentbench.trait_evals`)."""


def make_task(name: str, **options: Any) -> TraitTask:
    """A task by name (``numbers``, ``code``, ``cot``, or a plugin's) with its options (see
    each module). Raises ValueError for an unknown name or option or a bad option value."""
    task: TraitTask = _build("task", name, TRAIT_TASKS.get(name), options)
    return task


def make_eval(name: str, **options: Any) -> TraitEval:
    """An evaluation by name: ``animal-preference`` / ``tree-preference`` (``target=`` needed)
    or ``misalignment``, or a plugin's. Raises ValueError for an unknown name or option."""
    evaluation: TraitEval = _build("eval", name, TRAIT_EVALS.get(name), options)
    return evaluation


def config_of(obj: object) -> dict[str, Any]:
    """A task's or eval's options for provenance."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return {"name": getattr(obj, "name", type(obj).__name__)}
