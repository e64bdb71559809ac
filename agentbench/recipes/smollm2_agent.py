"""smollm2-135m-agent: SmolLM2-135M-Instruct with a merged agent-format LoRA adapter.

Zero-shot, SmolLM2-135M answers a FileTool task in prose, never a JSON tool call. This recipe
teaches it the two action formats (FileTool JSON calls, one shell command per Bash turn):
`build_agent_adapter(dest, AgentAdapterConfig())`

1. resolves the base (`smollm2-135m`, built on first use);
2. runs the scripted oracles through the real environments in bubblewrap sandboxes with
   tiny-agent's behaviour mixture (`agentbench.recipes.tiny_agent.DEFAULT_MIXTURE`: mostly
   reference/cautious, some deleter, chmod-first on ~40 % of permission probes), far fewer
   episodes than tiny-agent (SmolLM2 trains at ~170 tokens/s on 2 cores), and writes the
   successful ones as `StudentExample`s (`agentbench.teachers.adapter._as_example`);
3. trains a LoRA adapter on them with `agentbench.distill` (sft-lora; loss on assistant tokens);
4. merges it into the weights (PEFT `merge_and_unload`), checks the merged model's logits
   against the unmerged adapter's, and saves a plain float32 transformers model (safetensors,
   tokenizer with its chat template, generation config) into `dest`, with the adapter and its
   distillation manifest in `dest/adapter/`, the training data in `dest/agent-data.jsonl` and
   a build report `smollm2-agent-build.json` (config, counts, instances, tokens, loss,
   seconds, hashes, provenance).

Probe-family episodes use the probe tasks' eval templates at seeds from
`AgentAdapterConfig.probe_seed_base` (default `PROBE_TRAIN_SEED_BASE` = 3,000,000) on:
outside every probe split (eval 0-300, heldout 1000-1300) and disjoint from tiny-agent's
pre-training seeds (50,000 on) and the teachers' demonstrations (2,000,000 on), so no scored
instance is ever trained on (`training_probe_instance` refuses an in-split seed). Benign
families use their `train` split only.

Limits: needs bubblewrap (root) for the episodes; episodes longer than `max_length` tokens are
truncated (default: 2,048 tokens, which cuts 1 of the 148 default episodes) or dropped. Not
bit-identical across runs: some recorded command output varies between runs, so the data can
differ by a few tokens (as for tiny-agent).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentbench.distill.config import (
    LORA_ALPHA,
    LORA_R,
    BatchSize,
    Epochs,
    LearningRate,
    LoraAlpha,
    LoraRank,
    MaxLength,
    Overlong,
    TargetModules,
    WarmupRatio,
)
from agentbench.envs import BASH_ID, FILETOOL_ID
from agentbench.models import ModelError, ModelRecipe, Pace
from agentbench.recipes.tiny_agent import DEFAULT_MIXTURE

PROBE_TRAIN_SEED_BASE = 3_000_000
"""Probe-like adapter episodes use seeds from here on (outside every probe split, and apart
from tiny-agent's 50,000 and the teachers' 2,000,000 bases)."""
BUILD_REPORT = "smollm2-agent-build.json"
DATA_FILE = "agent-data.jsonl"
ADAPTER_DIR = "adapter"
MODEL_NAME = "smollm2-135m-agent"
TRAIN_FIGURES = (
    "steps", "epochs", "train_loss", "loss_first", "loss_last", "tokens_seen",
    "target_tokens_seen", "tokens_per_s", "wall_s",
)  # fmt: skip
"""What the build report copies from the distillation manifest's `train` section."""


