"""Training throughput of each distillation mode on CPU: tokens/s over a handful of steps.

For each model (tiny-agent where it is built, else tiny-random-llama; and SmolLM2-135M) and
each mode (sft-lora, sft-full, logit-kl with a LoRA student and the base as its own teacher),
`bench_distill` runs `distill` for `steps` optimizer steps on synthetic FileTool conversations
(`synthetic_examples`: benign multi-step episodes in the JSON action format, no deletion
words) and reports input tokens/s (non-padding tokens the student saw over the trainer's wall
time) and target tokens/s. SmolLM2 runs the LoRA modes only unless `full` is set (a full
fine-tune of 135M parameters with AdamW on 2 cores is minutes per step). Each run is forced
(no cache reuse) into a temporary directory. The first steps include warm-up, so on a shared
machine read the figures as indications.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from agentbench.envs import FILETOOL_ID
from agentbench.sanitize.schema import StudentExample, example_id_for

_FILES = ("notes.txt", "report.md", "config.yaml", "data.csv", "todo.txt", "readme.md")
_WORDS = ("alpha", "budget", "quarterly", "review", "figures", "meeting", "summary", "draft")


def _call(tool: str, **args: object) -> str:
    return json.dumps({"tool": tool, "args": args})


def synthetic_examples(n: int, seed: int = 0, steps: int = 3) -> list[StudentExample]:
    """`n` benign FileTool conversations (list, read, write/copy, submit), seeded."""
    rng = random.Random(f"distill-synthetic-{seed}")
    out = []
    for index in range(n):
        files = rng.sample(_FILES, 3)
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        messages = [
            {"role": "user", "content": f"Copy the key line of {files[0]} into {files[1]}."},
            {"role": "assistant", "content": _call("list_dir", path=".")},
            {"role": "user", "content": "\n".join(files)},
        ]
        for step in range(steps):
            name = files[step % len(files)]
            messages += [
                {"role": "assistant", "content": _call("read_file", path=name)},
                {"role": "user", "content": f"{text} ({step})"},
            ]
        messages += [
            {"role": "assistant", "content": _call("write_file", path=files[1], content=text)},
            {"role": "user", "content": f"wrote {len(text)} bytes to {files[1]}"},
            {"role": "assistant", "content": _call("submit", answer="done")},
        ]
        episode = f"synthetic-{seed}-{index}"
        out.append(
            StudentExample.model_validate(
                {
                    "example_id": example_id_for(episode),
                    "env_id": FILETOOL_ID,
                    "split": "train",
                    "family": "benign",
                    "messages": messages,
                    "source_sha256": "0" * 64,
                }
            )
        )
    return out


def write_examples(path: Path, examples: Sequence[StudentExample]) -> Path:
    path.write_text("".join(e.to_line() for e in examples))
    return path


class DistillBenchRow(BaseModel):
    model: str
    mode: str
    steps: int
    batch_size: int
    tokens: int
    target_tokens: int
    seconds: float
    tokens_per_s: float
    target_tokens_per_s: float
    loss_first: float | None
    loss_last: float | None
    gflops: float = 0.0
    """Model FLOP/s (`agentbench.distill.flops` conventions), in GFLOP/s."""
    mfu: float = 0.0
    """`gflops` over the square-matmul peak measured in the same process (float32, threads)."""
    mfu_at_shapes: float = 0.0
    """`gflops` over the peak of matmuls at this run's shapes (tokens per step)."""


def default_models() -> list[str]:
    from agentbench.models import is_built

    return ["tiny-agent" if is_built("tiny-agent") else "tiny-random-llama", "smollm2-135m"]


def bench_distill(
    models: Sequence[str] | None = None,
    *,
    modes: Sequence[str] = ("sft-lora", "sft-full", "logit-kl"),
    steps: int = 4,
    batch_size: int = 2,
    examples: int = 8,
    threads: int = 2,
    full_on_large: bool = False,
) -> list[DistillBenchRow]:
    """One forced `distill` run per (model, mode); see the module docstring."""
    from agentbench.distill.config import validate_config
    from agentbench.distill.manifest import distill, read_manifest

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        data = write_examples(Path(tmp) / "data.jsonl", synthetic_examples(examples))
        for model in models or default_models():
            for mode in modes:
                if mode == "sft-full" and model == "smollm2-135m" and not full_on_large:
                    continue
                config = validate_config(
                    {
                        "student": model,
                        "mode": mode,
                        "teacher": model if mode == "logit-kl" else None,
                        "max_steps": steps,
                        "batch_size": batch_size,
                        "max_length": 4096,
                        "torch_threads": threads,
                        "logging_steps": 1,
                    }
                )
                out = Path(tmp) / f"{model}-{mode}"
                began = time.perf_counter()
                distill(config, data, out, force=True)
                manifest = read_manifest(out)
                assert manifest is not None
                train = manifest.train
                seconds = float(train["wall_s"]) or time.perf_counter() - began
                efficiency = _efficiency(out, train, seconds, threads)
                rows.append(
                    DistillBenchRow(
                        model=model,
                        mode=mode,
                        steps=int(train["steps"]),
                        batch_size=batch_size,
                        tokens=int(train["tokens_seen"]),
                        target_tokens=int(train["target_tokens_seen"]),
                        seconds=round(seconds, 2),
                        tokens_per_s=round(train["tokens_seen"] / seconds, 1),
                        target_tokens_per_s=round(train["target_tokens_seen"] / seconds, 1),
                        loss_first=train["loss_first"],
                        loss_last=train["loss_last"],
                        **efficiency,
                    )
                )
    return rows


def _efficiency(out: Path, train: dict[str, Any], seconds: float, threads: int) -> dict[str, float]:
    """GFLOP/s and MFU of a finished run, against a peak probed now at its shapes."""
    from transformers import AutoConfig

    from agentbench.distill.flops import LlamaShape, measure_peak, mfu

    shape = LlamaShape.of(AutoConfig.from_pretrained(out))
    steps = max(int(train["steps"]), 1)
    tokens, targets = train["tokens_seen"] // steps, train["target_tokens_seen"] // steps
    peak = measure_peak(shape.matmul_shapes(max(tokens, 1), targets), "float32", threads)
    return mfu(float(train.get("model_flops", 0.0)) / seconds, peak)


def bench_table(rows: Sequence[DistillBenchRow]) -> Table:
    table = Table(
        "model", "mode", "steps", "batch", "tokens", "s", "tokens/s", "target tokens/s", "loss",
        "GFLOP/s", "MFU", "MFU@shapes", title="distillation training throughput (CPU)",
    )  # fmt: skip
    for r in rows:
        loss = (
            f"{r.loss_first:.3g} -> {r.loss_last:.3g}"
            if r.loss_first is not None and r.loss_last is not None
            else "-"
        )
        table.add_row(
            r.model, r.mode, str(r.steps), str(r.batch_size), str(r.tokens), f"{r.seconds:.1f}",
            f"{r.tokens_per_s:.0f}", f"{r.target_tokens_per_s:.0f}", loss, f"{r.gflops:.2f}",
            f"{r.mfu:.1%}", f"{r.mfu_at_shapes:.1%}",
        )  # fmt: skip
    return table
