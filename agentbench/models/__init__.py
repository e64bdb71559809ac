"""The model registry: short names -> recipes that build a local model directory.

This package holds only the registry. The recipes (the builds, which pre-train, roll out
and distill through the layers above) live in `agentbench.recipes` and are named here by
`"module:attr"` strings, loaded the first time a name's recipe is asked for
(`get_recipe`), so resolving a model loads no training code at import time. Plugins add
recipes through the `agentbench.models` entry-point group (an entry point naming a
`ModelRecipe`).

`resolve_model(name_or_path)` is how every backend finds weights. It accepts

- a registry name (`list_models()`), built on first use into
  `cache_dir("models", name)` and reused afterwards;
- an existing local directory holding a transformers model (config, safetensors, tokenizer);
- a Hugging Face hub id, downloaded with `huggingface_hub` where it and a network exist.

Builds are atomic: a recipe writes into a temporary directory next to the cache entry, which is
renamed into place only once complete (with a `agentbench-model.json` marker holding the
weights hash), so a killed build never leaves a half-written model behind. A file lock keeps
two processes from building the same model at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agentbench.errors import ConfigError
from agentbench.paths import cache_dir
from agentbench.registry import Registry

MARKER = "agentbench-model.json"


class ModelError(ConfigError, RuntimeError):
    """Raised when a model cannot be resolved, loaded or built (unknown name, missing files,
    failed build)."""


@dataclass(frozen=True)
class Pace:
    """What a model cost in a suite on 2 CPU cores, as measured: seconds per episode (8
    steps, 96 new tokens, batched) and per training stage. A suite's `--dry-run` estimate
    uses its base model's pace."""

    episode_s: float
    """An episode in an environment `env_episode_s` does not name."""
    train_s: float
    """A student's distillation stage."""
    measured: str
    """Where the figures come from."""
    teacher_s: float | None = None
    """A teacher stage (the trait adapter and its control); None: `train_s`."""
    env_episode_s: dict[str, float] = field(default_factory=dict, hash=False)
    """Seconds per episode by environment id: a FileTool episode, with its long system
    prompt and file listings, can cost several Bash ones. Left out of the hash (a dict has
    none), so a `Pace`, and the `ModelRecipe` holding it, stays hashable."""

    def episode_seconds(self, env: str | None) -> float:
        return self.env_episode_s.get(env, self.episode_s) if env else self.episode_s

    def stage_seconds(self, stage: str) -> float:
        """A training stage's cost: `teacher_s` for a teacher stage, else `train_s`."""
        return self.teacher_s if stage == "teacher" and self.teacher_s else self.train_s

    def describe(self) -> str:
        """The figures in words, for a dry run's estimate line."""
        episodes = [
            f"{s:g} s an episode of {env.split('/')[-1]}" for env, s in self.env_episode_s.items()
        ]
        episodes.append(f"{self.episode_s:g} s " + ("elsewhere" if episodes else "an episode"))
        training = (
            f"{self.teacher_s:g} s a teacher stage, {self.train_s:g} s a student"
            if self.teacher_s
            else f"{self.train_s:g} s a training stage"
        )
        return ", ".join(episodes) + "; " + training


@dataclass(frozen=True)
class ModelRecipe:
    """How to build one registry model into a directory."""

    name: str
    description: str
    build: Callable[[Path], None]
    """Writes config, safetensors weights and tokenizer into the (empty) directory given."""
    version: int = 1
    """Bump to invalidate cached builds when the recipe changes."""
    pace: Pace | None = None


MODELS: Registry[ModelRecipe] = Registry(
    "model",
    group="agentbench.models",
    base=ModelRecipe,
    expect="instance",
    error=ModelError,
    builtins={
        "smollm2-135m": "agentbench.recipes.smollm2:RECIPE",
        "smollm2-135m-agent": "agentbench.recipes.smollm2_agent:RECIPE",
        "tiny-random-llama": "agentbench.recipes.tiny:RECIPE",
        "tiny-agent": "agentbench.recipes.tiny_agent:RECIPE",
        "tiny-agent-b": "agentbench.recipes.tiny_agent:RECIPE_B",
    },
)
"""Registry name -> `ModelRecipe` (or the `"module:attr"` string of one, loaded on first use).
A recipe's `name` must equal its registry name."""

_REGISTRY = MODELS  # the name the tests patch entries into

DEFAULT_PACE_MODEL = "tiny-agent"
"""The model whose measured pace a dry run's estimate uses when the base model has none."""


