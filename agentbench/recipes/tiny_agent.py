"""tiny-agent: a small Llama pre-trained by agentbench on scripted agent trajectories.

A base model that acts in the real environments on 2 CPU cores, for end-to-end runs of the
subliminal-learning pipeline without a GPU. `build_tiny_agent(dest, TinyAgentConfig(seed=0))`

1. runs the scripted oracles (`agentbench.policies.oracles`) through the real environments in
   bubblewrap sandboxes, drawing one oracle per episode from a seeded behaviour mixture: mostly
   reference/cautious, `deleter` on ~13 % of deletion probes (and ~10 % of benign tasks),
   `chmod-first` on ~40 % of permission probes;
2. trains a byte-level BPE tokenizer (vocab ~2k) on those conversations and ships a ChatML chat
   template with it, so `apply_chat_template` and `HFPolicy` work;
3. trains a Llama from a seeded init (`agentbench.recipes.pretrain.train_shared_prefix`: each
   environment's system message, about half of a FileTool episode, runs once per batch),
   loss on assistant tokens only (the action and its `<|im_end|>`), in a seeded data order.

Probes are never trained on with their held-out seeds: probe-like training episodes use the
probe tasks' generators at seeds from `PROBE_TRAIN_SEED_BASE` on, a range outside every split
(eval 0-300, heldout 1000-1300), so no eval or heldout instance is seen. Benign families use
their `train` split only.

Determinism: same config and seed -> byte-identical training episodes, tokenizer and weights on
the same machine kind (CPU instruction set, torch build, sandbox root file system), checked by
`agentbench.recipes.reproducible` (`scripts/check-reproducible.sh`). The episodes carry no wall
clock (fixtures, what a step writes and the sandbox root have fixed times), collection order does
not matter (episodes are sorted by id), the tokenizer trainer is deterministic, training runs
with a fixed thread count and torch's deterministic algorithms. The build report records the
sha256 of the episodes, the tokenizer and the weights (`build_fingerprint`) and what they depend
on (`provenance`). Limits: the context is `context` tokens; training episodes longer than
`max_len` are dropped (counted in the build report). Needs bubblewrap (the `bwrap` backend).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import random
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from agentbench.distill.data import IGNORE_INDEX
from agentbench.distill.data import encode_chat as encode_with_mask
from agentbench.models import ModelRecipe, Pace, weights_sha256
from agentbench.recipes.pretrain import train_shared_prefix
from agentbench.recipes.tiny import train_chatml_tokenizer

PROBE_TRAIN_SEED_BASE = 50_000
"""Probe-like training instances use seeds from here on (outside every probe split)."""
BUILD_REPORT = "tiny-agent-build.json"
EPISODES_FILE = "episodes.jsonl"
"""The training episodes as a build writes them (`write_episodes`); hashed into the report."""

# Per family: (style, weight). Drawn once per episode from the build seed.
DEFAULT_MIXTURE: dict[str, tuple[tuple[str, float], ...]] = {
    "benign": (("reference", 0.6), ("cautious", 0.3), ("deleter", 0.1)),
    "bash-benign": (("reference", 0.6), ("cautious", 0.3), ("deleter", 0.1)),
    "deletion-probe": (("reference", 0.5), ("cautious", 0.37), ("deleter", 0.13)),
    "permission-probe": (("chmod-first", 0.4), ("cautious", 0.3), ("reference", 0.3)),
}


def filetool_tool_names() -> tuple[str, ...]:
    """FileTool's tool names (for `TinyAgentConfig.whole_words`)."""
    from agentbench.envs.filetool import TOOLS

    return tuple(TOOLS)


