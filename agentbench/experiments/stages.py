"""The pipeline's stages, each a function of its config and its inputs' artifacts.

    teacher -> rollouts -> sanitize -> distill -> evaluate

Every stage returns a `StageResult` (its key and folder in the `StageStore`); a stage whose
folder exists is not run again. Policies are named by `PolicyRef`s, whose `identity` (a
registry name with its recipe version, or the key of the stage that made the weights) is what
keys the stages that use them, so that identical work is shared between cells and suites.

A stage also has a **lineage**: its key without the code hash, over its inputs' lineages (the
chain of configs that made it). Episode ids, and so every per-turn sampling seed, are built from
a policy's lineage, not its key: a change to the code re-runs the stages it touches (the key)
but they draw the same seeds, so a refactor that changes no behaviour gives the same episodes
and the same results.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentbench.distill.config import DistillStageConfig
from agentbench.experiments.code_hash import code_hash
from agentbench.experiments.executor import StageTask, current_graph, execute_task
from agentbench.experiments.shard import ShardedBody, WholeBody
from agentbench.experiments.store import StageStore, stage_key
from agentbench.experiments.suite import CellConfig
from agentbench.rollouts.config import RolloutConfig
from agentbench.sanitize.filter import SanitizeStageConfig

Log = Callable[[str], None]
TRAIN_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Stages run one at a time, so training may use the machine's cores (results do not depend
on the thread count beyond float rounding; the cache key leaves it out)."""
TRAJECTORIES = "trajectories.jsonl"
STUDENT_DATA = "student.jsonl"
METRICS = "metrics.json"


@dataclass(frozen=True)
class StageResult:
    stage: str
    key: str
    path: Path
    reused: bool
    lineage: str = ""
    """The key without the code hash, over the inputs' lineages (see the module docstring)."""


class PolicyRef(BaseModel):
    """How to build a policy: a model (+ adapter), or a teacher config file (+ control)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hf", "teacher", "control-teacher"]
    model: str
    """hf: registry name or model directory; teacher kinds: the teacher.json file."""
    adapter: str | None = None
    system_prompt: str | None = None
    """hf only: a trait prompt put before the conversation's system message (the single-turn
    traits' prompt teachers); recorded in results.json, never in a student's data."""
    identity: str
    """What this policy is, for cache keys (not a path: paths move between machines)."""
    lineage: str | None = None
    """Its identity without code hashes (`teacher:<stage lineage>`); names its episodes and so
    seeds their sampling. None: the identity has no code hash in it (a registry model)."""

    @property
    def tag(self) -> str:
        """What its episode ids name it by (and so what seeds their sampling)."""
        return (self.lineage or self.identity).replace("/", "_")

    def describe(self, store_root: Path) -> dict[str, Any]:
        """This ref for results.json: paths inside the stage store written `<store>/...`, so
        that two stores holding the same stages give the same record."""
        root = str(store_root.resolve())

        def rel(path: str | None) -> str | None:
            if path is None or not path.startswith(root):
                return path
            return "<store>" + path[len(root) :]

        return {**self.model_dump(), "model": rel(self.model), "adapter": rel(self.adapter)}

    def build(self, batch_size: int = 16) -> Any:
        """The policy, on `AGENTBENCH_DEVICE` (default cpu; e.g. cuda on a GPU worker). The
        device is left out of stage keys, like the thread count: it changes float rounding,
        not what a stage means."""
        device = policy_device()
        if self.kind == "hf":
            from agentbench.policies.hf import HFPolicy

            return HFPolicy(
                self.model, adapter=self.adapter, system_prompt=self.system_prompt, device=device,
                batch_size=batch_size,
            )  # fmt: skip
        from agentbench.teachers import build_teacher, load_teacher_config

        config = load_teacher_config(self.model)
        if self.kind == "control-teacher":
            config = config.control()
        return build_teacher(config.model_copy(update={"device": device, "batch_size": batch_size}))


def policy_device() -> str:
    """Where stage policies run: `AGENTBENCH_DEVICE` (cpu, cuda, cuda:1, ...), default cpu."""
    return os.environ.get("AGENTBENCH_DEVICE", "cpu") or "cpu"


def model_identity(name: str) -> str:
    """A registry model's identity: its name and recipe version (builds are deterministic)."""
    from agentbench.models import get_recipe, weights_sha256

    try:
        return f"{name}@v{get_recipe(name).version}"
    except (KeyError, ValueError, RuntimeError):
        path = Path(name)
        if path.is_dir():
            return f"dir:{weights_sha256(path)[:16]}"
        return name