def register_model(recipe: ModelRecipe) -> None:
    """Add a recipe under its name. Raises ValueError when the name is taken."""
    MODELS.register(recipe.name, recipe)


def list_models() -> list[ModelRecipe]:
    """Every registry recipe, by name (this loads each recipe's module)."""
    return [get_recipe(name) for name in MODELS.names()]


def get_recipe(name: str) -> ModelRecipe:
    """The recipe registered as `name`. Raises ModelError for an unknown name (with the known
    ones and the closest match) or an entry that is not a `ModelRecipe` named `name`."""
    recipe = MODELS.get(name)
    if recipe.name != name:
        raise ModelError(f"registry model {name!r} resolves to a recipe named {recipe.name!r}")
    return recipe


def default_pace() -> Pace:
    """tiny-agent's measured pace on 2 cores: what a dry run estimates with by default."""
    pace = get_recipe(DEFAULT_PACE_MODEL).pace
    assert pace is not None, "the default pace model declares its pace"
    return pace


def model_dir(name: str) -> Path:
    """Where a registry model lives once built (it may not be built yet)."""
    get_recipe(name)
    return cache_dir("models") / name


def is_built(name: str) -> bool:
    return _read_marker(model_dir(name), get_recipe(name).version) is not None


def weights_sha256(path: str | Path) -> str:
    """sha256 over a model directory's safetensors files (names and bytes, in name order)."""
    root = Path(path)
    files = sorted(p for p in root.glob("*.safetensors") if p.is_file())
    if not files:
        raise ModelError(f"no .safetensors files in {root}")
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_weights_sha256(path: str | Path) -> str:
    """The weights hash, read from a registry build's marker when present (no re-hashing)."""
    marker = Path(path) / MARKER
    try:
        value = json.loads(marker.read_text())["weights_sha256"]
        if isinstance(value, str):
            return value
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return weights_sha256(path)


def build_model(name: str, *, force: bool = False) -> Path:
    """Build a registry model into the cache (no-op when already built unless `force`)."""
    recipe = get_recipe(name)
    target = model_dir(name)
    with _build_lock(target):
        if not force and _read_marker(target, recipe.version) is not None:
            return target
        # Holding the lock, any temp dir of this model is an orphan of a killed build.
        for orphan in target.parent.glob(f".{name}.building-*"):
            shutil.rmtree(orphan, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=target.parent))
        try:
            recipe.build(tmp)
            marker = {
                "name": name,
                "recipe_version": recipe.version,
                "weights_sha256": weights_sha256(tmp),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            if target.exists():
                # An earlier, stale or interrupted entry: replace it wholesale.
                old = target.with_name(f".{name}.old-{time.time_ns()}")
                target.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def resolve_model(name_or_path: str | Path, *, build: bool = True) -> Path:
    """A local directory with safetensors weights and a tokenizer for `name_or_path`.

    Raises `ModelError` for an unknown name, a path without weights, or a hub id that cannot
    be downloaded.
    """
    text = str(name_or_path)
    if text in MODELS:
        if build:
            return build_model(text)
        target = model_dir(text)
        if _read_marker(target, get_recipe(text).version) is None:
            raise ModelError(f"model {text!r} is not built; run `agentbench models build {text}`")
        return target
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path} is not a model directory")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} has no config.json: not a transformers model directory")
        if not any(path.glob("*.safetensors")):
            raise ModelError(f"{path} holds no .safetensors weights")
        return path.resolve()
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _download_hub(text)
    known = ", ".join(MODELS.names())
    raise ModelError(
        f"{text!r} is neither a registry model ({known}) nor an existing directory nor a hub id"
    )


def _download_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(
            f"{repo_id!r} looks like a hub id, but huggingface_hub is not installed "
            "(and no network may exist here): pass a registry name or a local directory"
        ) from None
    try:
        return Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
            )
        )
    except Exception as exc:  # the hub client raises many unrelated types
        raise ModelError(f"cannot download {repo_id!r} from the hub: {exc}") from exc


def _read_marker(target: Path, version: int) -> dict[str, object] | None:
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("recipe_version") != version:
        return None
    return marker


@contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    lock_path = target.with_name(f".{target.name}.lock")
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = [
    "DEFAULT_PACE_MODEL",
    "MODELS",
    "ModelError",
    "ModelRecipe",
    "Pace",
    "build_model",
    "default_pace",
    "get_recipe",
    "is_built",
    "list_models",
    "model_dir",
    "model_weights_sha256",
    "register_model",
    "resolve_model",
    "weights_sha256",
]