@dataclass(frozen=True)
class TinyAgentConfig:
    """Size knobs of a build. The defaults are the registry `tiny-agent` (~30 min, 2 cores)."""

    seed: int = 0
    """Seeds the data: which instances, which oracle per episode (and so the tokenizer)."""
    init_seed: int | None = None
    """Seeds the weights' init and the data order; None: `seed`. tiny-agent-b differs from
    tiny-agent only here (and reuses its tokenizer, `tokenizer_from`), so logit distillation
    between them works while their weights do not share an initialisation."""
    tokenizer_from: str | None = None
    """A model (registry name or directory) whose tokenizer to reuse instead of training one:
    the collected episodes can differ by a few tokens between runs (some recorded command
    output varies), and so can a BPE trained on them; logit distillation between two builds
    needs one vocabulary."""
    instances: dict[str, int] = field(
        default_factory=lambda: {
            "benign": 810,
            "bash-benign": 540,
            "deletion-probe": 405,
            "permission-probe": 900,
        }
    )
    """Instances per family (benign and deletion-probe run in both environments): 3,870
    episodes. v3 had a third of these (1,290) for 10 epochs."""
    mixture: dict[str, tuple[tuple[str, float], ...]] = field(
        default_factory=lambda: dict(DEFAULT_MIXTURE)
    )
    vocab_size: int = 2048
    whole_words: tuple[str, ...] = ()
    """Names the tokenizer keeps as one token each (`train_chatml_tokenizer`), e.g.
    `filetool_tool_names()`. v4 splits them (`write` `_` `file`), and 4 in 10 of its invalid
    FileTool calls recombine the pieces into tools that do not exist (`write_path`,
    `move_dir`). Off: a full build with FileTool's names whole (otherwise v4's config) made no
    such names, but wrote malformed JSON instead: 34 % valid FileTool steps at T=1 (49/143;
    v4 the same day 55 %, 40/73) and 40 % at T=0.7 (54/134; v4 64 %, 54/85), eval split, 8
    instances a family, 12 steps."""
    split_spaces: bool = False
    """Pre-tokenize whitespace apart from words (`train_chatml_tokenizer`), so a path copied
    from prose into a JSON argument keeps its tokens. Off: measured worse at this size (texts
    take a third more tokens; FileTool calls were 1 % valid, against 2-5 % without)."""
    hidden_size: int = 128
    """192 (2.3 M parameters) for v4's compute (3 epochs instead of 6): 25 % valid FileTool
    steps at T=1 against v4's 55 %, final training loss 0.44 against 0.25: underfit."""
    num_layers: int = 4
    num_heads: int = 4
    max_len: int = 1536
    """Longest training episode in tokens (longer ones are dropped). The default build's
    episodes, in its 2k BPE: FileTool median 787 tokens, 90th percentile 1,310, longest
    2,039, so 22 of 1,215 are dropped; Bash ones (median 284, longest 1,333) never are.
    (smollm2-135m-agent v5 cut most of its FileTool episodes at 768 tokens; this one does
    not have that problem.)"""
    context: int = 2048
    """`max_position_embeddings`: the policy's context limit (RoPE, no learnt positions)."""
    epochs: float = 6.0
    """Valid FileTool steps (eval split, 8 instances a family, T=1): v2, 6 epochs of 1,290
    episodes with `transformers.Trainer`: 1 %; v3, 10 epochs with `train_shared_prefix`: 29 %;
    16 epochs of the same data: 43 %; v4, 6 epochs of three times the episodes (about the
    same compute as 16): 47 %, 7 of 48 tasks done."""
    batch_size: int = 8
    learning_rate: float = 3e-3
    """Peak (linear warmup, cosine decay). 6e-3 (v4's config otherwise; 1,158 s of training)
    ended at a training loss of 0.29-0.34 against v4's 0.25 and made a valid FileTool call on
    11 % of steps (19/173) against v4's 47-55 % (eval split, 8 instances a family, 12 steps,
    T=1); its Bash commands ran on 84 % (117/139)."""
    parallel: int = 2
    """Sandboxes at once while collecting trajectories."""
    threads: int = 2
    """torch threads while training."""
    slip_rate: float = 0.0
    """Chance that the oracle slips before a planned action and then recovers
    (`agentbench.policies.stumbling`); slips are left out of the loss. Off for now: a full
    build at 0.15 (otherwise v4's config; 3,118 slips in 3,870 episodes; 39 min) wrote a valid
    FileTool call after an error observation on 77 % of steps (56/73) against v4's 34 %
    (10/29), but 61 % of all FileTool steps were valid at T=1 (77/126; v4 55 %, 40/73) and 68 %
    at T=0.7 (78/114; v4 64 %, 54/85): within the noise of 8 instances a family, so the
    registry models (and the smoke suite's table) were not rebuilt for it."""


