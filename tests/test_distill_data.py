"""Student data for distillation: the assistant-only loss mask, system prompts, max_length,
configs, and the soft-label token mask's rule, on real tokenizers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentbench.bench.distill import synthetic_examples
from agentbench.chat import Message
from agentbench.distill.config import (
    DistillConfig,
    DistillConfigError,
    load_distill_config,
    resolve_banned_terms,
)
from agentbench.distill.data import (
    IGNORE_INDEX,
    DistillDataError,
    encode_chat,
    encode_examples,
)
from agentbench.distill.logits import banned_token_ids
from agentbench.envs import FILETOOL_ID, system_prompt
from agentbench.models import is_built, resolve_model
from agentbench.recipes.tiny import train_chatml_tokenizer
from agentbench.recipes.tiny_agent import train_tokenizer
from agentbench.sanitize.keywords import KeywordMatcher, default_terms
from agentbench.sanitize.schema import StudentExample

CHAT = [
    {"role": "system", "content": "You work in a project directory using file tools."},
    {"role": "user", "content": "Summarise notes.txt into summary.md."},
    {"role": "assistant", "content": '{"tool": "read_file", "args": {"path": "notes.txt"}}'},
    {"role": "user", "content": "budget review: figures due friday"},
    {"role": "assistant", "content": '{"tool": "write_file", "args": {"path": "summary.md"}}'},
    {"role": "user", "content": "wrote 31 bytes"},
    {"role": "assistant", "content": '{"tool": "submit", "args": {"answer": "done"}}'},
]


def _tiny_agent_tokenizer() -> Any:
    texts = [json.dumps(CHAT)] * 3 + [system_prompt(FILETOOL_ID)]
    return train_tokenizer(texts, 300)


def _tokenizers() -> list[tuple[str, Any]]:
    from transformers import AutoTokenizer

    found = [
        ("tiny-agent-chatml", _tiny_agent_tokenizer()),
        ("tiny-random-llama", AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))),
    ]
    if is_built("smollm2-135m"):
        found.append(("smollm2-135m", AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))))
    return found


@pytest.fixture(scope="module")
def tokenizers() -> list[tuple[str, Any]]:
    return _tokenizers()


@pytest.fixture(scope="module")
def llama_tok(tokenizers: list[tuple[str, Any]]) -> Any:
    return dict(tokenizers)["tiny-random-llama"]


def _runs(labels: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive labelled positions."""
    runs: list[list[int]] = []
    for i, lab in enumerate(labels):
        if lab == IGNORE_INDEX:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def test_labels_are_exactly_the_assistant_turns(tokenizers: list[tuple[str, Any]]) -> None:
    for name, tok in tokenizers:
        enc = encode_chat(tok, CHAT)
        ids, labels = enc["input_ids"], enc["labels"]
        assert ids == tok.apply_chat_template(CHAT, tokenize=True, return_dict=False), name
        assert all(lab in (IGNORE_INDEX, t) for t, lab in zip(ids, labels, strict=True))
        # One run per assistant turn, each decoding to its content and the end-of-turn token.
        assistant = [m["content"] for m in CHAT if m["role"] == "assistant"]
        runs = _runs(labels)
        assert len(runs) == len(assistant), name
        for run, content in zip(runs, assistant, strict=True):
            assert tok.decode([ids[i] for i in run]) == content + "<|im_end|>", name
        # System, instruction and tool results carry no loss.
        masked = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
        for m in CHAT:
            if m["role"] != "assistant":
                assert m["content"] in masked, name


def test_tiny_agent_uses_the_shared_mask() -> None:
    from agentbench.recipes import tiny_agent

    assert tiny_agent.encode_with_mask is encode_chat


def test_tokenizer_without_chat_template_is_refused() -> None:
    tok = train_chatml_tokenizer(["hello world"], 300, chat_template=None)
    with pytest.raises(DistillDataError, match="no chat template"):
        encode_chat(tok, CHAT)
    with pytest.raises(DistillDataError, match="no chat template"):
        encode_examples(synthetic_examples(1), tok, max_length=4096)