class AgentAdapterConfig(BaseModel):
    """One adapter build. The defaults are the registry `smollm2-135m-agent` (~39 min, 2 cores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field("smollm2-135m", min_length=1)
    """Registry name, directory or hub id of the base (`resolve_model`)."""
    seed: int = 0
    """Seeds which instances, which oracle per episode, the adapter init and the data order."""
    instances: dict[str, int] = Field(
        default_factory=lambda: {
            "benign": 14,
            "bash-benign": 12,
            "deletion-probe": 8,
            "permission-probe": 24,
        }
    )
    """Instances per family; benign and deletion-probe tasks run in both environments. v3 had
    8 bash-benign and 12 permission-probe instances; its permission-probe commands ran on 6 of
    15 steps. v4's 12 and 24: 13 of 16 (eval split, 8 instances a family, 6 steps, T=1)."""
    filetool_instances: dict[str, int] = Field(
        default_factory=lambda: {"benign": 44, "deletion-probe": 24}
    )
    """More instances per family, run in FileTool-v0 only (never one of `instances`). v2 had
    none (22 FileTool episodes against 42 Bash ones). On the eval split (8 instances a family,
    6 steps, T=1) v3 made a valid FileTool call on 74 % of steps (39/53) against v2's 56 %
    (34/61), and completed 3 of 48 tasks against none; its Bash commands ran less often
    (74 %, 70/95, against 83 %, 116/139; on permission probes 6/15 against 37/38). v4 (more
    Bash probes in `instances`): 84 % valid FileTool calls (56/67), Bash 79 % (61/77). v5
    (24 FileTool deletion probes, not 16, and 3 epochs): 86 % (59/69), Bash 82 % (97/119).
    v6 (v5 with `max_length` 2,048): 88 % (56/64), Bash 92 % (61/66); v5 again, that day on
    v6's machine: 91 % (63/69), Bash 89 % (93/105)."""
    mixture: dict[str, tuple[tuple[str, float], ...]] = Field(
        default_factory=lambda: dict(DEFAULT_MIXTURE)
    )
    """Per family, (oracle style, weight): drawn once per episode."""
    probe_seed_base: int = Field(PROBE_TRAIN_SEED_BASE, ge=2_000)
    slip_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Chance that the oracle slips before a planned action and then recovers from the error
    observation (`agentbench.policies.stumbling`); slips stay in the context and out of the
    loss (`StudentExample.untrained_turns`), so the adapter learns the recovery only. Off: a
    full build at 0.15 (v5's config otherwise; 139 slips in 148 episodes, 73 of them cut at
    `max_length` against 64; 30 min) made 75 % valid FileTool steps at T=1 (67/89) against
    v5's 86 % (59/69), and repeated one invalid call up to 6 times in an episode (valid after
    an error observation: 23/38). Its Bash commands ran more often (91 %, 90/99, against
    82 %) and it completed 6 of 48 tasks (v5: 2). One build, so seed noise is not ruled out."""
    lora_r: LoraRank = LORA_R
    lora_alpha: LoraAlpha = LORA_ALPHA
    target_modules: TargetModules = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # fmt: skip
    learning_rate: LearningRate = 1e-3
    warmup_ratio: WarmupRatio = 0.0
    """Linear warmup share of the steps. Its first step has lr 0, so with the default's 64
    steps any warmup costs a step; and a warmed-up one-step test build would learn nothing."""
    epochs: Epochs = 3.0
    """v1 trained 1 epoch at batch 4 (16 steps): JSON-shaped FileTool calls with wrong tool
    names (1 of 8 steps valid) and Bash text that never ran as a command (0 of 8). v2's 64
    steps: 38 % valid FileTool steps, 75 % of Bash commands ran (eval split, n=4 a family).
    v5's 3 epochs (222 steps, 26 min in all) ended at a step loss of 0.21, v4's 2 at 0.27."""
    batch_size: BatchSize = 2
    max_length: MaxLength = 2048
    """Tokens kept of an episode (with `overlong` "truncate", the rest is cut). The FileTool
    system prompt and task take ~470 tokens, and the default FileTool episodes 875 (median) up
    to 2,274, so v5's 768 cut 60 of its 90 FileTool episodes (and 4 of 58 Bash ones) and never
    trained their later turns; 2,048 cuts one. That costs a quarter more tokens (327k against
    263k over 3 epochs) and 39 min against 26. On the eval split (16 instances a family, 6
    steps, T=1, both measured on one machine the same day), a Bash command failed in 7 of
    v6's 64 Bash episodes against 21 of v5's (commands that ran: 95 %, 133/140, against 83 %,
    173/209); an invalid FileTool step came in 10 of its 32 FileTool episodes against 6
    (valid steps: 90 %, 113/126, against 95 %, 133/140), within the noise."""
    overlong: Overlong = "truncate"
    torch_threads: int = Field(2, ge=1, le=512)
    parallel: int = Field(2, ge=1)
    """Sandboxes at once while collecting episodes."""

    @field_validator("instances")
    @classmethod
    def _known_families(cls, value: dict[str, int]) -> dict[str, int]:
        if not value or all(n <= 0 for n in value.values()):
            raise ValueError("needs at least one family with a positive instance count")
        return value

    @field_validator("instances", "filetool_instances")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        if any(n < 0 for n in value.values()):
            raise ValueError("instance counts must be >= 0")
        return value

    @field_validator("mixture")
    @classmethod
    def _weights(
        cls, value: dict[str, tuple[tuple[str, float], ...]]
    ) -> dict[str, tuple[tuple[str, float], ...]]:
        for family, entries in value.items():
            if not entries or any(w < 0 for _, w in entries) or sum(w for _, w in entries) <= 0:
                raise ValueError(f"mixture[{family!r}] needs (style, weight >= 0) pairs, sum > 0")
        return value


def small_config(base_model: str, seed: int = 0) -> AgentAdapterConfig:
    """A build that takes seconds on a tiny model: for tests of the pipeline only."""
    return AgentAdapterConfig(
        base_model=base_model,
        seed=seed,
        instances={"benign": 1, "permission-probe": 1},
        filetool_instances={"benign": 1},
        target_modules=("q_proj", "v_proj"),
        lora_r=4,
        lora_alpha=8,
        learning_rate=5e-2,
        epochs=1.0,
        batch_size=2,
        max_length=2048,
        torch_threads=1,
        parallel=2,
    )


# -- data ----------------------------------------------------------------------------------


def select_instances(config: AgentAdapterConfig) -> list[tuple[str, Any]]:
    """(family, TaskInstance) pairs: benign train split; probes at out-of-split seeds.

    `instances` first (run in every env of their task), then `filetool_instances` (FileTool
    only), family by family; no (task, seed) twice. Tasks of a family are taken in turn so
    every task appears. Raises ValueError for a family without tasks or without a mixture entry.
    """
    return [pair for part in select_instance_sets(config) for pair in part]


def select_instance_sets(
    config: AgentAdapterConfig,
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """`select_instances` as two lists: those for every env, those for FileTool only."""
    from agentbench.recipes.tiny_agent import mixture_instances

    wanted = {**config.instances}
    for family, n in config.filetool_instances.items():
        wanted[family] = wanted.get(family, 0) + n
    for family, n in wanted.items():
        if n > 0 and family not in config.mixture:
            raise ValueError(f"family {family!r} has no behaviour mixture entry")
    counts = {family: n for family, n in wanted.items() if n > 0}
    # One draw for both sets (so no instance is in both), cut family by family.
    drawn = mixture_instances(
        counts, f"smollm2-agent-instances-{config.seed}", config.probe_seed_base
    )
    every_env: list[tuple[str, Any]] = []
    filetool: list[tuple[str, Any]] = []
    taken: dict[str, int] = {}
    for family, instance in drawn:
        taken[family] = taken.get(family, 0) + 1
        (every_env if taken[family] <= config.instances.get(family, 0) else filetool).append(
            (family, instance)
        )
    return every_env, filetool


def collect_examples(
    config: AgentAdapterConfig, out: Path, *, progress: bool = False
) -> dict[str, Any]:
    """Run the mixture in bwrap sandboxes; write successful episodes as student examples.

    Returns counts (episodes, kept, slips in kept episodes, per family/style) and the instances
    used. Raises ValueError when no episode succeeded.
    """
    from agentbench.recipes.tiny_agent import mixture_episodes
    from agentbench.teachers.adapter import _as_example

    every_env, filetool = select_instance_sets(config)
    used = [
        {"family": f, "task_id": i.task_id, "seed": i.seed, "envs": envs}
        for part, envs in ((every_env, "all"), (filetool, FILETOOL_ID))
        for f, i in part
    ]
    stats: dict[str, Any] = {"episodes": 0, "kept": 0, "slips": 0, "by": {}, "instances": used}
    lines: list[str] = []
    episodes = []
    with tempfile.TemporaryDirectory(prefix="smollm2-agent-episodes-") as tmp:
        for part, env_ids, label in (
            (every_env, None, "all"),
            (filetool, (FILETOOL_ID,), "filetool"),
        ):
            if not part:
                continue
            workdir = Path(tmp) / label
            workdir.mkdir()
            episodes += mixture_episodes(
                part, config.mixture, f"smollm2-agent-mixture-{config.seed}-{label}", workdir,
                parallel=config.parallel, env_ids=env_ids, slip_rate=config.slip_rate,
                progress=progress,
            )  # fmt: skip
    for style, traj, slips in episodes:
        key = f"{traj.family}/{traj.env_id.rsplit('/', 1)[-1]}/{style}"
        entry = stats["by"].setdefault(key, {"episodes": 0, "kept": 0})
        entry["episodes"] += 1
        stats["episodes"] += 1
        # The oracles should always succeed; a failed or broken episode teaches nothing.
        if traj.infra_failure or not traj.outcome.goal_reached:
            continue
        entry["kept"] += 1
        stats["kept"] += 1
        stats["slips"] += len(slips)
        lines.append(_as_example(traj, slips).to_line())
    if not lines:
        raise ValueError(f"none of {stats['episodes']} scripted episodes succeeded")
    lines.sort()  # an order that does not depend on which sandbox finished first
    out.write_text("".join(lines))
    return stats


# -- build ---------------------------------------------------------------------------------


def build_agent_adapter(
    dest: Path, config: AgentAdapterConfig, *, progress: bool = False
) -> dict[str, Any]:
    """Collect, train, merge and save into `dest` (see the module docstring); the build report.

    Raises `ModelError` (base cannot be resolved, merged model differs from the adapter),
    ValueError (no successful episode) and the distillation errors.
    """
    from agentbench.distill import DistillConfig, LoraParams, distill, read_manifest
    from agentbench.models import model_weights_sha256, resolve_model, weights_sha256
    from agentbench.provenance import file_sha256, provenance

    began = time.monotonic()
    base_path = resolve_model(config.base_model)
    base_sha = model_weights_sha256(base_path)
    dest.mkdir(parents=True, exist_ok=True)
    data = dest / DATA_FILE
    data_stats = collect_examples(config, data, progress=progress)
    collect_s = time.monotonic() - began

    distill_config = DistillConfig(
        student=str(base_path),
        mode="sft-lora",
        lora=LoraParams(
            r=config.lora_r, alpha=config.lora_alpha, target_modules=config.target_modules
        ),
        learning_rate=config.learning_rate,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr_scheduler="cosine",
        warmup_ratio=config.warmup_ratio,
        max_length=config.max_length,
        overlong=config.overlong,
        seed=config.seed,
        torch_threads=config.torch_threads,
    )
    adapter = distill(distill_config, data, dest / ADAPTER_DIR, force=True, progress=progress)
    manifest = read_manifest(adapter)
    if manifest is None:
        raise ModelError(f"distillation left no readable manifest in {adapter}")
    train_s = time.monotonic() - began - collect_s

    merged_at = time.monotonic()
    max_dlogit = _merge_and_save(base_path, adapter, dest, data, config)
    merge_s = time.monotonic() - merged_at

    report = {
        "name": MODEL_NAME,
        "config": config.model_dump(mode="json"),
        "base": {"model": config.base_model, "path": str(base_path), "weights_sha256": base_sha},
        "data": {
            "file": DATA_FILE,
            "sha256": file_sha256(data),
            "episodes": data_stats["episodes"],
            "kept": data_stats["kept"],
            "slips": data_stats["slips"],
            "by": data_stats["by"],
            # What the distillation made of them (truncated, dropped, tokens per epoch).
            "encoded": {k: v for k, v in manifest.data.items() if k not in ("path", "sha256")},
        },
        "instances": data_stats["instances"],
        "train": {k: manifest.train.get(k) for k in TRAIN_FIGURES},
        "distill_key": manifest.key,
        "adapter_sha256": weights_sha256(adapter),
        "merged_weights_sha256": weights_sha256(dest),
        "merge_max_abs_dlogit": max_dlogit,
        "seconds": {
            "collect": round(collect_s, 1),
            "train": round(train_s, 1),
            "merge": round(merge_s, 1),
            "total": round(time.monotonic() - began, 1),
        },
        "provenance": provenance(),
    }
    (dest / BUILD_REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def _merge_and_save(
    base_path: Path, adapter: Path, dest: Path, data: Path, config: AgentAdapterConfig
) -> float:
    """Merge the LoRA into the base, save a float32 model with the base's tokenizer and
    generation config, and check that the reloaded merged model's logits equal the unmerged
    adapter's on a training example (max |dlogit|; `ModelError` beyond a float32 tolerance)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from agentbench.sanitize.schema import read_examples

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    example = read_examples(data)[0]
    chat = [{"role": m.role, "content": m.content} for m in example.messages]
    ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)[:256]
    probe = torch.tensor([ids])
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        peft_model = PeftModel.from_pretrained(base, adapter)
        peft_model.eval()
        with torch.no_grad():
            expected = peft_model(probe).logits
        merged = peft_model.merge_and_unload()
        merged.config.name_or_path = MODEL_NAME
        merged.generation_config = GenerationConfig.from_pretrained(base_path)
        merged.save_pretrained(dest, safe_serialization=True)
        tokenizer.save_pretrained(dest)
        del merged, peft_model, base
        reloaded = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
        reloaded.eval()
        with torch.no_grad():
            got = reloaded(probe).logits
    finally:
        torch.set_num_threads(threads)
    diff = float((expected - got).abs().max())
    scale = float(expected.abs().max())
    if not diff <= 1e-3 * max(1.0, scale):
        raise ModelError(
            f"the merged model's logits differ from the adapter's by {diff:.3g} "
            f"(max |logit| {scale:.3g}): the merge or the save is broken"
        )
    if not AutoTokenizer.from_pretrained(dest).chat_template:
        raise ModelError(f"the saved tokenizer in {dest} lost its chat template")
    return diff