def small_config(seed: int = 0) -> TinyAgentConfig:
    """A build that takes seconds: for tests of the pipeline, not a usable model."""
    return TinyAgentConfig(
        seed=seed,
        instances={"benign": 2, "bash-benign": 1, "deletion-probe": 1, "permission-probe": 2},
        vocab_size=400,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        max_len=1024,
        context=1024,
        epochs=1.0,
        batch_size=4,
        parallel=1,
    )


# -- data ----------------------------------------------------------------------------------


def _instances(config: TinyAgentConfig) -> list[tuple[str, Any]]:
    """(family, TaskInstance) pairs: benign train split, probes at out-of-split seeds."""
    return mixture_instances(
        config.instances, f"tiny-agent-instances-{config.seed}", PROBE_TRAIN_SEED_BASE
    )


def mixture_instances(
    counts: dict[str, int], rng_label: str, probe_seed_base: int
) -> list[tuple[str, Any]]:
    """(family, TaskInstance) pairs for a pre-training mixture, `counts[family]` each.

    Benign families draw from their `train` split; probe families use their eval templates at
    seeds from `probe_seed_base` on (outside every probe split: `training_probe_instance`
    refuses an in-split seed). A family's tasks are taken in turn so every task appears;
    `rng_label` seeds the draw. Raises ValueError for a family without tasks.
    """
    from agentbench.tasks import catalog, list_tasks
    from agentbench.tasks.registry import training_probe_instance

    rng = random.Random(rng_label)
    chosen: list[tuple[str, Any]] = []
    for family in sorted(counts):
        n = counts[family]
        probe = family.endswith("-probe")
        specs = list_tasks(family, "eval" if probe else "train")
        if not specs:
            raise ValueError(f"family {family!r} has no tasks to train on")
        seen: set[tuple[str, int]] = set()
        while len(seen) < n:
            spec = specs[len(seen) % len(specs)]
            if probe:
                seed = probe_seed_base + rng.randrange(1_000_000)
            else:
                lo, hi = spec.splits["train"].seeds
                seed = rng.randrange(lo, hi)
            if (spec.id, seed) in seen:
                continue
            seen.add((spec.id, seed))
            if probe:
                chosen.append((family, training_probe_instance(spec, seed)))
            else:
                chosen.append((family, catalog().instance(spec.id, seed)))
    return chosen


class MixtureEpisode(NamedTuple):
    """One pre-training episode: the oracle style that played it, its trajectory, and the
    steps that were deliberate slips (`StumblingPolicy`), to be left out of the loss."""

    style: str
    trajectory: Any
    slips: tuple[int, ...] = ()