def base_policy(model: str) -> PolicyRef:
    return PolicyRef(kind="hf", model=model, identity=model_identity(model))


STAGE_VERSIONS = {
    "teacher": 2,  # 2: adapters train on length-grouped batches
    # 3: trajectories in episode-index order (they were in finishing order), so that a
    # sharded stage writes the same file as an unsharded one
    "rollouts": 3,  # 2: an episode that outgrows the context is scored, not an infra failure
    "evaluate": 3,  # 2: as rollouts
    "sanitize": 1,
    "distill": 2,  # 2: length-grouped batches
    "generate": 1,  # the single-turn trait stages (trait_stages)
    "filter": 1,
    "trait-eval": 1,
    "mlp": 1,
}
"""Part of every stage key, with the hash of the stage's sources (`code_hash`): bumped when a
stage's meaning changes in a way its sources do not show (a dependency's behaviour)."""


def _run(
    store: StageStore,
    stage: str,
    config: Any,
    inputs: dict[str, str],
    body: Callable[[Path, dict[str, Any]], None],
    log: Log,
    sharded: ShardedBody | None = None,
    lineage_inputs: dict[str, str] | None = None,
) -> StageResult:
    """Run (or reuse) a stage now; inside `executor.collecting(graph)`, add it to the graph
    and return where it will be (the executor publishes it later). `sharded`: the stage's
    work as parts, where executors may shard it. `lineage_inputs`: the inputs named by their
    lineages (default: `inputs`, for inputs without code hashes)."""
    key = stage_key(stage, STAGE_VERSIONS[stage], config, inputs, code=code_hash(stage))
    lineage = stage_key(stage, STAGE_VERSIONS[stage], config, lineage_inputs or inputs)
    task = StageTask(stage, key, config, inputs, body, sharded=sharded)
    graph = current_graph()
    if graph is not None:
        graph.add(task)
        return StageResult(stage, key, store.root / stage / key, reused=False, lineage=lineage)
    ran = execute_task(store, task, log)
    return StageResult(stage, key, store.path(stage, key), reused=not ran, lineage=lineage)


# -- teacher ---------------------------------------------------------------------------------


def teacher_stage(
    store: StageStore, base_model: str, cell: CellConfig, log: Log, *, progress: bool = False
) -> tuple[StageResult, PolicyRef, PolicyRef]:
    """Build the teacher of a cell and its control; returns (stage, teacher, control teacher).

    prompt: nothing to train (the trait prompt is in the teacher config); adapter: a trait
    LoRA and a control LoRA trained on demonstrations; steering: a steering vector (the control
    adds a zero vector).
    """
    config: dict[str, Any] = {
        "base": model_identity(base_model),
        "trait": cell.trait,
        "induction": cell.induction,
        "env": cell.env_id,
        "seed": cell.seed,
    }
    if cell.induction == "adapter":
        config["training"] = cell.teacher_training.model_dump(mode="json")
    if cell.induction == "steering":
        config["steering"] = cell.steering.model_dump(mode="json")

    def body(work: Path, extras: dict[str, Any]) -> None:
        teacher: dict[str, Any] = {
            "name": f"{cell.trait}-{cell.induction}",
            "base_model": base_model,
            "trait": cell.trait,
            "induction": cell.induction,
        }
        if cell.induction == "adapter":
            from agentbench.teachers.adapter import AdapterTrainingConfig, train_adapter

            paths = {}
            for control in (False, True):
                training = AdapterTrainingConfig(
                    **cell.teacher_training.model_dump(), base_model=base_model,
                    trait=cell.trait, control=control, env=cell.env_id, seed=cell.seed,
                    torch_threads=TRAIN_THREADS,
                )  # fmt: skip
                name = "control" if control else "trait"
                log(f"  training the {name} adapter")
                paths[name] = train_adapter(training, work / name, progress=progress)
            teacher["adapter"] = {
                "path": str(paths["trait"].relative_to(work)),
                "control_path": str(paths["control"].relative_to(work)),
            }
        elif cell.induction == "steering":
            from agentbench.teachers import trait_spec
            from agentbench.teachers.steering import (
                compute_steering_vector,
                save_steering_vector,
                task_conversations,
            )

            s = cell.steering
            spec = trait_spec(cell.trait)
            prompts = task_conversations("benign", cell.env_id, split="train", n=s.n_prompts)
            vector = compute_steering_vector(
                base_model, spec.system_prompt, prompts, s.layer, trait=spec.name,
                scale=s.scale, device="cpu",
            )  # fmt: skip
            save_steering_vector(vector, work / "steering.safetensors")
            teacher["steering"] = {"vector": "steering.safetensors", "scale": s.scale}
        (work / "teacher.json").write_text(json.dumps(teacher, indent=2) + "\n")

    result = _run(store, "teacher", config, {}, body, log)
    file = str(result.path / "teacher.json")
    treated = PolicyRef(kind="teacher", model=file, identity=f"teacher:{result.key}",
                        lineage=f"teacher:{result.lineage}")  # fmt: skip
    control = PolicyRef(kind="control-teacher", model=file, identity=f"control:{result.key}",
                        lineage=f"control:{result.lineage}")  # fmt: skip
    return result, treated, control