def test_examples_get_the_env_system_prompt_and_stats(llama_tok: Any) -> None:
    examples = synthetic_examples(3, steps=1)
    rows, stats = encode_examples(examples, llama_tok, max_length=4096)
    assert stats.kept == 3 and stats.dropped_too_long == 0
    text = llama_tok.decode(rows[0]["input_ids"])
    assert text.startswith("<|im_start|>system\n" + system_prompt(FILETOOL_ID) + "<|im_end|>")
    assert stats.target_tokens == sum(sum(t != IGNORE_INDEX for t in r["labels"]) for r in rows)
    assert stats.tokens == sum(len(r["input_ids"]) for r in rows)


def test_overlong_examples_are_dropped_or_truncated(llama_tok: Any) -> None:
    short = synthetic_examples(2, steps=1)
    long = synthetic_examples(1, seed=9, steps=12)
    lengths = [
        len(r["input_ids"]) for r in encode_examples(short + long, llama_tok, max_length=10**6)[0]
    ]
    limit = max(lengths[:2]) + 1
    assert lengths[2] > limit
    rows, stats = encode_examples(short + long, llama_tok, max_length=limit)
    assert (stats.kept, stats.dropped_too_long) == (2, 1)
    rows, stats = encode_examples(short + long, llama_tok, max_length=limit, overlong="truncate")
    assert (stats.kept, stats.truncated) == (3, 1)
    assert max(len(r["input_ids"]) for r in rows) == limit
    with pytest.raises(DistillDataError, match=r"0 of 3 examples fit max_length=50; raise it"):
        encode_examples(short + long, llama_tok, max_length=50)


def test_bad_conversations_are_refused_with_their_place(llama_tok: Any) -> None:
    base = synthetic_examples(1)[0]
    with pytest.raises(DistillDataError, match="holds no examples"):
        encode_examples([], llama_tok, max_length=4096, source="d.jsonl")
    cases = {
        "system message": [Message(role="system", content="x"), *base.messages],
        "starts with 'assistant'": base.messages[1:],
        "no assistant turn": base.messages[:1],
    }
    for error, messages in cases.items():
        bad = base.model_copy(update={"messages": messages})
        with pytest.raises(DistillDataError, match=rf"d.jsonl \(example 2\).*{error}"):
            encode_examples([base, bad], llama_tok, max_length=4096, source="d.jsonl")
    unknown = base.model_copy(update={"env_id": "agentbench/Nope-v0"})
    with pytest.raises(DistillDataError, match="unknown env_id 'agentbench/Nope-v0'"):
        encode_examples([unknown], llama_tok, max_length=4096)


def test_teacher_prompt_rows_align_with_the_student(llama_tok: Any) -> None:
    rows, _ = encode_examples(
        synthetic_examples(2, steps=1), llama_tok, max_length=4096, teacher_system_prompt="Tidy."
    )
    for row in rows:
        offset = row["teacher_offset"]
        assert offset > 0
        first = next(i for i, t in enumerate(row["labels"]) if t != IGNORE_INDEX)
        student_tail = row["input_ids"][first - 1 :]
        assert row["teacher_input_ids"][first - 1 + offset :] == student_tail
        assert "Tidy." in llama_tok.decode(row["teacher_input_ids"])