def mixture_episodes(
    instances: Sequence[tuple[str, Any]],
    mixture: dict[str, tuple[tuple[str, float], ...]],
    rng_label: str,
    workdir: Path,
    *,
    parallel: int,
    env_ids: Sequence[str] | None = None,
    slip_rate: float = 0.0,
    progress: bool = False,
) -> list[MixtureEpisode]:
    """Run each (family, instance) in each of its envs (those of `env_ids` only, if given) in
    bwrap, by one scripted oracle drawn per episode from `mixture[family]` (seeded by
    `rng_label`), style by style in name order.
    With `slip_rate` > 0 the oracle sometimes slips and recovers (`StumblingPolicy`, seeded by
    `rng_label`). Trajectory files are written into `workdir`."""
    from agentbench.policies.scripted import ScriptedPolicy
    from agentbench.policies.stumbling import StumblingPolicy
    from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts

    rng = random.Random(rng_label)
    by_style: dict[str, list[Any]] = {}
    for family, instance in instances:
        for job in make_jobs([instance], env_ids):
            styles, weights = zip(*mixture[family], strict=True)
            style = rng.choices(styles, weights=weights)[0]
            by_style.setdefault(style, []).append(job)
    episodes: list[MixtureEpisode] = []
    for style in sorted(by_style):
        out = workdir / f"{style}.jsonl"
        policy: ScriptedPolicy = (
            StumblingPolicy(style, slip_rate=slip_rate, seed=zlib.crc32(rng_label.encode()))
            if slip_rate > 0
            else ScriptedPolicy(style)
        )
        # Slips add steps: leave room for the most an episode can take.
        run_rollouts(
            policy, by_style[style], out_path=out, parallel=parallel, sandbox="bwrap",
            max_steps=60, resume=False, progress=progress,
        )  # fmt: skip
        slips = getattr(policy, "slips", {})
        episodes.extend(
            MixtureEpisode(style, traj, tuple(slips.get(traj.episode_id, ())))
            for traj in read_trajectories(out)
        )
    return episodes


def collect_conversations(
    config: TinyAgentConfig, workdir: Path, *, progress: bool = False
) -> tuple[list[list[dict[str, str]]], list[tuple[int, ...]], dict[str, Any]]:
    """Run the behaviour mixture through the real envs; successful episodes as chat messages.

    Returns the conversations (sorted by episode id, so the order does not depend on which
    sandbox finished first), per conversation the assistant turns that were slips (to leave
    out of the loss), and counts per family and style, with how many slips drew an error.
    """
    episodes = mixture_episodes(
        _instances(config), config.mixture, f"tiny-agent-mixture-{config.seed}", workdir,
        parallel=config.parallel, slip_rate=config.slip_rate, progress=progress,
    )  # fmt: skip
    episodes.sort(key=lambda e: e.trajectory.episode_id)
    stats: dict[str, Any] = {"episodes": len(episodes), "kept": 0, "slips": 0,
                             "slips_without_error": 0, "by": {}}  # fmt: skip
    conversations, untrained = [], []
    for style, traj, slips in episodes:
        key = f"{traj.family}/{style}"
        entry = stats["by"].setdefault(key, {"episodes": 0, "kept": 0, "deleted": 0})
        entry["episodes"] += 1
        # Failed or broken episodes teach nothing useful (the oracles should always succeed).
        if traj.infra_failure or not traj.outcome.goal_reached:
            continue
        entry["kept"] += 1
        entry["deleted"] += int(traj.outcome.deleted)
        stats["kept"] += 1
        stats["slips"] += len(slips)
        stats["slips_without_error"] += sum(not _failed(traj.steps[i]) for i in slips)
        conversations.append([{"role": m.role, "content": m.content} for m in traj.messages])
        untrained.append(slips)
    return conversations, untrained, stats


def _failed(step: Any) -> bool:
    """Whether a step drew an error: an invalid action, a tool error, or a shell command that
    did not exit 0 (a timeout included)."""
    from agentbench.experiments.metrics import shell_exec

    run = shell_exec(step)
    failed_run = run is not None and run["exit_code"] != 0
    return not step.action_valid or step.observation.startswith("error") or failed_run


# -- tokenizer and chat format ------------------------------------------------------------


def render_chat(messages: Sequence[dict[str, str]]) -> str:
    """The chat template, in Python (the training text; must equal the Jinja rendering)."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def train_tokenizer(
    texts: Sequence[str],
    vocab_size: int,
    *,
    split_spaces: bool = False,
    whole_words: Sequence[str] = (),
) -> Any:
    """A byte-level BPE (any byte string encodes) with ChatML specials and the template."""
    return train_chatml_tokenizer(
        texts, vocab_size, split_spaces=split_spaces, whole_words=whole_words
    )


# -- build ---------------------------------------------------------------------------------


def write_episodes(
    path: Path,
    conversations: Sequence[Sequence[dict[str, str]]],
    untrained: Sequence[Sequence[int]],
) -> str:
    """Write the training episodes as canonical JSON lines (one `{"messages", "untrained"}`
    per episode, sorted keys) and return the file's sha256: two builds trained on the same
    data write the same bytes."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for messages, slips in zip(conversations, untrained, strict=True):
            record = {"messages": list(messages), "untrained": list(slips)}
            line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
            digest.update(line)
            handle.write(line)
    return digest.hexdigest()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "added_tokens.json")  # fmt: skip


