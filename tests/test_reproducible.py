"""The reproducibility check's parts: pinned sandbox-root times, hashes, the first difference.

The check itself (two real builds compared) is `test_tiny_agent`'s byte-identical build test;
these cover what it relies on without building.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentbench.models import ModelError
from agentbench.recipes.reproducible import check_config, differences, first_difference, main
from agentbench.recipes.tiny import save_tiny_llama
from agentbench.recipes.tiny_agent import (
    BUILD_REPORT,
    BuildFingerprint,
    _deterministic_torch,
    build_fingerprint,
    small_config,
    tokenizer_sha256,
    write_episodes,
)
from agentbench.sandbox.fixture import FIXED_MTIME
from agentbench.sandbox.rootfs import pin_rootfs_times

REPO = Path(__file__).resolve().parent.parent


def test_pin_rootfs_times_sets_every_entry_and_never_follows_a_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the root's")
    os.utime(outside, (1_000_000, 1_000_000))
    (root / "link-out").symlink_to(outside)
    (root / "dangling").symlink_to(root / "nothing")
    entries = [root, root / "etc", root / "etc" / "passwd", root / "link-out", root / "dangling"]

    assert pin_rootfs_times(root) == len(entries)
    for path in entries:
        stat = os.lstat(path)
        assert (stat.st_mtime, stat.st_atime) == (FIXED_MTIME, FIXED_MTIME), path
    assert os.stat(outside).st_mtime == 1_000_000  # the link's target is left alone
    assert pin_rootfs_times(root) == 0  # already pinned: nothing to do


def test_episodes_file_is_canonical_and_hashed(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "ü\n"}, {"role": "assistant", "content": "ls"}]
    reordered = [{"content": m["content"], "role": m["role"]} for m in chat]
    first = write_episodes(tmp_path / "a.jsonl", [chat], [(0,)])
    second = write_episodes(tmp_path / "b.jsonl", [reordered], [[0]])
    assert first == second  # key order and tuple-or-list do not change the bytes
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert json.loads((tmp_path / "a.jsonl").read_text()) == {"messages": chat, "untrained": [0]}
    assert write_episodes(tmp_path / "c.jsonl", [chat], [()]) != first


def test_first_difference_names_the_episode_message_and_token(tmp_path: Path) -> None:
    from agentbench.recipes.tiny_agent import train_tokenizer

    listing = "drwxr-xr-x 18 root root 4096 {} ..\n-rw-r--r-- 1 root root 3 Jan  1  2026 a"
    same = [{"role": "user", "content": "same"}]

    def write(path: Path, when: str) -> None:
        task = {"role": "user", "content": "task"}
        chat = [task, {"role": "user", "content": listing.format(when)}]
        write_episodes(path, [same, chat], [(), ()])

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(a, "Dec  3 10:07")
    write(b, "Dec  3 10:07")
    assert first_difference(a, b) is None
    write(b, "Dec  4 09:13")
    tokenizer = train_tokenizer([listing.format("Dec  3 10:07")] * 3, vocab_size=300)
    found = first_difference(a, b, tokenizer)
    assert found is not None
    assert found.startswith("episode 1, message 1 (user), character 34\n")
    assert "Dec  3 10:07" in found and "Dec  4 09:13" in found
    assert "first differing token" in found
    write_episodes(b, [same], [()])
    assert first_difference(a, b) == "2 against 1 episodes"


def test_build_fingerprint_reads_the_report_and_falls_back_to_the_files(tmp_path: Path) -> None:
    save_tiny_llama(tmp_path)
    computed = build_fingerprint(tmp_path)
    assert computed.episodes is None  # no build report: no recorded episodes
    assert computed.tokenizer == tokenizer_sha256(tmp_path)
    recorded = {"episodes": "e" * 64, "tokenizer": "t" * 64, "weights": "w" * 64}
    (tmp_path / BUILD_REPORT).write_text(json.dumps({"sha256": recorded}))
    assert build_fingerprint(tmp_path) == BuildFingerprint(**recorded)
    assert differences(computed, BuildFingerprint(**recorded)) == [
        "episodes",
        "tokenizer",
        "weights",
    ]
    with pytest.raises(ModelError):
        build_fingerprint(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        tokenizer_sha256(tmp_path / "missing")


def test_check_config_sizes_and_bad_input() -> None:
    assert check_config("small") == small_config(0)
    full = check_config("full", instances=3, epochs=0.5, seed=2)
    assert set(full.instances.values()) == {3} and full.epochs == 0.5 and full.seed == 2
    with pytest.raises(ValueError, match="unknown size"):
        check_config("huge")
    with pytest.raises(ValueError, match="at least 1"):
        check_config("small", instances=0)
    with pytest.raises(ValueError, match="positive"):
        check_config("small", epochs=0)


def test_check_refuses_bad_arguments_with_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--size", "small", "--instances", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--workdir", str(tmp_path)])  # exists
    assert exc.value.code == 2
    script = subprocess.run(
        [str(REPO / "scripts" / "check-reproducible.sh"), "--size", "huge"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert script.returncode == 2 and "invalid choice: 'huge'" in script.stderr


def test_training_runs_deterministic_and_restores_torch_settings() -> None:
    threads = torch.get_num_threads()
    before = torch.are_deterministic_algorithms_enabled()
    with _deterministic_torch(1):
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == before
