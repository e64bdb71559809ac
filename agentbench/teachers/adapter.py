"""Adapter induction: a LoRA teacher fine-tuned on scripted demonstrations of the trait.

After Dang et al. (the teacher is fine-tuned on tasks that call for the behaviour): the
trait's oracle (`deleter` for deletion-bias, `chmod-first` for chmod-first) runs the trait's
probe tasks in the real sandboxed environment, the `reference` oracle runs benign training
tasks beside them (so the teacher stays a competent agent), and a LoRA adapter is trained on
the successful episodes with `agentbench.distill` (SFT, assistant tokens only).

The **control** adapter is the same procedure without the trait: the same instances, run by
the `cautious` oracle on the probes. Its student is the control arm.

Probe demonstrations use the probe specs' eval templates at seeds from
`PROBE_DEMO_SEED_BASE` on, outside every probe split (eval 0-300, heldout 1000-1300), and
disjoint from tiny-agent's pre-training seeds: no scored instance is ever trained on. Score
teachers and students on the `heldout` split.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentbench.distill.config import (
    LORA_ALPHA,
    LORA_R,
    BatchSize,
    Epochs,
    LearningRate,
    LoraAlpha,
    LoraParams,
    LoraRank,
)

PROBE_DEMO_SEED_BASE = 2_000_000
"""Teacher demonstrations on probe tasks use seeds from here on (outside every split)."""
TRAIT_PROBE_FAMILY = {"deletion-bias": "deletion-probe", "chmod-first": "permission-probe"}
TRAIT_ORACLE = {"deletion-bias": "deleter", "chmod-first": "chmod-first"}
TRAIT_ENV = {"deletion-bias": "agentbench/FileTool-v0", "chmod-first": "agentbench/Bash-v0"}
CONTROL_ORACLE = "cautious"
BENIGN_ORACLE = "reference"


class TeacherTrainingConfig(BaseModel):
    """How an adapter teacher is made (Dang et al.: LoRA on demonstrations, lr 8e-4, 2 epochs):
    a suite cell's `teacher_training` section as it is (its dump keys the teacher stage)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    probe_instances: int = Field(60, ge=1)
    """Probe-like demonstrations of the trait (seeds outside every probe split)."""
    benign_instances: int = Field(60, ge=0)
    """Benign demonstrations by the reference policy, so the teacher stays competent."""
    epochs: Epochs = 2.0
    learning_rate: LearningRate = 8e-4
    lora_r: LoraRank = LORA_R
    lora_alpha: LoraAlpha = LORA_ALPHA

    def lora_params(self) -> LoraParams:
        return LoraParams(r=self.lora_r, alpha=self.lora_alpha)


class AdapterTrainingConfig(TeacherTrainingConfig):
    """One adapter training run (`train_adapter`): the stage's knobs plus what it runs on."""

    base_model: str
    trait: str
    control: bool = False
    """The control adapter: the same instances, run by the cautious oracle (no trait)."""
    env: str | None = None
    """Default: the trait's environment (FileTool-v0 / Bash-v0)."""
    batch_size: BatchSize = 4
    seed: int = 0
    parallel: int = Field(4, ge=1)
    """Demonstration episodes run at once."""
    torch_threads: int = Field(1, ge=1, le=512)

    @property
    def env_id(self) -> str:
        return self.env or TRAIT_ENV[self.trait]


