"""How fast rollouts are with a real transformers model, against raw `model.generate`.

The harness runs `run_rollouts(HFPolicy(model), jobs, parallel=B)` on real task instances in
real sandboxes (bwrap by default), greedy, `max_new_tokens` per turn. A recording wrapper keeps
every batch of conversations the engine passed to the policy, so the baselines can run the
SAME work without the harness:

- raw replay: every recorded call, in the same batches, rendered with the same chat template,
  left-padded and decoded by `model.generate` (greedy, same `max_new_tokens`). This is the fair
  baseline for the end-to-end figure: multi-step episodes have growing prompts and shrinking
  batches, and the replay has exactly those prompts and batches. Headline ratio: harness
  end-to-end tokens/s (completion tokens / wall time, sandboxes, resets and env steps included)
  over raw replay tokens/s; target >= 0.85. The harness keeps `HFPolicy`'s prefix cache (a
  step reuses the keys and values of the turn before), which `model.generate` does not have:
  on multi-step episodes this, not the decode loop, is most of the difference.
- first-step prompts: the episodes' first prompts (system + instruction), in batches of B,
  through `model.generate` and through `HFPolicy.generate` alone: the policy's own decode
  against transformers' on identical input (ratio generate-only/raw), the prefix cache
  emptied before each batch so that neither side reuses anything.

Tokens are counted alike on both sides: new tokens up to and including the first end token,
padding excluded (`model.generate` keeps stepping finished rows until the batch ends; that
cost stays in its time, which is what a raw caller pays). Both sides are warmed up once first.
The first-step pair runs interleaved batch by batch; the replay can only run after the harness
(it needs the harness's calls), so load from other processes that changes between the two
shows in the headline ratio: on a shared machine read it as an indication and repeat it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from agentbench.policies.base import (
    Generation,
    Message,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
)

HARNESS_TARGET = 0.85
"""Harness end-to-end tokens/s over raw replay tokens/s."""


class Throughput(BaseModel):
    """Generated tokens over seconds for a set of generate calls."""

    calls: int
    sequences: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    tokens_per_s: float

    @classmethod
    def of(
        cls, calls: int, sequences: int, prompt: int, completion: int, seconds: float
    ) -> Throughput:
        rate = completion / seconds if seconds > 0 else 0.0
        return cls(
            calls=calls,
            sequences=sequences,
            prompt_tokens=prompt,
            completion_tokens=completion,
            seconds=round(seconds, 4),
            tokens_per_s=round(rate, 2),
        )

    @classmethod
    def sum(cls, parts: Sequence[Throughput]) -> Throughput:
        return cls.of(
            sum(p.calls for p in parts),
            sum(p.sequences for p in parts),
            sum(p.prompt_tokens for p in parts),
            sum(p.completion_tokens for p in parts),
            sum(p.seconds for p in parts),
        )


class HarnessFigures(BaseModel):
    """The rollout run itself (`RolloutSummary` figures)."""

    episodes: int
    infra_failures: int
    steps: int
    wall_s: float
    generate_s: float
    env_s: float
    sandbox_start_s: float
    env_step_share: float
    generate_share: float
    end_to_end: Throughput
    """Completion tokens over the run's wall time."""
    generate_phase: Throughput
    """The same tokens over the time spent inside `policy.generate` only."""


class RolloutBenchResult(BaseModel):
    model: str
    device: str
    dtype: str
    sandbox: str
    family: str
    split: str
    episodes: int
    batch_size: int
    max_new_tokens: int
    max_steps: int
    cpu_count: int | None
    torch_threads: int
    harness: HarnessFigures
    raw_replay: Throughput
    first_step_raw: Throughput
    first_step_policy: Throughput
    harness_vs_raw: float
    """harness end-to-end tokens/s / raw replay tokens/s (target >= HARNESS_TARGET)."""
    harness_generate_vs_raw: float
    """harness generate-phase tokens/s / raw replay tokens/s."""
    policy_vs_raw: float
    """HFPolicy.generate / model.generate tokens/s on the first-step prompts."""


@dataclass
class _Call:
    chats: list[tuple[Message, ...]]
    steps: list[int]
    episode_ids: list[str]
    seconds: float
    prompt_tokens: int
    completion_tokens: int


