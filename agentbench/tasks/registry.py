"""Fixture generators, checkers and the catalog of task specs.

Generators and checkers register by name with decorators; task specs (YAML) refer to them:

    @fixture_generator("config_lookup", variables={"service", "path"})
    def config_lookup(rng: random.Random, params: dict[str, Any]) -> Generated: ...

    @checker("expect")
    def expect(ctx: CheckContext, metadata: dict[str, Any], params: dict[str, Any]) -> CheckResult:
        ...

Third-party task families register through the `agentbench.tasks` entry point group. An entry
point names a module or a callable: loading it runs its decorators; a module's `TASK_SPECS`
attribute (or the callable's return value) gives the folder(s) of YAML specs it ships.

A generator must be a pure function of its `rng`: same seed, byte-identical fixture.
"""

from __future__ import annotations

import hashlib
import operator
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from agentbench.registry import Registry
from agentbench.sandbox.fixture import Fixture
from agentbench.tasks.instance import CheckContext, CheckResult, Split, TaskInstance
from agentbench.tasks.spec import TaskSpec, TaskSpecError, load_spec_file, placeholders, render

ENTRY_POINT_GROUP = "agentbench.tasks"


@dataclass
class Generated:
    """What a generator returns for one seed."""

    fixture: Fixture
    variables: dict[str, Any] = field(default_factory=dict)
    """Values for the instruction template's placeholders."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Facts for checkers and oracle policies (expected answers, user data, plans)."""


GeneratorFn = Callable[[random.Random, dict[str, Any]], Generated]
CheckerFn = Callable[[CheckContext, dict[str, Any], dict[str, Any]], CheckResult]


@dataclass(frozen=True)
class GeneratorEntry:
    fn: GeneratorFn
    variables: frozenset[str] | None
    """Placeholders the generator always fills; None if it does not say."""


@dataclass(frozen=True)
class BoundChecker:
    """A checker with an instance's metadata and the spec's params: `TaskInstance.check`.

    A plain object rather than a closure, so that instances pickle (for worker processes).
    """

    fn: CheckerFn
    metadata: dict[str, Any]
    params: dict[str, Any]

    def __call__(self, ctx: CheckContext) -> CheckResult:
        return self.fn(ctx, self.metadata, self.params)


GENERATORS: Registry[GeneratorEntry] = Registry(
    "generator", base=GeneratorEntry, expect="instance", error=TaskSpecError
)
"""Fixture generator name -> its entry (filled by `@fixture_generator`; plugins register
through the `agentbench.tasks` group's modules, see `FAMILIES`)."""
CHECKERS: Registry[CheckerFn] = Registry("checker", expect="callable", error=TaskSpecError)
"""Checker name -> function (filled by `@checker`)."""
FAMILIES: Registry[Any] = Registry("task plugin", group=ENTRY_POINT_GROUP, error=TaskSpecError)
"""Task plugins: the `agentbench.tasks` entry points, each a module (run for its decorators;
its `TASK_SPECS` names its spec folders) or a callable returning the folders."""
_GENERATORS = GENERATORS  # the older names
_CHECKERS = CHECKERS


def fixture_generator(
    name: str, *, variables: Iterable[str] | None = None
) -> Callable[[GeneratorFn], GeneratorFn]:
    """Register a fixture generator under `name` (a later registration replaces it)."""

    def wrap(fn: GeneratorFn) -> GeneratorFn:
        entry = GeneratorEntry(fn, frozenset(variables) if variables else None)
        GENERATORS.register(name, entry, replace=True)
        return fn

    return wrap


def checker(name: str) -> Callable[[CheckerFn], CheckerFn]:
    """Register a checker under `name`."""

    def wrap(fn: CheckerFn) -> CheckerFn:
        CHECKERS.register(name, fn, replace=True)
        return fn

    return wrap


def generators() -> dict[str, GeneratorEntry]:
    _load_builtins()
    return dict(GENERATORS.items())


def checkers() -> dict[str, CheckerFn]:
    _load_builtins()
    return dict(CHECKERS.items())


# -- catalog -------------------------------------------------------------------------------


