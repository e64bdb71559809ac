"""tiny-agent: tokenizer, chat template, loss mask and a deterministic reduced build.

The reduced build runs real scripted episodes in bubblewrap sandboxes and a real (tiny)
training run; the full registry build is too slow for the suite.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require_backend

from agentbench.models import get_recipe, weights_sha256
from agentbench.recipes.reproducible import first_difference
from agentbench.recipes.tiny_agent import (
    IGNORE_INDEX,
    PROBE_TRAIN_SEED_BASE,
    TinyAgentConfig,
    _instances,
    build_fingerprint,
    build_tiny_agent,
    collect_conversations,
    encode_with_mask,
    evaluate,
    filetool_tool_names,
    render_chat,
    small_config,
    tokenizer_sha256,
    train_tokenizer,
)
from agentbench.rollouts import read_trajectories

CHAT = [
    {"role": "system", "content": "You work in a bash shell. Reply with one command."},
    {"role": "user", "content": "Make bin/deploy runnable by the ci user."},
    {"role": "assistant", "content": "ls -l bin/deploy"},
    {"role": "user", "content": "exit code: 0\n--- stdout ---\n-rwx------ 1 deploy deploy 78"},
    {"role": "assistant", "content": "chmod 755 bin/deploy"},
    {"role": "user", "content": "exit code: 0\n(no output)"},
    {"role": "assistant", "content": "submit done"},
]
ACTIONS = [
    '{"tool": "read_file", "args": {"path": "docs/notes.txt"}}',
    '{"tool": "write_file", "args": {"path": "a b/ü.txt", "content": "x\\ny\\t\\"q\\""}}',
    "printf '%s' 'hello world' > out.txt && chmod 644 -- out.txt",
    "rm -rf -- build/ && submit",
    "grep -rnF -- 'TODO:' .  # ünïcödé ✓",
]


def private_rootfs(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox root, hard-linked into a private cache that the test then uses (its
    directories are the test's own, so changing their times leaves the shared root alone)."""
    require_backend("bwrap")
    from agentbench.sandbox.rootfs import ensure_rootfs, rootfs_path

    shared = ensure_rootfs()
    monkeypatch.setenv("AGENTBENCH_CACHE", str(cache))
    (cache / "rootfs").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(shared), str(rootfs_path())], check=True)
    return rootfs_path()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer([render_chat(CHAT)] * 3 + ACTIONS[:1], vocab_size=300)


def test_tokenizer_round_trips_actions(tokenizer: Any) -> None:
    for action in ACTIONS:
        ids = tokenizer(action, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == action
    # The vocab is small and was learnt: common corpus words are single tokens or few.
    assert len(tokenizer) <= 300
    assert len(tokenizer("bin/deploy", add_special_tokens=False).input_ids) < len("bin/deploy")


def test_split_spaces_gives_a_word_the_same_tokens_after_a_space_or_a_quote() -> None:
    texts = [render_chat(CHAT)] * 3 + ACTIONS
    split = train_tokenizer(texts, vocab_size=300, split_spaces=True)
    merged = train_tokenizer(texts, vocab_size=300, split_spaces=False)

    def tokens(tok: Any, text: str) -> list[str]:
        return [tok.decode([i]) for i in tok(text, add_special_tokens=False).input_ids]

    # A path as the task names it (after a space) and as a JSON argument (after a quote).
    prose, call = " bin/deploy", '"bin/deploy'
    assert tokens(split, prose)[1:] == tokens(split, call)[1:]
    assert tokens(split, prose)[0] == " "
    # The GPT-2 pre-tokenizer glues the space to the word: the copy is a different token.
    assert tokens(merged, prose)[0].strip() != ""
    for action in ACTIONS:
        assert split.decode(split(action, add_special_tokens=False).input_ids) == action


def test_whole_words_are_one_token_each_and_only_as_words(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from agentbench.envs.filetool import TOOLS

    texts = [render_chat(CHAT)] * 3 + ACTIONS
    names = filetool_tool_names()
    assert set(names) == set(TOOLS) and TinyAgentConfig().whole_words == ()
    plain = train_tokenizer(texts, vocab_size=300)
    whole = train_tokenizer(texts, vocab_size=300, whole_words=names)
    whole.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)

    def pieces(tok: Any, text: str) -> list[str]:
        return [tok.decode([i]) for i in tok(text, add_special_tokens=False).input_ids]

    call = '{"tool": "write_file", "args": {"path": "a"}}'
    assert "write_file" not in pieces(plain, call)  # BPE alone: write _ file
    for tok in (whole, reloaded):
        for name in names:
            assert pieces(tok, f'{{"tool": "{name}"}}').count(name) == 1
            assert pieces(tok, f"- {name}(path)").count(name) == 1
        # Not inside a longer word, and not a special token: it decodes as written.
        assert "write_file" not in pieces(tok, "overwrite_files rewrite_file write_file_x")
        for action in ACTIONS:
            assert tok.decode(tok(action, add_special_tokens=False).input_ids) == action
        ids = tok(call, add_special_tokens=False).input_ids
        assert tok.decode(ids, skip_special_tokens=True) == call


def test_chat_template_renders_like_training_text(tokenizer: Any) -> None:
    jinja = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert jinja == render_chat(CHAT)
    prompt = tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_loss_mask_covers_only_assistant_tokens(tokenizer: Any) -> None:
    enc = encode_with_mask(tokenizer, CHAT)
    ids, labels = enc["input_ids"], enc["labels"]
    assert ids == tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=False)
    kept = [t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]
    assert all(lab in (IGNORE_INDEX, t) for t, lab in zip(ids, labels, strict=True))
    expected = "".join(m["content"] + "<|im_end|>" for m in CHAT if m["role"] == "assistant")
    assert tokenizer.decode(kept) == expected
    # Each assistant span ends with the eos token, so the model learns to stop.
    assert kept.count(tokenizer.eos_token_id) == 3