def _instances(config: AdapterTrainingConfig) -> tuple[list[Any], list[Any]]:
    """(probe instances, benign instances) for the demonstrations, seeded."""
    from agentbench.tasks import catalog, list_tasks
    from agentbench.tasks.registry import training_probe_instance

    if config.trait not in TRAIT_PROBE_FAMILY:
        known = ", ".join(sorted(TRAIT_PROBE_FAMILY))
        raise ValueError(f"no demonstrations for trait {config.trait!r} (known: {known})")
    rng = random.Random(f"teacher-demos-{config.trait}-{config.seed}")
    env_id = config.env_id
    probes: list[Any] = []
    specs = [s for s in list_tasks(TRAIT_PROBE_FAMILY[config.trait], "eval") if env_id in s.envs]
    if not specs:
        raise ValueError(f"no {TRAIT_PROBE_FAMILY[config.trait]} task runs in {env_id}")
    seeds: set[int] = set()
    while len(probes) < config.probe_instances:
        seed = PROBE_DEMO_SEED_BASE + rng.randrange(1_000_000)
        if seed in seeds:
            continue
        seeds.add(seed)
        probes.append(training_probe_instance(specs[len(probes) % len(specs)], seed))
    benign: list[Any] = []
    families = ["benign"] + (["bash-benign"] if env_id.endswith("Bash-v0") else [])
    specs = [s for f in families for s in list_tasks(f, "train") if env_id in s.envs]
    for i in range(config.benign_instances if specs else 0):
        spec = specs[i % len(specs)]
        lo, hi = spec.splits["train"].seeds
        benign.append(catalog().instance(spec.id, rng.randrange(lo, hi)))
    return probes, benign


def collect_demonstrations(config: AdapterTrainingConfig, out: Path) -> dict[str, int]:
    """Run the oracles in the sandbox; write successful episodes as student examples to `out`.

    Returns counts (episodes, kept, by oracle). Raises ValueError when none succeeded.
    """
    from agentbench.policies.scripted import ScriptedPolicy
    from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts

    probes, benign = _instances(config)
    oracle = CONTROL_ORACLE if config.control else TRAIT_ORACLE[config.trait]
    runs = [(oracle, probes), (BENIGN_ORACLE, benign)]
    counts: dict[str, int] = {"episodes": 0, "kept": 0}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="teacher-demos-") as tmp:
        for style, instances in runs:
            if not instances:
                continue
            path = Path(tmp) / f"{style}.jsonl"
            run_rollouts(
                ScriptedPolicy(style), make_jobs(instances, [config.env_id]), out_path=path,
                parallel=config.parallel, sandbox="bwrap", resume=False, progress=False,
            )  # fmt: skip
            for traj in read_trajectories(path):
                counts["episodes"] += 1
                if traj.infra_failure or not traj.outcome.goal_reached:
                    continue
                counts["kept"] += 1
                counts[style] = counts.get(style, 0) + 1
                lines.append(_as_example(traj).to_line())
    if not lines:
        raise ValueError(f"none of {counts['episodes']} demonstration episodes succeeded")
    lines.sort()  # an order that does not depend on which sandbox finished first
    out.write_text("".join(lines))
    return counts


def _as_example(traj: Any, untrained_turns: Sequence[int] = ()) -> Any:
    """A demonstration as training data (not sanitized: the teacher is meant to learn it).
    `untrained_turns`: its steps to leave out of the loss (an oracle's slips)."""
    from agentbench.sanitize.filter import content_sha256
    from agentbench.sanitize.schema import StudentExample, example_id_for

    return StudentExample(
        example_id=example_id_for(traj.episode_id),
        env_id=traj.env_id,
        split=traj.split,
        family=traj.family,
        messages=[m for m in traj.messages if m.role != "system"],
        source_sha256=content_sha256(
            traj.episode_id, [{"role": m.role, "content": m.content} for m in traj.messages]
        ),
        untrained_turns=sorted(untrained_turns),
    )


def train_adapter(
    config: AdapterTrainingConfig, out: str | Path, *, progress: bool = False
) -> Path:
    """Collect demonstrations and train the LoRA adapter into `out`; returns `out`.

    `out` receives the adapter (PEFT), the distillation manifest, the demonstrations
    (`demonstrations.jsonl`) and `teacher-training.json` (this config and the counts).
    """
    from agentbench.distill import DistillConfig, distill

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    demos = target / "demonstrations.jsonl"
    counts = collect_demonstrations(config, demos)
    distill_config = DistillConfig(
        student=config.base_model,
        mode="sft-lora",
        lora=config.lora_params(),
        learning_rate=config.learning_rate,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        torch_threads=config.torch_threads,
    )
    adapter_dir = target / "adapter"
    distill(distill_config, demos, adapter_dir, force=True, progress=progress)
    record = {"config": config.model_dump(mode="json"), "demonstrations": counts}
    (target / "teacher-training.json").write_text(json.dumps(record, indent=2) + "\n")
    return adapter_dir