class Catalog:
    """All task specs found (built-in folder plus plugins), checked against the registries."""

    def __init__(self, spec_dirs: Iterable[Path]):
        _load_builtins()
        self.specs: dict[str, TaskSpec] = {}
        self.sources: dict[str, Path] = {}
        for folder in spec_dirs:
            if not Path(folder).is_dir():
                raise TaskSpecError(f"{folder}: task spec folder does not exist")
            for path in sorted(Path(folder).rglob("*.yaml")):
                spec = load_spec_file(path)
                self._check_refs(spec, path)
                if spec.id in self.specs:
                    raise TaskSpecError(
                        f"{path}: field id: task {spec.id!r} is already defined in "
                        f"{self.sources[spec.id]}"
                    )
                self.specs[spec.id] = spec
                self.sources[spec.id] = path

    @staticmethod
    def _check_refs(spec: TaskSpec, path: Path) -> None:
        if spec.generator.name not in GENERATORS:
            message = GENERATORS.unknown_message(spec.generator.name)
            raise TaskSpecError(f"{path}: field generator.name: {message}")
        if spec.checker.name not in CHECKERS:
            message = CHECKERS.unknown_message(spec.checker.name)
            raise TaskSpecError(f"{path}: field checker.name: {message}")
        entry = GENERATORS.get(spec.generator.name)
        if entry.variables is not None:
            for template in spec.templates:
                missing = placeholders(template.text) - entry.variables
                if missing:
                    raise TaskSpecError(
                        f"{path}: field templates.{template.id}: placeholders {sorted(missing)} "
                        f"are not filled by generator {spec.generator.name!r} "
                        f"(it fills {sorted(entry.variables)})"
                    )

    def get(self, task_id: str) -> TaskSpec:
        try:
            return self.specs[task_id]
        except KeyError:
            raise KeyError(f"unknown task {task_id!r}; see `agentbench tasks list`") from None

    def instance(self, task_id: str, seed: int) -> TaskInstance:
        spec = self.get(task_id)
        if isinstance(seed, bool):
            raise TypeError("seed must be an int, got bool")
        try:
            seed = operator.index(seed)  # numpy integers too
        except TypeError:
            raise TypeError(f"seed must be an int, got {type(seed).__name__}") from None
        split = spec.split_of(seed)
        if split is None:
            ranges = {n: list(s.seeds) for n, s in spec.splits.items()}
            raise ValueError(f"seed {seed} is in no split of {task_id!r}: {ranges}")
        return build_instance(spec, seed, split)


def seed_rng(task_id: str, seed: int, purpose: str) -> random.Random:
    """A generator independent of Python's hash seed and of the other purposes."""
    digest = hashlib.sha256(f"{task_id}\0{seed}\0{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def training_probe_instance(spec: TaskSpec, seed: int) -> TaskInstance:
    """A probe task's instance for training data (tiny-agent pre-training, teacher
    demonstrations): the eval templates (probes have no train split) at a seed outside every
    split, so that no scored instance is ever trained on. Raises ValueError for a seed inside
    a split."""
    split = spec.split_of(seed)
    if split is not None:
        raise ValueError(f"seed {seed} of {spec.id!r} is in its {split} split: not for training")
    return build_instance(spec, seed, "eval")


def build_instance(spec: TaskSpec, seed: int, split: Split) -> TaskInstance:
    """Generate one instance. Errors from a plugin's generator are re-raised as TaskSpecError."""
    entry = GENERATORS.get(spec.generator.name)
    try:
        generated = entry.fn(seed_rng(spec.id, seed, "fixture"), dict(spec.generator.params))
    except TaskSpecError:
        raise
    except Exception as exc:
        raise TaskSpecError(
            f"task {spec.id!r} seed {seed}: generator {spec.generator.name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(generated, Generated):
        raise TaskSpecError(
            f"task {spec.id!r}: generator {spec.generator.name!r} returned "
            f"{type(generated).__name__}, not Generated"
        )
    split_spec = spec.splits[split]
    template_id = seed_rng(spec.id, seed, "template").choice(split_spec.templates)
    try:
        instruction = render(spec.template(template_id).text, generated.variables)
    except KeyError as exc:
        raise TaskSpecError(
            f"task {spec.id!r} template {template_id!r}: generator gave no variable {exc}"
        ) from None
    metadata = dict(generated.metadata)
    metadata["template"] = template_id
    check_fn = CHECKERS.get(spec.checker.name)
    return TaskInstance(
        task_id=spec.id,
        family=spec.family,
        split=split,
        seed=seed,
        instruction=instruction,
        fixture=generated.fixture,
        check=BoundChecker(check_fn, metadata, dict(spec.checker.params)),
        env_ids=spec.envs,
        metadata=metadata,
    )


# -- built-ins and plugins -----------------------------------------------------------------

_builtins_loaded = False
_plugin_dirs: list[Path] | None = None


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        # Imported for their decorators.
        from agentbench.tasks import checkers as _checkers  # noqa: F401
        from agentbench.tasks.families import load_all

        load_all()


def plugin_spec_dirs() -> list[Path]:
    """Load every `agentbench.tasks` entry point once; return the spec folders they ship."""
    global _plugin_dirs
    if _plugin_dirs is None:
        _load_builtins()
        found: list[Path] = []
        for name in FAMILIES.names():
            try:
                obj = FAMILIES.get(name)
            except TaskSpecError:
                raise
            except Exception as exc:  # the plugin's own import failed
                raise TaskSpecError(
                    f"task plugin {name!r} ({FAMILIES.target(name)}) failed to load: {exc}"
                ) from exc
            specs = getattr(obj, "TASK_SPECS", None) if isinstance(obj, ModuleType) else obj()
            found.extend(_as_paths(specs))
        _plugin_dirs = found
    return list(_plugin_dirs)


def _as_paths(value: object) -> Iterator[Path]:
    if value is None:
        return
    if isinstance(value, str | Path):
        yield Path(value)
    elif isinstance(value, Iterable):
        for item in value:
            yield Path(item)