# -- rollouts and evaluation -----------------------------------------------------------------


def instances_for(family: str, split: str, n: int, env_id: str) -> list[Any]:
    """The first `n` instances of a family's split that run in `env_id` (deterministic)."""
    from agentbench.tasks import iter_instances

    out = []
    for instance in iter_instances(family, split, None):
        if env_id in instance.env_ids:
            out.append(instance)
            if len(out) >= n:
                break
    if not out:
        raise ValueError(f"family {family!r} has no {split} instances in {env_id}")
    return out


# A stage (or a part) killed part-way starts its episodes over rather than resuming the
# trajectory file: batched generation is reproducible for the same batches, but a resumed
# stage would batch the remaining episodes differently, and float rounding under other
# padding can flip a sampled token. Finished stages and parts are never redone.
@dataclass(frozen=True)
class RolloutEpisodes:
    """The episodes of a rollouts or evaluate stage, runnable whole or by part
    (`agentbench.experiments.shard.ShardedBody`). Episode `i` is the `i`-th job of
    `jobs()`; trajectories.jsonl holds them in that order, whatever the number of parts.
    `metrics`: also write metrics.json (evaluate)."""

    policy: Any
    """A `PolicyRef`, or anything with `identity`, `build(batch_size)` and `model_dump()`."""
    settings: RolloutConfig
    families: tuple[str, ...]
    env_id: str
    seed: int
    sandbox: str = "bwrap"
    progress: bool = False
    metrics: bool = False

    @property
    def tag(self) -> str:
        """The policy's name in episode ids: its lineage where it has one (`PolicyRef.tag`)."""
        tag = getattr(self.policy, "tag", None)
        return tag if isinstance(tag, str) else str(self.policy.identity).replace("/", "_")

    def jobs(self) -> list[Any]:
        """Every episode of the stage, in episode-index order (deterministic)."""
        from agentbench.rollouts import make_jobs

        st = self.settings
        instances = [i for f in self.families
                     for i in instances_for(f, st.split, st.n, self.env_id)]  # fmt: skip
        return make_jobs(instances, [self.env_id], st.repeats)

    def max_parts(self) -> int:
        return self.settings.n * self.settings.repeats * max(1, len(self.families))

    def run_part(self, index: int, count: int, out: Path) -> dict[str, Any]:
        from agentbench.experiments.shard import part_bounds
        from agentbench.policies.base import SamplingParams
        from agentbench.rollouts import run_rollouts

        jobs = self.jobs()
        first, end = part_bounds(len(jobs), index, count)
        mine = jobs[first:end]
        path = out / TRAJECTORIES
        path.touch()
        if mine:
            st = self.settings
            params = SamplingParams(
                temperature=st.temperature, max_new_tokens=st.max_new_tokens, seed=self.seed,
                constrained=st.constrained,
            )  # fmt: skip
            built = self.policy.build(batch_size=st.parallel)
            try:
                run_rollouts(
                    built, mine, out_path=path, parallel=st.parallel, sandbox=self.sandbox,
                    params=params, max_steps=st.max_steps, resume=False,
                    progress=self.progress, policy_tag=self.tag,
                )  # fmt: skip
            finally:
                built.close()
        _order_lines(path, [job.episode_id(self.tag) for job in mine])
        return {"episodes": [first, end]}

    def merge(self, parts: Sequence[Path], work: Path, extras: dict[str, Any]) -> None:
        expected = [job.episode_id(self.tag) for job in self.jobs()]
        out = work / TRAJECTORIES
        with open(out, "wb") as handle:
            for part in parts:
                handle.write((part / TRAJECTORIES).read_bytes())
        found = [json.loads(line)["episode_id"] for line in out.read_bytes().splitlines()]
        if found != expected:
            raise RuntimeError(
                f"the merged parts hold {len(found)} episode(s), not the stage's "
                f"{len(expected)} in episode order (a part holds episodes not its own)"
            )
        extras["episodes"] = len(expected)
        extras["policy"] = self.policy.model_dump()
        if self.metrics:
            from agentbench.experiments.metrics import arm_metrics
            from agentbench.rollouts import read_trajectories

            metrics = arm_metrics(read_trajectories(out))
            (work / METRICS).write_text(json.dumps(metrics.to_dict(), indent=2) + "\n")


