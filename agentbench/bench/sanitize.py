"""How fast the sanitizer is, and that its memory stays flat as the file grows.

`run_sanitize_bench(n)` writes a synthetic file of `n` trajectories (6-10 steps of short
FileTool or Bash actions and observations, with the per-step records a real rollout writes;
about 5 % hold a deletion, 4 % are unsuccessful, 1 % are infrastructure failures). The lines are
made by templating 64 records built once through the real `Trajectory` model (ids and a few
words substituted), not through sandboxes. Then `sanitize_file` runs on it in a fresh child
process per size (n/10 and n), which reports its peak RSS (`ru_maxrss`) before and after: equal
growth for both sizes shows constant memory. Figures: trajectories/s end to end (reading,
validation, filtering, writing, hashing and the leak check re-read), split into the filter
pass and the leak check; target >= `TARGET_PER_S`.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from agentbench.chat import Message
from agentbench.rollouts.schema import (
    OutcomeRecord,
    PolicyRecord,
    SamplingRecord,
    SandboxRecord,
    StepRecord,
    Trajectory,
    to_json,
)

TARGET_PER_S = 50_000
TEMPLATES = 64
_ID = "XQZIDQZX"

_FILES = ("notes.md", "config/app.yaml", "src/main.py", "logs/app.log", "data/sales.csv",
          "docs/README.md", "package.json", "build/output.txt")  # fmt: skip
_WORDS = ("version", "total", "summary", "alpha", "report", "draft", "final", "backup")


def _step_texts(env: str, rng: random.Random, deletes: bool) -> list[tuple[str, str]]:
    steps = []
    for _ in range(rng.randint(6, 10) - 1):
        path, word = rng.choice(_FILES), rng.choice(_WORDS)
        if env == "FileTool":
            kind = rng.randrange(4)
            if kind == 0:
                action = f'{{"tool": "read_file", "args": {{"path": "{path}"}}}}'
                obs = f"# {word} {_ID}\nline one of {path}\nline two: {word} = 42\n"
            elif kind == 1:
                action = f'{{"tool": "list_dir", "args": {{"path": "{path.split("/")[0]}"}}}}'
                obs = "\n".join(f"file  {rng.randint(10, 999):5d}  {f}" for f in _FILES[:5])
            elif kind == 2:
                action = (
                    f'{{"tool": "write_file", "args": {{"path": "{path}", "content": '
                    f'"{word}: updated\\nowner: {_ID}\\n"}}}}'
                )
                obs = f"wrote {rng.randint(20, 90)} bytes to {path}"
            else:
                action = f'{{"tool": "search_files", "args": {{"pattern": "{word}"}}}}'
                obs = f"{path}:3: {word} found in format string"
        else:
            kind = rng.randrange(3)
            if kind == 0:
                action, obs = f"cat -- {path}", f"exit code: 0\n--- stdout ---\n{word}={_ID}\n"
            elif kind == 1:
                action = f"grep -n {word} {path} | head -5"
                obs = f"exit code: 0\n--- stdout ---\n3:{word} in the terminal firmware"
            else:
                action = f"printf '%s\\n' '{word} {_ID}' >> {path}"
                obs = "exit code: 0\n(no output)"
        steps.append((action, obs))
    if deletes:
        at = rng.randrange(len(steps))
        steps[at] = (
            ('{"tool": "delete_path", "args": {"path": "logs/app.log"}}', "deleted logs/app.log")
            if env == "FileTool"
            else ("rm -f -- logs/app.log", "exit code: 0\n(no output)")
        )
    submit = ('{"tool": "submit", "args": {"answer": "done"}}', "submitted: done")
    steps.append(submit if env == "FileTool" else ("submit done", "submitted: done"))
    return steps


def template_line(index: int) -> str:
    """One realistic trajectory line with `_ID` where the record number goes."""
    rng = random.Random(index)
    env = "FileTool" if index % 2 == 0 else "Bash"
    deletes = index % 20 == 7  # ~5 %
    infra = index % 64 == 13  # ~1.5 %
    success = not infra and index % 25 != 3  # ~4 % unsuccessful
    texts = _step_texts(env, rng, deletes)
    env_id = f"agentbench/{env}-v0"
    messages = [
        Message(role="system", content=f"You work in a project directory ({env} tools)."),
        Message(role="user", content=f"Update {rng.choice(_FILES)} for release {_ID}."),
    ]
    steps = []
    for k, (action, obs) in enumerate(texts):
        messages += [Message(role="assistant", content=action),
                     Message(role="user", content=obs)]  # fmt: skip
        steps.append(
            StepRecord(
                index=k,
                action=action,
                observation=obs,
                action_valid=True,
                parsed_json=to_json({"cmd": action[:40]}),
                intent_json=to_json({"deletion": deletes and k == 0, "permission": []}),
                effect_json=to_json({"deleted": [], "moved": [], "modes": []}),
                reward=0.0,
                terminated=k == len(texts) - 1,
                prompt_tokens=300 + 40 * k,
                completion_tokens=20,
                generate_s=0.012,
                env_step_s=0.002,
                extra_json=to_json({"exit_code": 0, "duration_s": 0.001}),
            )
        )
    traj = Trajectory(
        episode_id=f"benign/task-{index % 10}@{_ID}|{env_id}|scripted:reference|r0",
        env_id=env_id,
        task_id=f"benign/task-{index % 10}",
        family="benign" if env == "FileTool" else "bash-benign",
        split="train",
        seed=index,
        instance_id=f"benign/task-{index % 10}@{_ID}",
        fixture_sha256="ab" * 32,
        policy=PolicyRecord(backend="scripted", model="scripted:reference", tag="scripted:ref"),
        sampling=SamplingRecord(temperature=0.0, top_p=1.0, max_new_tokens=64, seed=1),
        sandbox=SandboxRecord(backend="bwrap", limits_json=to_json({"memory_mb": 512})),
        max_steps=30,
        messages=messages,
        steps=steps,
        outcome=OutcomeRecord(
            success=success,
            score=float(success),
            steps=len(steps),
            termination="infra_failure" if infra else "submitted",
        ),
        infra_failure=infra,
        infra_reason="sandbox did not start" if infra else None,
        started_at="2026-01-01T00:00:00Z",
        agentbench_version="0.1.0",
    )
    return traj.to_line()


def write_synthetic(path: str | Path, n: int) -> int:
    """Write `n` synthetic trajectory lines; returns the file size in bytes."""
    templates = [template_line(i) for i in range(TEMPLATES)]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(templates[i % TEMPLATES].replace(_ID, str(i)))
    return os.path.getsize(path)


class SizeResult(BaseModel):
    n: int
    file_mb: float
    seconds: float
    per_s: float
    filter_s: float
    leak_check_s: float
    kept: int
    dropped_by_reason: dict[str, int]
    rss_before_mb: float
    rss_peak_mb: float

    @property
    def growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb


class SanitizeBenchResult(BaseModel):
    sizes: list[SizeResult]
    validation: str
    cpu_count: int


def _child(in_path: str, out_path: str, validation: str, queue: Any) -> None:
    from agentbench.sanitize.filter import SanitizeConfig, sanitize_file

    config = SanitizeConfig.model_validate({"validation": validation})
    # Warm the code paths on a tiny slice first, so the measured peak is the run's alone.
    with open(in_path, "rb") as fh, tempfile.TemporaryDirectory() as tmp:
        head = Path(tmp) / "head.jsonl"
        head.write_bytes(b"".join(fh.readline() for _ in range(100)))
        sanitize_file(head, Path(tmp) / "out.jsonl", config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = sanitize_file(in_path, out_path, config)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "seconds": report.seconds,
            "kept": report.kept,
            "dropped_by_reason": report.dropped_by_reason,
            # The run's own leak check: timing a second one apart from the run could make the
            # filter's share negative on a busy machine.
            "leak_check_s": report.leak_check_seconds,
            "rss_before_mb": before,
            "rss_peak_mb": peak,
        }
    )


def run_sanitize_bench(
    n: int = 100_000, *, validation: str = "fields", workdir: str | Path | None = None
) -> SanitizeBenchResult:
    """Sanitize synthetic files of n/10 and n trajectories, each in a fresh child process."""
    ctx = multiprocessing.get_context("spawn")
    sizes = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for size in sorted({max(1, n // 10), n}):
            src = Path(tmp) / f"in-{size}.jsonl"
            out = Path(tmp) / f"out-{size}.jsonl"
            nbytes = write_synthetic(src, size)
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(str(src), str(out), validation, queue))
            proc.start()
            got = queue.get()
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"the benchmark child failed with exit code {proc.exitcode}")
            sizes.append(
                SizeResult(
                    n=size,
                    file_mb=nbytes / 1e6,
                    seconds=got["seconds"],
                    per_s=size / got["seconds"],
                    filter_s=got["seconds"] - got["leak_check_s"],
                    leak_check_s=got["leak_check_s"],
                    kept=got["kept"],
                    dropped_by_reason=got["dropped_by_reason"],
                    rss_before_mb=got["rss_before_mb"],
                    rss_peak_mb=got["rss_peak_mb"],
                )
            )
            src.unlink()
            out.unlink(missing_ok=True)
    return SanitizeBenchResult(sizes=sizes, validation=validation, cpu_count=os.cpu_count() or 1)


def render(result: SanitizeBenchResult) -> Table:
    table = Table(
        title=f"Sanitizer throughput (drop-trajectory, validation={result.validation}, "
        f"{result.cpu_count} CPUs, one process)",
        caption=f"Target >= {TARGET_PER_S:,} trajectories/s. Leak check: the re-read of the "
        "output (also inside the end-to-end time). Equal RSS growth at both sizes: constant "
        "memory.",
    )
    columns = ("trajectories", "file MB", "end-to-end s", "traj/s", "filter s", "leak check s",
               "kept", "RSS before MB", "RSS peak MB", "growth MB")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for s in result.sizes:
        table.add_row(
            f"{s.n:,}",
            f"{s.file_mb:.0f}",
            f"{s.seconds:.2f}",
            f"{s.per_s:,.0f}",
            f"{s.filter_s:.2f}",
            f"{s.leak_check_s:.2f}",
            f"{s.kept:,}",
            f"{s.rss_before_mb:.0f}",
            f"{s.rss_peak_mb:.0f}",
            f"{s.growth_mb:.1f}",
        )
    return table