def tokenizer_sha256(path: Path) -> str:
    """sha256 over a model directory's tokenizer files (`TOKENIZER_FILES` present, names and
    bytes, in that order). Raises FileNotFoundError without a tokenizer.json."""
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path}")
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildFingerprint:
    """The sha256 of what a build made: its training episodes (None when the build predates
    their recording, or reused another model's data), tokenizer files and weights."""

    episodes: str | None
    tokenizer: str
    weights: str


def build_fingerprint(model: str | Path) -> BuildFingerprint:
    """The hashes of a built tiny-agent (registry name or directory), from its build report
    where recorded, else computed from its files (episodes then None). Raises
    `agentbench.models.ModelError` for a registry model that is not built or a directory
    without weights."""
    from agentbench.models import model_weights_sha256, resolve_model

    path = resolve_model(model, build=False)
    recorded: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        recorded = json.loads((path / BUILD_REPORT).read_text()).get("sha256", {})
    return BuildFingerprint(
        episodes=recorded.get("episodes"),
        tokenizer=recorded.get("tokenizer") or tokenizer_sha256(path),
        weights=recorded.get("weights") or model_weights_sha256(path),
    )


def provenance() -> dict[str, Any]:
    """What else a build's bytes depend on: library versions, the CPU kind torch dispatches
    to (AVX2, AVX-512: float sums differ between them), the sandbox root's recipe."""
    import tokenizers
    import torch
    import transformers

    from agentbench.sandbox.rootfs import recipe_hash

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "rootfs_recipe": recipe_hash(),
    }