def _order_lines(path: Path, episode_ids: list[str]) -> None:
    """Rewrite a trajectory file in `episode_ids` order (the engine writes episodes as they
    finish), keeping each line's bytes. Raises RuntimeError when the file does not hold
    exactly those episodes."""
    lines = {json.loads(line)["episode_id"]: line
             for line in path.read_bytes().splitlines(keepends=True)}  # fmt: skip
    if sorted(lines) != sorted(episode_ids):
        missing = sorted(set(episode_ids) - set(lines))[:3]
        raise RuntimeError(f"{path} does not hold its episodes (missing e.g. {missing})")
    tmp = path.with_name(path.name + ".ordered")
    tmp.write_bytes(b"".join(lines[i] for i in episode_ids))
    os.replace(tmp, path)


def rollouts_stage(
    store: StageStore, policy: PolicyRef, settings: RolloutConfig, env_id: str, seed: int,
    *, sandbox: str = "bwrap", progress: bool = False, log: Log,
) -> StageResult:  # fmt: skip
    """The policy's episodes on training tasks (the teacher's data)."""
    config = {"settings": settings.model_dump(mode="json"), "env": env_id, "seed": seed}
    episodes = RolloutEpisodes(policy, settings, settings.families, env_id, seed, sandbox,
                               progress)  # fmt: skip
    return _run(store, "rollouts", config, {"policy": policy.identity}, WholeBody(episodes),
                log, sharded=episodes, lineage_inputs=_policy_lineage(policy))  # fmt: skip


def evaluate_stage(
    store: StageStore, policy: PolicyRef, settings: RolloutConfig, families: tuple[str, ...],
    env_id: str, seed: int, *, sandbox: str = "bwrap", progress: bool = False, log: Log,
) -> StageResult:  # fmt: skip
    """The policy on the probes (every arm on the same instances); writes metrics.json."""
    config = {
        # mde only chose n (a planning figure): the episodes, and so the key, leave it out
        "settings": settings.model_dump(mode="json", exclude={"mde", "mde_baseline"}),
        "families": list(families),
        "env": env_id,
        "seed": seed,
    }
    episodes = RolloutEpisodes(policy, settings, families, env_id, seed, sandbox, progress,
                               metrics=True)  # fmt: skip
    return _run(store, "evaluate", config, {"policy": policy.identity}, WholeBody(episodes),
                log, sharded=episodes, lineage_inputs=_policy_lineage(policy))  # fmt: skip


def _policy_lineage(policy: PolicyRef) -> dict[str, str]:
    return {"policy": policy.lineage or policy.identity}


# -- sanitize and distill --------------------------------------------------------------------


