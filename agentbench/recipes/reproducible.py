"""Build tiny-agent twice from the same config and compare what each build made.

`python -m agentbench.recipes.reproducible` (or `scripts/check-reproducible.sh`) builds into two
directories, one after the other, and compares the sha256 of the training episodes, the
tokenizer files and the weights (`tiny_agent.build_fingerprint`). On a difference it prints
where the episodes first differ (episode, message, the text around it, and the first token that
differs in build a's tokenizer) and exits 1; identical builds exit 0; bad arguments exit 2.

The default size is the registry's `tiny-agent` recipe (~30 min a build on 2 idle cores);
`--size small` is `tiny_agent.small_config` (seconds), and `--instances`/`--epochs` scale
either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentbench.recipes.tiny_agent import (
    EPISODES_FILE,
    BuildFingerprint,
    TinyAgentConfig,
    build_fingerprint,
    build_tiny_agent,
    small_config,
)

SIZES = ("full", "small")


def check_config(
    size: str = "full", *, instances: int | None = None, epochs: float | None = None, seed: int = 0
) -> TinyAgentConfig:
    """The config a check builds: `size` ("full": the registry recipe, "small":
    `small_config`), with every family's instance count set to `instances` and the training
    cut to `epochs` where given. Raises ValueError for an unknown size or a count below 1."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} (one of: {', '.join(SIZES)})")
    config = TinyAgentConfig(seed=seed) if size == "full" else small_config(seed)
    if instances is not None:
        if instances < 1:
            raise ValueError(f"instances must be at least 1, not {instances}")
        config = dataclasses.replace(config, instances=dict.fromkeys(config.instances, instances))
    if epochs is not None:
        if not epochs > 0:
            raise ValueError(f"epochs must be positive, not {epochs}")
        config = dataclasses.replace(config, epochs=epochs)
    return config


def differences(a: BuildFingerprint, b: BuildFingerprint) -> list[str]:
    """The artefacts whose hashes differ between two builds, by name."""
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def first_difference(a: Path, b: Path, tokenizer: Any = None) -> str | None:
    """Where two episodes files (`tiny_agent.write_episodes`) first differ, in words: the
    episode, the message, the text around the first differing character in each, and (given a
    tokenizer) the first differing token. None when the files are equal."""
    lines_a, lines_b = a.read_text().splitlines(), b.read_text().splitlines()
    for index, (line_a, line_b) in enumerate(zip(lines_a, lines_b, strict=False)):
        if line_a == line_b:
            continue
        rec_a, rec_b = json.loads(line_a), json.loads(line_b)
        msgs_a, msgs_b = rec_a["messages"], rec_b["messages"]
        for m, (msg_a, msg_b) in enumerate(zip(msgs_a, msgs_b, strict=False)):
            if msg_a == msg_b:
                continue
            text_a, text_b = msg_a["content"], msg_b["content"]
            at = next(
                (i for i, (x, y) in enumerate(zip(text_a, text_b, strict=False)) if x != y),
                min(len(text_a), len(text_b)),
            )
            where = f"episode {index}, message {m} ({msg_a['role']}), character {at}"
            lines = [where, f"  a: {text_a[max(0, at - 60) : at + 60]!r}",
                     f"  b: {text_b[max(0, at - 60) : at + 60]!r}"]  # fmt: skip
            if tokenizer is not None:
                ids_a = tokenizer(text_a, add_special_tokens=False).input_ids
                ids_b = tokenizer(text_b, add_special_tokens=False).input_ids
                t = next(
                    (i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
                    min(len(ids_a), len(ids_b)),
                )
                pieces = [tokenizer.decode(ids[t : t + 1]) for ids in (ids_a, ids_b)]
                lines.append(f"  first differing token #{t}: {pieces[0]!r} against {pieces[1]!r}")
            return "\n".join(lines)
        if len(msgs_a) != len(msgs_b) or rec_a["untrained"] != rec_b["untrained"]:
            return f"episode {index}: {len(msgs_a)} against {len(msgs_b)} messages, or slips differ"
    if len(lines_a) != len(lines_b):
        return f"{len(lines_a)} against {len(lines_b)} episodes"
    return None


def run_check(config: TinyAgentConfig, workdir: Path, *, progress: bool = False) -> int:
    """Build `config` into `workdir`/a and `workdir`/b, print both builds' hashes and any
    difference; 0 when all three hashes agree, else 1."""
    fingerprints, episodes = [], []
    for name in ("a", "b"):
        dest = workdir / name
        dest.mkdir(parents=True)
        began = time.monotonic()
        episodes.append(workdir / f"{name}-{EPISODES_FILE}")
        build_tiny_agent(dest, config, progress=progress, keep_episodes=episodes[-1])
        fingerprints.append(build_fingerprint(dest))
        print(f"build {name}: {time.monotonic() - began:.0f} s, {dest}")
    for f in dataclasses.fields(BuildFingerprint):
        values = [getattr(fp, f.name) for fp in fingerprints]
        mark = "same" if values[0] == values[1] else "DIFFERENT"
        print(f"{f.name:<10} {mark:<9} a {values[0]}\n{'':<20} b {values[1]}")
    differ = differences(*fingerprints)
    if not differ:
        print("reproducible: episodes, tokenizer and weights are byte-identical")
        return 0
    if "episodes" in differ:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(workdir / "a")
        where = first_difference(episodes[0], episodes[1], tokenizer)
        print(f"episodes first differ at {where or '?'}")
    print(f"NOT reproducible: {', '.join(differ)} differ")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check-reproducible", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--size", choices=SIZES, default="full",
                        help="full: the registry tiny-agent recipe (~30 min a build on 2 cores); "
                        "small: seconds")  # fmt: skip
    parser.add_argument("--instances", type=int, help="instances per family (overrides the size)")
    parser.add_argument("--epochs", type=float, help="training epochs (overrides the size)")
    parser.add_argument("--seed", type=int, default=0, help="the build seed (default 0)")
    parser.add_argument("--workdir", type=Path,
                        help="keep both builds here (must not exist); default: a temporary "
                        "directory, removed after")  # fmt: skip
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    try:
        config = check_config(args.size, instances=args.instances, epochs=args.epochs,
                              seed=args.seed)  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    print(f"config: {json.dumps(dataclasses.asdict(config), default=str)}")
    if args.workdir is not None and args.workdir.exists():
        parser.error(f"--workdir {args.workdir} exists; give a new directory")
    try:
        if args.workdir is not None:
            return run_check(config, args.workdir, progress=args.progress)
        with tempfile.TemporaryDirectory(prefix="check-reproducible-") as tmp:
            return run_check(config, Path(tmp), progress=args.progress)
    except (RuntimeError, OSError) as exc:  # a sandbox that cannot start, no rootfs, no episode
        print(f"error: the build failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