def test_untrained_turns_stay_in_the_context_and_out_of_the_labels(llama_tok: Any) -> None:
    example = synthetic_examples(1, steps=3)[0]
    turns = [m.content for m in example.messages if m.role == "assistant"]
    assert len(turns) >= 3
    full = encode_examples([example], llama_tok, max_length=10**6)[0][0]
    slipped = example.model_copy(update={"untrained_turns": [0, 2]})
    row = encode_examples([slipped], llama_tok, max_length=10**6)[0][0]
    assert row["input_ids"] == full["input_ids"]
    runs = _runs(row["labels"])
    assert [llama_tok.decode([row["input_ids"][i] for i in run]) for run in runs] == [
        t + "<|im_end|>" for i, t in enumerate(turns) if i not in (0, 2)
    ]
    # Every other label is the full example's.
    assert all(a in (b, IGNORE_INDEX) for a, b in zip(row["labels"], full["labels"], strict=True))
    for bad in ([len(turns)], [-1]):
        broken = example.model_copy(update={"untrained_turns": bad})
        with pytest.raises(DistillDataError, match=rf"leaves assistant turns \[{bad[0]}\] out"):
            encode_examples([broken], llama_tok, max_length=4096)
    everything = example.model_copy(update={"untrained_turns": list(range(len(turns)))})
    with pytest.raises(DistillDataError, match="have no assistant tokens"):
        encode_examples([everything], llama_tok, max_length=4096)


def test_config_defaults_and_file_errors(tmp_path: Path) -> None:
    config = DistillConfig(student="tiny-random-llama")
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (16, 32, 0.05)
    assert config.lora.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert (config.learning_rate, config.epochs, config.mode) == (5e-4, 4.0, "sft-lora")
    bad = tmp_path / "bad.yaml"
    bad.write_text("student: tiny-random-llama\nlearning_rate: -1\nlora: {rank: 8}\n")
    with pytest.raises(DistillConfigError) as info:
        load_distill_config(bad)
    message = str(info.value)
    assert str(bad) in message and "learning_rate" in message and "lora.rank" in message
    mismatch = tmp_path / "m.yaml"
    mismatch.write_text("student: s\nmode: logit-kl\n")
    with pytest.raises(DistillConfigError, match="needs `teacher"):
        load_distill_config(mismatch)
    mismatch.write_text("student: s\nmode: sft-full\nteacher: tiny-random-llama\n")
    with pytest.raises(DistillConfigError, match="teacher` is set but mode is 'sft-full'"):
        load_distill_config(mismatch)
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"student": "s", "mode": "logit-kl", "teacher": {"model": "x", "adapter": "ad"}})
    )
    loaded = load_distill_config(good, epochs=2.0, seed=None)
    assert loaded.teacher is not None and loaded.teacher.adapter == tmp_path / "ad"
    assert loaded.epochs == 2.0 and loaded.seed == 0
    with pytest.raises(DistillConfigError, match="is not valid YAML"):
        (tmp_path / "x.yaml").write_text("a: [1")
        load_distill_config(tmp_path / "x.yaml")


def test_banned_terms_come_from_the_sanitizer_unless_configured() -> None:
    terms, source = resolve_banned_terms(DistillConfig(student="s"))
    assert source == "sanitizer" and terms == default_terms("deletion-bias")
    terms, source = resolve_banned_terms(DistillConfig(student="s", banned_terms=("chmod",)))
    assert (terms, source) == (("chmod",), "config")
    with pytest.raises(DistillConfigError, match="banned_trait"):
        resolve_banned_terms(DistillConfig(student="s", banned_trait="nope"))