class _RecordingPolicy(Policy):
    """Passes calls to the wrapped policy and keeps what each call was given and cost."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.calls: list[_Call] = []

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        began = time.perf_counter()
        generations = self.inner.generate(turns, params)
        seconds = time.perf_counter() - began
        ok = [(t, g) for t, g in zip(turns, generations, strict=True) if g.generated]
        self.calls.append(
            _Call(
                chats=[t.messages for t, _ in ok],
                steps=[t.step for t, _ in ok],
                episode_ids=[t.episode_id for t, _ in ok],
                seconds=seconds,
                prompt_tokens=sum(g.prompt_tokens for _, g in ok),
                completion_tokens=sum(g.completion_tokens for _, g in ok),
            )
        )
        return generations

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return self.inner.provenance(params)


def run_rollout_bench(
    model: str = "smollm2-135m",
    *,
    batch_size: int = 8,
    episodes: int | None = None,
    max_new_tokens: int = 24,
    max_steps: int = 2,
    family: str = "benign",
    split: str = "eval",
    sandbox: str = "bwrap",
    device: str = "cpu",
    dtype: str = "auto",
    max_context: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> RolloutBenchResult:
    """Measure rollout throughput of `model` (registry name or directory) against raw generate.

    `episodes` defaults to `batch_size` (one lockstep wave). Raises `ValueError` for bad sizes
    or a family/split without instances, `ModelError` when the model cannot load, and
    `SandboxStartError` when no sandbox starts.
    """
    from agentbench.policies.hf import HFPolicy
    from agentbench.rollouts import make_jobs, run_rollouts
    from agentbench.tasks import iter_instances

    say = progress or (lambda _msg: None)
    episodes = batch_size if episodes is None else episodes
    if batch_size < 1 or episodes < 1 or max_new_tokens < 1 or max_steps < 1:
        raise ValueError("batch_size, episodes, max_new_tokens and max_steps must be >= 1")
    jobs = make_jobs(iter_instances(family, split, episodes))[:episodes]
    if len(jobs) < episodes:
        # Each instance gives one job per environment it supports; ask for more if short.
        jobs = make_jobs(iter_instances(family, split, None))[:episodes]
    if not jobs:
        raise ValueError(f"no task instances in family {family!r}, split {split!r}")

    say(f"loading {model}")
    policy = HFPolicy(
        model, device=device, dtype=dtype, batch_size=batch_size, max_context=max_context
    )
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    _warm_up(policy)

    say(f"harness: {len(jobs)} episodes, parallel {batch_size}, {sandbox}")
    recorder = _RecordingPolicy(policy)
    workdir = Path(tempfile.mkdtemp(prefix="agentbench-rollout-bench-"))
    try:
        summary = run_rollouts(
            recorder,
            jobs,
            out_path=workdir / "bench.jsonl",
            parallel=batch_size,
            sandbox=sandbox,
            params=params,
            max_steps=max_steps,
            progress=False,
            resume=False,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    calls = [c for c in recorder.calls if c.chats]
    harness = HarnessFigures(
        episodes=summary.episodes,
        infra_failures=summary.infra_failures,
        steps=summary.steps,
        wall_s=summary.wall_s,
        generate_s=summary.generate_s,
        env_s=summary.env_s,
        sandbox_start_s=summary.sandbox_start_s,
        env_step_share=summary.env_step_share,
        generate_share=summary.generate_share,
        end_to_end=Throughput.of(
            len(recorder.calls),
            sum(len(c.chats) for c in calls),
            summary.prompt_tokens,
            summary.completion_tokens,
            summary.wall_s,
        ),
        generate_phase=Throughput.of(
            len(calls),
            sum(len(c.chats) for c in calls),
            sum(c.prompt_tokens for c in calls),
            sum(c.completion_tokens for c in calls),
            sum(c.seconds for c in calls),
        ),
    )

    say(f"raw model.generate: replaying {len(calls)} calls")
    raw_replay = _raw_generate(policy, [c.chats for c in calls], max_new_tokens)

    first = [
        (eid, chat)
        for c in calls
        for eid, step, chat in zip(c.episode_ids, c.steps, c.chats, strict=True)
        if step == 0
    ]
    batches = [first[i : i + batch_size] for i in range(0, len(first), batch_size)]
    say(f"first-step prompts: {len(first)} in {len(batches)} batches")
    # Interleaved batch by batch, alternating which goes first, so load from other processes
    # on a shared machine falls on both sides alike.
    raw_parts: list[Throughput] = []
    policy_parts: list[Throughput] = []
    for i, batch in enumerate(batches):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                raw_parts.append(_raw_generate(policy, [[c for _, c in batch]], max_new_tokens))
            else:
                if policy.prefix_cache is not None:
                    policy.prefix_cache.clear()
                policy_parts.append(_policy_generate(policy, [batch], params))
    first_raw, first_policy = Throughput.sum(raw_parts), Throughput.sum(policy_parts)

    import torch

    return RolloutBenchResult(
        model=str(model),
        device=str(policy.device),
        dtype=str(policy.dtype).removeprefix("torch."),
        sandbox=sandbox,
        family=family,
        split=split,
        episodes=len(jobs),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_steps=max_steps,
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        harness=harness,
        raw_replay=raw_replay,
        first_step_raw=first_raw,
        first_step_policy=first_policy,
        harness_vs_raw=_ratio(harness.end_to_end, raw_replay),
        harness_generate_vs_raw=_ratio(harness.generate_phase, raw_replay),
        policy_vs_raw=_ratio(first_policy, first_raw),
    )


def _ratio(a: Throughput, b: Throughput) -> float:
    return round(a.tokens_per_s / b.tokens_per_s, 4) if b.tokens_per_s > 0 else 0.0


def _warm_up(policy: Any) -> None:
    """One short call through each path, so lazy initialisation is charged to neither."""
    chat = (Message(role="user", content="hi"),)
    warm = SamplingParams(temperature=0.0, max_new_tokens=2)
    policy.generate([Turn("warm-up", "none", 0, chat)], warm)
    _raw_generate(policy, [[chat]], 2)


def _raw_generate(
    policy: Any, batches: Sequence[Sequence[tuple[Message, ...]]], max_new_tokens: int
) -> Throughput:
    """`model.generate` on each batch: same rendering and tokens as the policy, left-padded."""
    import torch

    eos = sorted(policy.eos_token_ids)
    prompt_total = completion_total = sequences = 0
    seconds = 0.0
    for chats in batches:
        prompts = [
            policy.tokenizer(policy.render(chat), add_special_tokens=False).input_ids
            for chat in chats
        ]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), policy.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            mask[i, width - len(prompt) :] = 1
        # The policy caps new tokens so prompt + answer fit its context; so does the baseline.
        budget = max(1, min(max_new_tokens, policy.max_context - width))
        ids, mask = ids.to(policy.device), mask.to(policy.device)
        began = time.perf_counter()
        with torch.inference_mode():
            out = policy.model.generate(
                ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=budget,
                pad_token_id=policy.pad_token_id,
                eos_token_id=eos,
            )
        seconds += time.perf_counter() - began
        new = out[:, width:].tolist()
        completion_total += sum(_count_new(row, eos) for row in new)
        prompt_total += sum(len(p) for p in prompts)
        sequences += len(prompts)
    return Throughput.of(len(batches), sequences, prompt_total, completion_total, seconds)


def _count_new(row: list[int], eos: list[int]) -> int:
    """New tokens up to and including the first end token (the padding after it excluded)."""
    for i, token in enumerate(row):
        if token in eos:
            return i + 1
    return len(row)


def _policy_generate(
    policy: Any, batches: Sequence[Sequence[tuple[str, tuple[Message, ...]]]],
    params: SamplingParams,
) -> Throughput:  # fmt: skip
    prompt_total = completion_total = sequences = 0
    seconds = 0.0
    for batch in batches:
        turns = [Turn(eid, "bench", 0, chat) for eid, chat in batch]
        began = time.perf_counter()
        generations = policy.generate(turns, params)
        seconds += time.perf_counter() - began
        ok = [g for g in generations if g.generated]
        prompt_total += sum(g.prompt_tokens for g in ok)
        completion_total += sum(g.completion_tokens for g in ok)
        sequences += len(ok)
    return Throughput.of(len(batches), sequences, prompt_total, completion_total, seconds)


def render(result: RolloutBenchResult) -> Table:
    """A rich table: each measured path's calls, tokens, seconds and tokens/s vs raw."""
    h = result.harness
    verdict = "[green]ok[/green]" if result.harness_vs_raw >= HARNESS_TARGET else "[red]under[/red]"
    table = Table(
        title=(
            f"Rollout throughput: {result.model} ({result.device}, {result.dtype}, "
            f"{result.torch_threads} torch threads, {result.cpu_count} CPUs), "
            f"{result.episodes} episodes of {result.family}/{result.split} in {result.sandbox}, "
            f"batch {result.batch_size}, max {result.max_new_tokens} new tokens, "
            f"max {result.max_steps} steps, greedy"
        ),
        caption=(
            f"harness end-to-end / raw replay: {result.harness_vs_raw:.2f} "
            f"(target >= {HARNESS_TARGET:.2f}: {verdict}); "
            f"harness generate phase / raw replay: {result.harness_generate_vs_raw:.2f}; "
            f"HFPolicy.generate / model.generate on first-step prompts: "
            f"{result.policy_vs_raw:.2f}.\n"
            f"Harness: {h.episodes} episodes, {h.steps} steps, {h.infra_failures} infra "
            f"failures; wall {h.wall_s:.2f} s = generate {h.generate_s:.2f} s "
            f"({h.generate_share:.0%}) + env {h.env_s:.2f} s (env-step share "
            f"{h.env_step_share:.1%}) + rest; sandbox start {h.sandbox_start_s:.2f} s.\n"
            "Raw replay = the harness's own generate calls (same prompts, same batches) through "
            "model.generate; tokens counted up to the first end token on both sides."
        ),
    )
    for column in ("what", "calls", "seqs", "prompt tok", "new tok", "seconds", "tok/s", "x raw"):
        table.add_column(column, justify="left" if column == "what" else "right")

    def row(name: str, t: Throughput, base: Throughput | None) -> None:
        ratio = "-" if base is None or base.tokens_per_s <= 0 else (
            f"{t.tokens_per_s / base.tokens_per_s:.2f}"
        )  # fmt: skip
        table.add_row(name, str(t.calls), str(t.sequences), str(t.prompt_tokens),
                      str(t.completion_tokens), f"{t.seconds:.2f}", f"{t.tokens_per_s:.1f}",
                      ratio)  # fmt: skip

    row("harness end-to-end (wall)", h.end_to_end, result.raw_replay)
    row("harness generate phase", h.generate_phase, result.raw_replay)
    row("raw model.generate, replay", result.raw_replay, result.raw_replay)
    row("HFPolicy.generate, first steps", result.first_step_policy, result.first_step_raw)
    row("raw model.generate, first steps", result.first_step_raw, result.first_step_raw)
    return table