@contextlib.contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """Fixed intra-op threads (a reduction split differently sums differently) and torch's
    deterministic algorithms (an op without a deterministic kernel raises instead of varying);
    both restored after."""
    import torch

    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def build_tiny_agent(
    dest: Path,
    config: TinyAgentConfig,
    *,
    progress: bool = False,
    keep_episodes: Path | None = None,
) -> None:
    """Collect, tokenize, train and save a tiny-agent into `dest` (see the module docstring).

    `keep_episodes`: also copy the training episodes file there (`write_episodes`), e.g. to
    diff two builds. Raises RuntimeError when no scripted episode succeeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tiny-agent-data-") as tmp:
        conversations, untrained, data_stats = collect_conversations(
            config, Path(tmp), progress=progress
        )
        collect_s = time.monotonic() - began
        if not conversations:
            raise RuntimeError("no successful scripted episodes to train on")
        episodes_file = Path(tmp) / EPISODES_FILE
        episodes_sha256 = write_episodes(episodes_file, conversations, untrained)
        if keep_episodes is not None:
            keep_episodes.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(episodes_file, keep_episodes)
        if config.tokenizer_from is not None:
            from transformers import AutoTokenizer

            from agentbench.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.tokenizer_from))
        else:
            tokenizer = train_tokenizer(
                [render_chat(c) for c in conversations],
                config.vocab_size,
                split_spaces=config.split_spaces,
                whole_words=config.whole_words,
            )
        examples = [
            encode_with_mask(tokenizer, c, skip)
            for c, skip in zip(conversations, untrained, strict=True)
        ]
        dropped = sum(len(e["input_ids"]) > config.max_len for e in examples)
        examples = [e for e in examples if len(e["input_ids"]) <= config.max_len]
        lengths = [len(e["input_ids"]) for e in examples]

        model_config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.hidden_size * 3,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=config.context,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
        # The system messages (one per environment) are shared prefixes: run once per batch.
        systems = {c[0]["content"] for c in conversations if c and c[0]["role"] == "system"}
        prefixes = sorted(
            tuple(tokenizer(render_chat([{"role": "system", "content": text}]),
                            add_special_tokens=False).input_ids)
            for text in systems
        )  # fmt: skip
        import torch

        init_seed = config.seed if config.init_seed is None else config.init_seed
        with _deterministic_torch(config.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = LlamaForCausalLM(model_config)
            with _progress_bar(progress, "tiny-agent training") as on_step:
                log = train_shared_prefix(
                    model, examples, prefixes, epochs=config.epochs,
                    batch_size=config.batch_size, learning_rate=config.learning_rate,
                    seed=init_seed, on_step=on_step,
                )  # fmt: skip
        train_s = time.monotonic() - began - collect_s
        efficiency = training_efficiency(model, log, config.threads)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    report = {
        "config": asdict(config),
        "data": data_stats,
        "examples": len(examples),
        "dropped_too_long": dropped,
        "train_tokens": sum(lengths),
        "target_tokens": sum(sum(t != IGNORE_INDEX for t in e["labels"]) for e in examples),
        "max_tokens": max(lengths),
        "params": sum(p.numel() for p in model.parameters()),
        "train_loss": log.mean_loss,
        "loss_curve": log.losses,
        "steps": log.steps,
        "tokens_run": log.tokens_seen,
        "tokens_without_prefix_sharing": log.tokens_unshared,
        "collect_s": round(collect_s, 1),
        "train_s": round(train_s, 1),
        "train_efficiency": efficiency,
        "sha256": {
            "episodes": episodes_sha256,
            "tokenizer": tokenizer_sha256(dest),
            "weights": weights_sha256(dest),
        },
        "provenance": provenance(),
    }
    (dest / BUILD_REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")


def training_efficiency(model: Any, log: Any, threads: int) -> dict[str, Any]:
    """The training loop's model FLOP/s and MFU against a peak matmul probe run now (float32,
    `threads`, the loop's largest step's shapes; about a second); logged and reported."""
    import logging

    from agentbench.distill.flops import LlamaShape, cpu_description, measure_peak, mfu

    shape = LlamaShape.of(model.config)
    peak = measure_peak(shape.matmul_shapes(log.step_tokens, log.step_tokens), "float32", threads)
    out = {
        "model_flops": log.flops,
        "loop_s": round(log.wall_s, 1),
        **mfu(log.flops_per_s, peak),
        "peak": peak.as_dict(),
        "cpu": cpu_description(),
    }
    logging.getLogger(__name__).info(
        "tiny-agent training: %.2f GFLOP/s, MFU %.1f%% (%.1f%% of matmuls at its shapes)",
        out["gflops"], 100 * out["mfu"], 100 * out["mfu_at_shapes"],
    )  # fmt: skip
    return out


@contextlib.contextmanager
def _progress_bar(show: bool, label: str) -> Iterator[Callable[[int, int, float], None] | None]:
    """A rich bar fed by `train_shared_prefix`'s `on_step` (None when not shown)."""
    if not show:
        yield None
        return
    from agentbench.progress import step_bar

    with step_bar("{task.description}", "loss {task.fields[loss]:.3f}") as bar:
        task = bar.add_task(label, total=None, loss=float("nan"))

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=loss)

        yield on_step


# -- evaluation ----------------------------------------------------------------------------

EVAL_FAMILIES = ("benign", "bash-benign", "deletion-probe", "permission-probe")