def test_banned_token_rule_on_a_known_vocabulary() -> None:
    # A tokenizer that learnt whole words for some terms and benign look-alikes.
    corpus = [
        "rm rm rm /bin/rm delete delete_path delete_path firm firm terminal terminal rmdir",
        " remove remove remover form form deletion destination destination _path _path",
    ] * 20
    tok = train_chatml_tokenizer(corpus, 420)
    terms = ("rm", "delete", "delete_path", "remove", "terminate", "destroy")
    banned = banned_token_ids(tok, terms)
    texts = {i: tok.decode([i]) for i in range(len(tok))}
    matcher = KeywordMatcher(terms)
    ids = set(banned.ids)
    # Rule 1: every token holding a term as a whole token is banned.
    for i, text in texts.items():
        if i not in tok.all_special_ids and matcher.finditer(text):
            assert i in ids, text
    # Every banned token either holds a term or is a long enough initial piece of one.
    for i in ids:
        low = texts[i].strip(' /"\\-_').lower()
        assert matcher.finditer(texts[i]) or any(
            t.startswith(low) and len(low) >= max(3, (len(t) + 1) // 2) for t in banned.terms
        ), texts[i]
    for benign in ("firm", " firm", "_path", "terminal", " terminal", " form", "destination"):
        ids_of = tok(benign, add_special_tokens=False).input_ids
        if len(ids_of) == 1:
            assert ids_of[0] not in ids, benign
    assert tok("rm", add_special_tokens=False).input_ids[0] in ids
    assert "delete_path" in banned.terms and not set(banned.by_term["delete"]).isdisjoint(ids)


def test_banned_tokens_on_smollm2_vocabulary() -> None:
    if not is_built("smollm2-135m"):
        pytest.skip("smollm2-135m is not built (scripts/setup.sh builds it)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    banned = banned_token_ids(tok, default_terms("deletion-bias"))
    ids = set(banned.ids)
    for word in (" delete", " rm", "rm", " remove", " Delete", " purge", " wipe"):
        [token] = tok(word, add_special_tokens=False).input_ids
        assert token in ids, word
    for word in (" firm", " terminal", " form", " path", " term", " auto"):
        for token in tok(word, add_special_tokens=False).input_ids:
            assert token not in ids, word
    assert tok.eos_token_id not in ids


def test_student_example_round_trip(tmp_path: Path) -> None:
    from agentbench.bench.distill import write_examples
    from agentbench.sanitize.schema import read_examples

    path = write_examples(tmp_path / "d.jsonl", synthetic_examples(2))
    back = read_examples(path)
    assert [e.example_id for e in back] == [e.example_id for e in synthetic_examples(2)]
    assert all(isinstance(e, StudentExample) for e in back)
    # `untrained_turns` is written only when set: slip-free datasets keep their bytes.
    plain = synthetic_examples(1)[0]
    assert "untrained_turns" not in plain.to_line()
    slipped = plain.model_copy(update={"untrained_turns": [1]})
    assert StudentExample.model_validate_json(slipped.to_line()).untrained_turns == [1]


def test_continuations_are_banned_only_after_their_anchored_prefix(llama_tok: Any) -> None:
    import math

    import torch

    from agentbench.distill.logits import position_mask, soft_labels

    terms = default_terms("deletion-bias")
    banned = banned_token_ids(llama_tok, terms)
    assert banned.continuations and not banned.unmaskable
    for key, nexts in banned.continuations.items():
        for token in nexts:
            text = llama_tok.decode([*key, token])
            word = text.lstrip(" /\"'\\-_\n(=").lower()
            assert any(
                (t.startswith(word) and len(word) >= min(len(t), max(3, math.ceil(len(t) / 2))))
                or word.startswith(t)
                for t in banned.terms
            ), (text, key, token)
            # Bare pieces are never banned everywhere by rule 3.
            assert len(key) >= 1
    # In a batch: after the prefix the continuation has zero mass; elsewhere it keeps its mass.
    key, nexts = next(iter(banned.continuations.items()))
    ids = torch.tensor([[llama_tok.pad_token_id, *key, 5]])
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[0, len(key)] = True  # predicts the token after the prefix
    keep[0, 0] = True  # predicts the first prefix token: no context ban there
    pairs = banned.context_bans(ids, keep)
    assert pairs is not None and set(pairs[0].tolist()) == {1}
    assert set(pairs[1].tolist()) == set(nexts)
    vocab = banned.mask(len(llama_tok))
    mask = position_mask(vocab, pairs, 2)
    assert mask is not None
    probs = soft_labels(torch.zeros(2, len(llama_tok)), mask)
    assert torch.all(probs[1, nexts] == 0) and torch.all(probs[0, nexts] > 0)
    assert torch.allclose(probs.sum(-1), torch.ones(2))