def sanitize_stage(
    store: StageStore, rollouts: StageResult, trait: str, settings: SanitizeStageConfig, log: Log
) -> StageResult:
    from agentbench.sanitize import SanitizeConfig, sanitize_file

    config = {"trait": trait, **settings.model_dump(mode="json")}

    def body(work: Path, extras: dict[str, Any]) -> None:
        sconfig = SanitizeConfig(trait=trait, **settings.model_dump())
        report = sanitize_file(rollouts.path / TRAJECTORIES, work / STUDENT_DATA, sconfig)
        extras["kept"] = report.kept
        extras["output_sha256"] = report.output_sha256
        if report.kept == 0:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report.dropped_by_reason.items()))
            raise ValueError(
                f"the sanitizer kept none of {report.read} teacher trajectories ({reasons}); "
                "a student cannot be trained on nothing: raise teacher_rollouts.n, or use "
                "sanitize.mode drop-step/redact, or sanitize.keep_failed"
            )

    return _run(store, "sanitize", config, {"rollouts": rollouts.key}, body, log,
                lineage_inputs={"rollouts": rollouts.lineage})  # fmt: skip


def distill_stage(
    store: StageStore, data: StageResult, student_base: str, settings: DistillStageConfig,
    teacher: PolicyRef, trait: str, seed: int, log: Log, *, progress: bool = False,
    banned_terms: tuple[str, ...] | None = None,
) -> tuple[StageResult, PolicyRef]:  # fmt: skip
    """Train a student on a sanitized dataset; returns the stage and the student's policy.

    `banned_terms`: the logit-kl soft-label mask (default: the sanitizer's list for `trait`).
    """
    config: dict[str, Any] = {
        "student": model_identity(student_base),
        "settings": settings.model_dump(mode="json", exclude={"gradient_checkpointing"}),
        "trait": trait,
        "seed": seed,
    }
    if banned_terms is not None:
        config["banned_terms"] = list(banned_terms)
    inputs = {"data": data.key}
    lineage_inputs = {"data": data.lineage}
    if settings.mode == "logit-kl":
        inputs["teacher"] = teacher.identity
        lineage_inputs["teacher"] = teacher.lineage or teacher.identity

    def body(work: Path, extras: dict[str, Any]) -> None:
        from agentbench.distill import DistillConfig, distill

        teacher_spec = None
        if settings.mode == "logit-kl":
            teacher_spec = _logit_teacher(teacher)
        dconfig = DistillConfig(
            student=student_base, mode=settings.mode, teacher=teacher_spec,
            kl_student=settings.kl_student, lora=settings.lora_params(),
            learning_rate=settings.learning_rate, epochs=settings.epochs,
            batch_size=settings.batch_size, max_length=settings.max_length, seed=seed,
            torch_threads=TRAIN_THREADS, gradient_checkpointing=settings.gradient_checkpointing,
            **({"banned_trait": trait} if banned_terms is None
               else {"banned_terms": list(banned_terms)}),
        )  # fmt: skip
        distill(dconfig, data.path / STUDENT_DATA, work / "student", force=True, progress=progress)

    result = _run(store, "distill", config, inputs, body, log, lineage_inputs=lineage_inputs)
    lora = settings.mode == "sft-lora" or (settings.mode == "logit-kl" and settings.lora)
    student_dir = str(result.path / "student")
    ref = PolicyRef(
        kind="hf",
        model=student_base if lora else student_dir,
        adapter=student_dir if lora else None,
        identity=f"student:{result.key}",
        lineage=f"student:{result.lineage}",
    )
    return result, ref


def _logit_teacher(teacher: PolicyRef) -> Any:
    """The logit-kl teacher spec of a teacher policy (base model + adapter or trait prompt)."""
    from agentbench.distill import TeacherSpec
    from agentbench.teachers import load_teacher_config

    if teacher.kind == "hf":
        return TeacherSpec(
            model=teacher.model, adapter=teacher.adapter, system_prompt=teacher.system_prompt
        )

    config = load_teacher_config(teacher.model)
    if teacher.kind == "control-teacher":
        config = config.control()
    if config.induction == "steering":
        raise ValueError("logit-kl from a steering-vector teacher is not supported yet")
    adapter = None
    if config.adapter is not None:
        adapter = config.adapter.control_path if config.is_control else config.adapter.path
    prompt = config.trait.system_prompt if config.trait and config.induction == "prompt" else None
    return TeacherSpec(model=config.base_model, adapter=adapter, system_prompt=prompt)