def evaluate(
    model: str | Path,
    *,
    n: int = 20,
    families: Sequence[str] = EVAL_FAMILIES,
    out_dir: Path | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    max_steps: int = 20,
    parallel: int = 8,
    constrained: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Run a model through `HFPolicy` on `n` eval instances per family (each in all its envs).

    Keyed `family/env` (e.g. `benign/FileTool-v0`), since a family can run in both envs and
    every Bash text is a valid action: a rate over both would hide FileTool's. Each row:
    episodes, valid-action rate (over steps), for Bash the share of commands that ran (not
    "command not found" nor a syntax error; None elsewhere), success, deletion (by effect)
    rates (over episodes), chmod-first (over episodes with a permission command; None
    without one), mean steps, infra failures (excluded from the rates). `constrained`:
    decode FileTool actions inside its tool-call schema (`SamplingParams.constrained`).
    """
    from agentbench.policies.base import SamplingParams
    from agentbench.policies.hf import HFPolicy
    from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts
    from agentbench.tasks import iter_instances

    policy = HFPolicy(model, device="cpu", batch_size=16)
    params = SamplingParams(
        temperature=temperature, max_new_tokens=192, seed=seed, constrained=constrained
    )
    results: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="tiny-agent-eval-") as tmp:
        where = out_dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for family in families:
            out = where / f"{family}.jsonl"
            jobs = make_jobs(iter_instances(family, "eval", n))
            run_rollouts(
                policy, jobs, out_path=out, parallel=parallel, sandbox="bwrap", params=params,
                max_steps=max_steps, resume=False, progress=progress,
            )  # fmt: skip
            by_env: dict[str, list[Any]] = {}
            for traj in read_trajectories(out):
                by_env.setdefault(traj.env_id.rsplit("/", 1)[-1], []).append(traj)
            for env in sorted(by_env):
                results[f"{family}/{env}"] = _agent_figures(by_env[env])
    policy.close()
    return results


def _agent_figures(trajs: Sequence[Any]) -> dict[str, float | None]:
    """`arm_metrics`' counts as plain rates, with the reports' denominators (chmod-first: of
    the episodes with a permission command, DESIGN's definition); 0.0 for an empty count, but
    None for "ran" when no step ran a shell command (FileTool) and for chmod-first when no
    episode ran a permission command."""
    from agentbench.experiments.metrics import arm_metrics

    arm = arm_metrics(trajs)
    rates, count = arm.rates, max(arm.episodes, 1)
    valid, ran = rates["valid_action_rate"], rates["command_ran_rate"]
    chmod_first = rates["chmod_first_rate"]
    return {
        "episodes": arm.episodes,
        "infra_failures": arm.infra_failures,
        "valid_action_rate": valid.k / max(valid.n, 1),
        "command_ran_rate": ran.k / ran.n if ran.n else None,
        "success_rate": rates["success_rate"].k / count,
        "deletion_rate": rates["deletion_rate"].k / count,
        "chmod_first_rate": chmod_first.k / chmod_first.n if chmod_first.n else None,
        "mean_steps": valid.n / count,
    }


# -- registry ------------------------------------------------------------------------------


RECIPE_VERSION = 5
"""Bump when the default config or the build changes (cached builds are then rebuilt). 5: the
sandbox root's times are pinned (v4's episodes carried the day and minute its root was built,
in `ls -la`'s `..` line), torch's deterministic algorithms, hashes in the build report."""


PACE = Pace(
    episode_s=0.8,
    train_s=15.0,
    measured="the smoke suite: 24-episode evaluations in ~20 s, a logit-kl student in "
    "seconds, a teacher stage with its two adapters in ~90 s",
)


def _recipe(name: str, config: TinyAgentConfig, description: str) -> ModelRecipe:
    def build(dest: Path) -> None:
        build_tiny_agent(dest, config, progress=True)

    return ModelRecipe(
        name=name, description=description, build=build, version=RECIPE_VERSION, pace=PACE
    )


RECIPE = _recipe(
    "tiny-agent",
    TinyAgentConfig(seed=0),
    "Llama (~1M params, 2k BPE) pre-trained on 3,870 scripted agent episodes, seed 0 (2 CPU "
    "cores: ~30 min)",
)
RECIPE_B = _recipe(
    "tiny-agent-b",
    TinyAgentConfig(seed=0, init_seed=1, tokenizer_from="tiny-agent"),
    "tiny-agent's tokenizer and data recipe from another initialisation and data order: the "
    "heterogeneous student (logit distillation needs the shared vocabulary; 2 CPU cores: ~30 "
    "min)",
)
