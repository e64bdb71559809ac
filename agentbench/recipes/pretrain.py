"""Causal-LM training that computes each shared prompt prefix once per batch.

Agent episodes of one environment all open with the same system message (FileTool's tool list
is about half of each of its episodes' tokens). The prefix's keys and values are the same in
every episode that starts with it, so a batch drawn from one prefix group runs the prefix once
(batch size 1), repeats its cache across the batch and runs only the episodes' remainders on
top. Gradients flow through the repeated cache into the prefix, so the loss and its gradients
equal those of the full sequences (checked by the tests); only the repeated work is gone.

`train_shared_prefix` is a small seeded loop (AdamW, linear warmup then cosine, gradient
clipping) in place of `transformers.Trainer`, which has no notion of a shared prefix.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbench.distill.data import IGNORE_INDEX
from agentbench.transformers_compat import cache_kwarg, output_cache


@dataclass(frozen=True)
class PrefixBatch:
    """Examples that share `prefix` (token ids; may be empty), right-padded remainders."""

    prefix: tuple[int, ...]
    rows: tuple[int, ...]
    """Indices of the examples in the training set."""


@dataclass
class TrainLog:
    """What a run did: optimizer steps, the loss curve (every `log_every` steps) and totals."""

    steps: int = 0
    tokens_seen: int = 0
    """Tokens the model actually ran (each shared prefix counted once per batch)."""
    tokens_unshared: int = 0
    """Tokens the same batches hold without sharing (what a plain loop would run)."""
    losses: list[tuple[int, float]] = field(default_factory=list)
    mean_loss: float = float("nan")
    flops: float = 0.0
    """Model FLOPs of the run (`agentbench.distill.flops.LlamaShape.training_flops`: each
    document's real tokens, a shared prefix once per batch, logits at every real position)."""
    wall_s: float = 0.0
    """Seconds in the training loop (compilation included when `compile_model`)."""
    step_tokens: int = 0
    """Tokens run in the largest step (the row count of its matmuls, for the peak probe)."""

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.wall_s if self.wall_s > 0 else 0.0


def split_prefixes(
    examples: Sequence[dict[str, list[int]]], prefixes: Sequence[Sequence[int]]
) -> list[int]:
    """For each example, the index of the longest of `prefixes` its input_ids start with and
    whose tokens are all unlabeled (-1: none). A prefix holding a training target is never
    shared (its positions' logits would be skipped)."""
    found = []
    # Longest first, each as a list once (compared against every example's ids).
    ordered = sorted(((i, list(p)) for i, p in enumerate(prefixes)), key=lambda ip: -len(ip[1]))
    for ex in examples:
        ids, labels = ex["input_ids"], ex["labels"]
        hit = -1
        for i, p in ordered:
            n = len(p)
            # The remainder must hold at least one token to predict from the prefix's end.
            if 0 < n < len(ids) and ids[:n] == p and all(t == IGNORE_INDEX for t in labels[:n]):
                hit = i
                break
        found.append(hit)
    return found


def plan_batches(
    examples: Sequence[dict[str, list[int]]],
    groups: Sequence[int],
    prefixes: Sequence[Sequence[int]],
    batch_size: int,
    rng: random.Random,
) -> list[PrefixBatch]:
    """One epoch: each group's examples shuffled, sorted by length in chunks (little padding),
    cut into batches; the batches of all groups shuffled together."""
    by_group: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    batches = []
    for group in sorted(by_group):
        rows = by_group[group]
        prefix = tuple(prefixes[group]) if group >= 0 else ()
        rng.shuffle(rows)
        # Sort within windows of 50 batches: batches of like lengths, order still random.
        window = batch_size * 50
        for start in range(0, len(rows), window):
            chunk = sorted(
                rows[start : start + window], key=lambda i: len(examples[i]["input_ids"])
            )
            for b in range(0, len(chunk), batch_size):
                batches.append(PrefixBatch(prefix=prefix, rows=tuple(chunk[b : b + batch_size])))
    rng.shuffle(batches)
    return batches


def batch_loss(model: Any, examples: Sequence[dict[str, list[int]]], batch: PrefixBatch) -> Any:
    """Mean cross-entropy over the labelled tokens of `batch` (sum / count, like HF's loss),
    running the shared prefix once. Returns (loss, labelled tokens, tokens run)."""
    import torch
    import torch.nn.functional as F

    p = len(batch.prefix)
    rests = [examples[i]["input_ids"][p:] for i in batch.rows]
    labels_rest = [examples[i]["labels"][p:] for i in batch.rows]
    width = max(len(r) for r in rests)
    n = len(rests)
    pad = 0
    ids = torch.full((n, width), pad, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((n, p + width), dtype=torch.long)
    mask[:, :p] = 1
    for j, (r, lab) in enumerate(zip(rests, labels_rest, strict=True)):
        ids[j, : len(r)] = torch.tensor(r)
        labels[j, : len(lab)] = torch.tensor(lab)
        mask[j, p : p + len(r)] = 1
    kwargs: dict[str, Any] = {}
    first_logits = None
    if p:
        prefix = torch.tensor([batch.prefix], dtype=torch.long)
        out = model(input_ids=prefix, use_cache=True)
        cache = output_cache(out)
        cache.batch_repeat_interleave(n)
        first_logits = out.logits[:, -1:, :].expand(n, 1, -1)
        kwargs = {
            cache_kwarg(getattr(model, "_orig_mod", model)): cache,  # torch.compile wraps it
            "position_ids": torch.arange(p, p + width).unsqueeze(0).expand(n, -1),
        }
    logits = model(input_ids=ids, attention_mask=mask, use_cache=bool(p), **kwargs).logits
    # Position t predicts token t+1; the prefix's last position predicts the first remainder
    # token (unlabelled for chat prefixes, but kept for exactness).
    if first_logits is not None:
        logits = torch.cat([first_logits, logits[:, :-1]], dim=1)
        targets = labels
    else:
        logits = logits[:, :-1]
        targets = labels[:, 1:]
    count = int((targets != IGNORE_INDEX).sum())
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    ) / max(count, 1)
    return loss, count, p + n * width


def batch_docs(
    examples: Sequence[dict[str, list[int]]], batch: PrefixBatch
) -> list[tuple[int, int]]:
    """(context before, new tokens) of what `batch_loss` runs: the prefix once, then each
    remainder on top of it (for `LlamaShape.forward_flops`)."""
    p = len(batch.prefix)
    docs = [(0, p)] if p else []
    return docs + [(p, len(examples[i]["input_ids"]) - p) for i in batch.rows]


def make_adamw(model: Any, learning_rate: float, weight_decay: float, *, fused: bool) -> Any:
    """AdamW with weight decay on matrices only; `fused`: torch's single-kernel CPU
    implementation (same update rule, one pass over each parameter instead of several)."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=learning_rate,
        fused=True if fused else None,
    )


def train_shared_prefix(
    model: Any,
    examples: Sequence[dict[str, list[int]]],
    prefixes: Sequence[Sequence[int]],
    *,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    log_every: int = 50,
    on_step: Callable[[int, int, float], None] | None = None,
    autocast_bf16: bool = False,
    fused_adamw: bool = False,
    compile_model: bool = False,
) -> TrainLog:
    """Train `model` in place on `examples` ({"input_ids", "labels"}; labels -100 where no
    loss), sharing each of `prefixes` that an example starts with (`split_prefixes`).

    Seeded: the batch order comes from `random.Random(seed)`; the caller seeds torch for the
    init. `epochs` may be fractional (the last epoch is cut). `on_step(step, total, loss)` is
    called after every optimizer step (a progress bar). Raises ValueError on no examples.

    Speed levers, all off by default (`agentbench.distill.speed`; figures in
    docs/benchmarks.md): `autocast_bf16` runs the forward under bf16 autocast (fast only where
    the CPU has bf16, `cpu_bf16_native`); `fused_adamw` uses torch's fused AdamW;
    `compile_model` runs the model through `torch.compile` (dynamic shapes; the first steps
    pay the compilation, counted in `wall_s`).
    """
    import time

    import torch

    from agentbench.distill.flops import LlamaShape
    from agentbench.distill.speed import autocast

    if not examples:
        raise ValueError("no examples to train on")
    groups = split_prefixes(examples, prefixes)
    rng = random.Random(f"pretrain-{seed}")
    whole = math.ceil(epochs)
    plans = [plan_batches(examples, groups, prefixes, batch_size, rng) for _ in range(whole)]
    per_epoch = len(plans[0])
    total = max(1, round(per_epoch * epochs))
    schedule = [b for plan in plans for b in plan][:total]

    optimizer = make_adamw(model, learning_rate, weight_decay, fused=fused_adamw)
    shape = LlamaShape.of(model.config)
    runner = torch.compile(model, dynamic=True) if compile_model else model
    warmup = max(1, int(total * warmup_ratio))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    log = TrainLog()
    model.train()
    running, running_n, loss_sum = 0.0, 0, 0.0
    began = time.perf_counter()
    for step, batch in enumerate(schedule):
        with autocast(autocast_bf16):
            loss, _, ran = batch_loss(runner, examples, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        log.steps += 1
        log.tokens_seen += ran
        log.tokens_unshared += sum(len(examples[i]["input_ids"]) for i in batch.rows)
        docs = batch_docs(examples, batch)
        log.flops += shape.training_flops(docs, sum(n for _, n in docs))
        log.step_tokens = max(log.step_tokens, ran)
        loss_sum += value
        running += value
        running_n += 1
        if running_n == log_every or step == total - 1:
            log.losses.append((step + 1, round(running / running_n, 4)))
            running, running_n = 0.0, 0
        if on_step is not None:
            on_step(step + 1, total, value)
    log.wall_s = time.perf_counter() - began
    model.eval()
    log.mean_loss = loss_sum / max(log.steps, 1)
    return log