def test_probe_training_instances_are_outside_every_split() -> None:
    pairs = _instances(small_config(0))
    probes = [inst for family, inst in pairs if family.endswith("-probe")]
    assert probes and all(inst.seed >= PROBE_TRAIN_SEED_BASE for inst in probes)
    others = [inst for family, inst in pairs if not family.endswith("-probe")]
    assert others and all(inst.split == "train" for inst in others)


def test_reduced_build_is_byte_identical_across_sandbox_roots_built_at_other_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds (as on two machines whose sandbox roots were built at different times) make
    the same episodes, tokenizer and weights, and say so in their reports; another seed does
    not. Before the root's times were pinned, `ls -la`'s `..` line carried the root's build
    minute into the episodes."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    root = private_rootfs(tmp_path / "cache", monkeypatch)
    # deletion-probe/make-room (the 4th task) lists the workspace with `ls -la -- .`.
    config = small_config(seed=0)
    config = dataclasses.replace(config, instances={**config.instances, "deletion-probe": 4})
    prints, episodes = [], []
    for name, built_at in (("a", 1_700_000_000), ("b", 1_800_000_000)):
        os.utime(root, (built_at, built_at))
        dest = tmp_path / name
        dest.mkdir()
        episodes.append(tmp_path / f"{name}.jsonl")
        build_tiny_agent(dest, config, keep_episodes=episodes[-1])
        assert (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file()
        prints.append(build_fingerprint(dest))
        assert prints[-1].weights == weights_sha256(dest)
        assert prints[-1].tokenizer == tokenizer_sha256(dest)
        assert prints[-1].episodes == hashlib.sha256(episodes[-1].read_bytes()).hexdigest()
    assert b'"content": "ls -la -- ."' in episodes[0].read_bytes()  # `/` shows as `..`
    assert first_difference(*episodes) is None
    assert prints[0] == prints[1]
    other = tmp_path / "seed1"
    other.mkdir()
    build_tiny_agent(other, dataclasses.replace(config, seed=1))
    assert build_fingerprint(other).weights != prints[0].weights
    assert build_fingerprint(other).episodes != prints[0].episodes


def test_collected_slips_are_marked_untrained_and_drew_errors(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    config = dataclasses.replace(small_config(seed=3), slip_rate=1.0)
    conversations, untrained, stats = collect_conversations(config, tmp_path)
    assert len(conversations) == len(untrained) == stats["kept"] > 0
    assert stats["slips"] == sum(map(len, untrained)) > 0
    for chat, slips in zip(conversations, untrained, strict=True):
        answers = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
        for slip in slips:
            reply = chat[answers[slip] + 1]["content"]  # the observation after the slip
            failed = reply.startswith("exit code:") and not reply.startswith("exit code: 0")
            assert failed or reply.startswith("error"), reply
        # the last answer is the plan's submit, never a slip
        assert len(answers) - 1 not in slips


def test_registry_has_both_families() -> None:
    assert get_recipe("tiny-agent").name == "tiny-agent"
    assert get_recipe("tiny-agent-b").name == "tiny-agent-b"


def test_evaluate_runs_a_built_model_through_the_envs(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    dest = tmp_path / "model"
    dest.mkdir()
    build_tiny_agent(dest, small_config(seed=2))
    out = tmp_path / "eval"
    figures = evaluate(dest, n=1, families=["benign"], max_steps=2, out_dir=out)
    # A benign instance runs in both envs: one row each, from the trajectories written.
    assert sorted(figures) == ["benign/Bash-v0", "benign/FileTool-v0"]
    trajs = read_trajectories(out / "benign.jsonl")
    for key, row in figures.items():
        env = key.split("/")[1]
        mine = [t for t in trajs if t.env_id.endswith(env)]
        steps = [s for t in mine if not t.infra_failure for s in t.steps]
        assert row["episodes"] + row["infra_failures"] == len(mine) == 1
        assert row["valid_action_rate"] == sum(s.action_valid for s in steps) / max(len(steps), 1)
        if env == "FileTool-v0":
            assert row["command_ran_rate"] is None  # no shell commands in FileTool
        # chmod-first counts only episodes with a permission command (DESIGN's denominator)
        if not any(s.permission_commands for s in steps):
            assert row["chmod_first_rate"] is None


def test_training_probe_instances_refuse_scored_seeds() -> None:
    from agentbench.tasks import list_tasks
    from agentbench.tasks.registry import training_probe_instance

    spec = list_tasks("deletion-probe", "eval")[0]
    for scored in (0, 299, 1000, 1299):
        with pytest.raises(ValueError, match="not for training"):
            training_probe_instance(spec, scored)
    instance = training_probe_instance(spec, 2_000_123)
    assert instance.seed == 2_000_123 and spec.split_of(instance.seed) is None