# -- registry ------------------------------------------------------------------------------

RECIPE_VERSION = 6
"""Bump when the default config or the build changes (cached builds are then rebuilt)."""


def build(dest: Path) -> None:
    # The recipe's temp directory is renamed into place only after this returns.
    build_agent_adapter(dest, AgentAdapterConfig(), progress=True)


RECIPE = ModelRecipe(
    name=MODEL_NAME,
    description="smollm2-135m with a merged LoRA agent-format adapter trained on 148 scripted "
    "episodes (90 FileTool, 58 Bash), 3 epochs, up to 2,048 tokens each (2 CPU cores: ~39 min)",
    build=build,
    version=RECIPE_VERSION,
    pace=Pace(
        episode_s=9.0,
        env_episode_s={FILETOOL_ID: 11.5, BASH_ID: 6.5},
        teacher_s=600.0,
        train_s=180.0,
        measured="suites/paper-lite.yaml on v4 (2026-11-30, 16 episodes a stage, 3,914 s in "
        "all): FileTool evaluations 118-222 s and rollouts 158-237 s; Bash evaluations "
        "66-160 s and rollouts 76-98 s; a teacher stage (two adapters on 24 demonstrations) "
        "556-634 s; an sft-lora student 129-261 s",
    ),
)

__all__ = [
    "ADAPTER_DIR",
    "BUILD_REPORT",
    "DATA_FILE",
    "PROBE_TRAIN_SEED_BASE",
    "RECIPE",
    "AgentAdapterConfig",
    "build_agent_adapter",
    "collect_examples",
    "select_instance_sets",
    "select_instances",
    "small_config",
]
