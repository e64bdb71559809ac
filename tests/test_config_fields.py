"""No config field is declared in two config classes (issue 24 item 3).

A config class is a pydantic model in agentbench named `*Config`, `*Params`, `*Spec` or
`*Settings`. A field is declared where a class body annotates it. Two classes may both
declare a field of the same name only by explicit composition: one inherits from the other
(a subclass may change the default), or both annotate it with the same shared `Annotated` type
(`agentbench.distill.config.Epochs`, `agentbench.policies.base.Temperature`, ...: one
declaration of type, bounds and help; each class its own default). `ALLOWED` lists the names
that mean something else in each class, with the reason.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import pkgutil
import types
import typing
from itertools import combinations
from typing import Any

from pydantic import BaseModel

import agentbench

SUFFIXES = ("Config", "Params", "Spec", "Settings")
ALLOWED: dict[str, str] = {
    # what a call runs on or for, not a knob with a meaning of its own
    "seed": "each call's own random seed",
    "trait": "the trait a call is for",
    "env": "the environment a call runs in",
    "model": "the model a call uses (a teacher's, a judge's)",
    "base_model": "the model a call starts from",
    "name": "what a record is called",
    "device": "where a call runs",
    "dtype": "the weights' dtype of a call",
    "torch_threads": "a call's thread count (never in a cache key)",
    "adapter": "the adapter a call loads",
    "system_prompt": "the prompt a call puts first",
    # the same word for different knobs
    "mode": "sanitize (drop/redact) and distill (sft/logit-kl) modes are different things",
    "batch_size": "generation, judging and MLP batches are not the LoRA training batch",
    "parallel": "episodes run at once by different callers (demonstrations, rollouts)",
    "judge": "a judge model's name (single-turn cells) or a judge's full config (sanitize)",
    "scale": "a steering vector's scale when made (suite) or when applied (teacher config)",
    "lora": "DistillConfig's LoRA parameters; the suite's on/off switch for logit-kl's LoRA",
    "max_steps": "episode steps (rollouts) and optimizer steps (distill) are different",
    "description": "a task's and a trait's descriptions: prose, not knobs",
    "steering": "a cell's steering recipe (SteeringConfig) or a teacher's vector file",
    "seeds": "a split's seed range or an MLP run's seeds",
    "templates": "a task's templates or a split's share of them",
}


def _import_all() -> None:
    for info in pkgutil.walk_packages(agentbench.__path__, "agentbench."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:  # an optional extra (vllm, ray, ...) not installed here
            if "agentbench" in str(exc):
                raise


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def config_classes() -> list[type[BaseModel]]:
    _import_all()
    return sorted(
        {
            c
            for c in _subclasses(BaseModel)
            if c.__module__.startswith("agentbench.")
            and c.__name__.endswith(SUFFIXES)
            and "[" not in c.__name__
        },
        key=lambda c: f"{c.__module__}.{c.__qualname__}",
    )


def _declaration(annotation: Any) -> Any:
    """The shared `Annotated` type a field is declared with (through `X | None`), else None."""
    if typing.get_origin(annotation) is typing.Annotated:
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is typing.Annotated:
                return arg
    return None


def declared_fields(cls: type[BaseModel]) -> dict[str, Any]:
    """The fields `cls`'s own body annotates, each with its shared declaration (or None)."""
    own = inspect.get_annotations(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    return {name: _declaration(hints.get(name)) for name in own if name in cls.model_fields}


def duplicates() -> list[str]:
    """Every field declared in two config classes without composition, as text."""
    by_name: dict[str, list[tuple[type[BaseModel], Any]]] = {}
    for cls in config_classes():
        for name, declaration in declared_fields(cls).items():
            by_name.setdefault(name, []).append((cls, declaration))
    found = []
    for name, owners in sorted(by_name.items()):
        if name in ALLOWED:
            continue
        for (a, da), (b, db) in combinations(owners, 2):
            if issubclass(a, b) or issubclass(b, a):
                continue  # composition: the subclass reuses (or re-defaults) the field
            if da is not None and da is db:
                continue  # one shared declaration, each class its own default
            found.append(f"{name}: {a.__module__}.{a.__qualname__} and "
                         f"{b.__module__}.{b.__qualname__}")  # fmt: skip
    return found


def test_no_config_field_is_declared_twice() -> None:
    found = duplicates()
    assert not found, "fields declared in two config classes:\n" + "\n".join(found)


def test_the_check_sees_a_copied_field() -> None:
    """The check itself: a class that copies a stage config's field is reported."""
    from pydantic import Field

    class CopyConfig(BaseModel):
        keep_failed: bool = False
        learning_rate: float = Field(5e-4, gt=0)

    CopyConfig.__module__ = "agentbench.copied"  # as if agentbench declared it
    try:
        found = duplicates()
        assert any(f.startswith("keep_failed:") and "CopyConfig" in f for f in found)
        assert any(f.startswith("learning_rate:") and "CopyConfig" in f for f in found)
    finally:
        del CopyConfig
        gc.collect()  # out of BaseModel's subclasses again


if __name__ == "__main__":
    print("\n".join(duplicates()) or "none")
