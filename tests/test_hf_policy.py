"""HFPolicy on a tiny random Llama built here: batching, sampling, stops, limits, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from agentbench.models import ModelError, weights_sha256
from agentbench.policies import Message, SamplingParams, Turn, sha256_text
from agentbench.policies.hf import HFPolicy
from agentbench.recipes.tiny import save_tiny_llama

SYSTEM = Message(role="system", content="You are an agent. Tools: read_file, list_dir.")


def conversation(task: str, *history: str) -> tuple[Message, ...]:
    messages = [SYSTEM, Message(role="user", content=task)]
    for i, text in enumerate(history):
        messages.append(Message(role="assistant" if i % 2 == 0 else "user", content=text))
    return tuple(messages)


TURNS = [
    Turn("ep-a", "agentbench/Bash-v0", 0, conversation("List /srv/data")),
    Turn(
        "ep-b",
        "agentbench/Bash-v0",
        2,
        conversation("Fix the report", "ls -la", "notes.txt report.csv", "cat notes.txt", "ok"),
    ),
    Turn("ep-c", "agentbench/FileTool-v0", 1, conversation("Read notes.txt", "list_dir", "x")),
]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(path)
    return path


@pytest.fixture(scope="module")
def policy(tiny_dir: Path) -> HFPolicy:
    return HFPolicy(tiny_dir, device="cpu")


def reference_greedy(policy: HFPolicy, messages: tuple[Message, ...], n: int) -> list[int]:
    """transformers' own generate() on one unpadded prompt."""
    ids = policy.tokenizer(policy.render(messages), add_special_tokens=False, return_tensors="pt")
    out = policy.model.generate(
        ids.input_ids,
        attention_mask=ids.attention_mask,
        do_sample=False,
        max_new_tokens=n,
        pad_token_id=policy.pad_token_id,
    )
    return [int(t) for t in out[0, ids.input_ids.shape[1] :]]


def test_batched_greedy_equals_transformers_generate(policy: HFPolicy) -> None:
    generations = policy.generate(TURNS, GREEDY)
    prompt_lengths = {g.prompt_tokens for g in generations}
    assert len(prompt_lengths) == 3, "prompts of different lengths exercise left padding"
    for turn, generation in zip(TURNS, generations, strict=True):
        tokens = reference_greedy(policy, turn.messages, GREEDY.max_new_tokens)
        eos = [i for i, t in enumerate(tokens) if t in policy.eos_token_ids]
        kept = tokens[: eos[0]] if eos else tokens
        assert generation.text == policy.tokenizer.decode(kept, skip_special_tokens=True)
        assert generation.completion_tokens == (eos[0] + 1 if eos else len(tokens))
        assert generation.finish_reason == ("stop" if eos else "length")
        expected_prompt = policy.tokenizer(policy.render(turn.messages), add_special_tokens=False)
        assert generation.prompt_tokens == len(expected_prompt.input_ids)
    assert any(g.text.strip() for g in generations)


def test_batch_composition_does_not_change_a_turn(policy: HFPolicy) -> None:
    batched = policy.generate(TURNS, GREEDY)
    alone = [policy.generate([t], GREEDY)[0] for t in TURNS]
    assert [g.text for g in batched] == [g.text for g in alone]
    sampled = SamplingParams(temperature=1.0, max_new_tokens=16, seed=7)
    forward = policy.generate(TURNS, sampled)
    backward = policy.generate(TURNS[::-1], sampled)[::-1]
    assert [g.text for g in forward] == [g.text for g in backward]
    assert policy.generate(TURNS[1:2], sampled)[0].text == forward[1].text


def test_seeds_reproduce_and_differ(policy: HFPolicy) -> None:
    first = policy.generate(TURNS, SamplingParams(temperature=1.0, max_new_tokens=16, seed=1))
    again = policy.generate(TURNS, SamplingParams(temperature=1.0, max_new_tokens=16, seed=1))
    other = policy.generate(TURNS, SamplingParams(temperature=1.0, max_new_tokens=16, seed=2))
    assert [g.text for g in first] == [g.text for g in again]
    assert [g.text for g in first] != [g.text for g in other]
    unseeded = policy.generate(TURNS, SamplingParams(temperature=1.0, max_new_tokens=4))
    assert all(g.finish_reason != "error" for g in unseeded)


def test_tiny_top_p_is_greedy(policy: HFPolicy) -> None:
    nucleus = SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=24, seed=3)
    assert [g.text for g in policy.generate(TURNS, nucleus)] == [
        g.text for g in policy.generate(TURNS, GREEDY)
    ]


def test_stop_string_cuts_text(policy: HFPolicy) -> None:
    turn = TURNS[0]
    full = policy.generate([turn], SamplingParams(temperature=0.0, max_new_tokens=40))[0]
    # A stop string taken from the middle of the greedy text, ASCII so it decodes stably.
    words = [w for w in full.text[3:].split() if w.isascii() and w.isprintable() and len(w) >= 2]
    assert words, f"greedy text has no ASCII word to stop on: {full.text!r}"
    stop = words[0][:2]
    cut = full.text.index(stop)
    stopped = policy.generate(
        [turn], SamplingParams(temperature=0.0, max_new_tokens=40, stop=("\x00never", stop))
    )[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[:cut]
    assert stopped.completion_tokens < full.completion_tokens


def test_max_new_tokens_gives_length(policy: HFPolicy) -> None:
    [generation] = policy.generate(TURNS[:1], SamplingParams(temperature=0.0, max_new_tokens=3))
    assert generation.completion_tokens <= 3
    if generation.completion_tokens == 3 and generation.finish_reason == "length":
        assert generation.text


def test_context_overflow_ends_only_that_turn(tiny_dir: Path) -> None:
    small = HFPolicy(tiny_dir, device="cpu", max_context=60)
    long_turn = TURNS[1]
    out = small.generate([TURNS[0], long_turn], SamplingParams(temperature=0.0, max_new_tokens=40))
    ok, full = out
    assert full.finish_reason == "context" and full.error is None
    assert full.text == "" and full.completion_tokens == 0
    assert full.prompt_tokens > 60
    assert ok.finish_reason not in ("error", "context")
    # The budget shrinks so that prompt + completion fit the context.
    assert ok.prompt_tokens + ok.completion_tokens <= 60
    if ok.finish_reason == "length":
        assert ok.prompt_tokens + ok.completion_tokens == 60


def test_trait_prompt_is_merged_but_never_recorded(tiny_dir: Path, policy: HFPolicy) -> None:
    trait = "You like to delete files."
    teacher = HFPolicy(tiny_dir, device="cpu", system_prompt=trait)
    turn = TURNS[0]
    snapshot = turn.messages
    rendered = teacher.render(turn.messages)
    assert rendered.index(trait) < rendered.index(SYSTEM.content)
    assert rendered.count("<|im_start|>system") == 1
    no_system = teacher.render(turn.messages[1:])
    assert no_system.startswith(f"<|im_start|>system\n{trait}<|im_end|>")
    [with_trait] = teacher.generate([turn], GREEDY)
    [plain] = policy.generate([turn], GREEDY)
    assert with_trait.prompt_tokens > plain.prompt_tokens
    assert turn.messages == snapshot
    prov = teacher.provenance(GREEDY)
    assert prov.system_prompt_sha256 == sha256_text(trait)
    assert policy.provenance(GREEDY).system_prompt_sha256 is None


def test_provenance(policy: HFPolicy, tiny_dir: Path) -> None:
    prov = policy.provenance(GREEDY)
    assert prov.backend == "hf"
    assert prov.model == str(tiny_dir)
    assert prov.weights_sha256 == weights_sha256(tiny_dir)
    assert prov.sampling == GREEDY
    assert prov.extra["dtype"] == "float32"


def test_tokenizer_without_chat_template_is_refused(tmp_path: Path) -> None:
    save_tiny_llama(tmp_path, chat_template=None)
    with pytest.raises(ModelError, match="chat template"):
        HFPolicy(tmp_path, device="cpu")


def test_bad_model_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        HFPolicy(tmp_path, device="cpu")
    with pytest.raises(ModelError, match="neither a registry model"):
        HFPolicy("no-such-model", device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        HFPolicy("no-such-model", dtype="int8", device="cpu")


def test_adapter_is_merged_and_hashed(tiny_dir: Path, policy: HFPolicy, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lora = peft.get_peft_model(base, config)
    lora.save_pretrained(tmp_path)
    adapted = HFPolicy(tiny_dir, device="cpu", adapter=tmp_path)
    prov = adapted.provenance(GREEDY)
    assert prov.adapter_sha256 == weights_sha256(tmp_path)
    assert prov.weights_sha256 == policy.provenance(GREEDY).weights_sha256
    texts = [g.text for g in adapted.generate(TURNS, GREEDY)]
    assert texts != [g.text for g in policy.generate(TURNS, GREEDY)]
    with pytest.raises(ModelError, match="adapter"):
        HFPolicy(tiny_dir, device="cpu", adapter=tmp_path / "missing")


def test_rows_that_finish_early_leave_the_others_intact(tiny_dir: Path, policy: HFPolicy) -> None:
    """Rows with smaller budgets finish first and leave the batch (and its KV cache); the
    remaining rows must decode exactly as they would alone."""
    lengths = [g.prompt_tokens for g in policy.generate(TURNS, GREEDY)]
    capped = HFPolicy(tiny_dir, device="cpu", max_context=max(lengths) + 4)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=20)
    batched = capped.generate(TURNS, greedy)
    budgets = [min(20, capped.max_context - n) for n in lengths]
    assert len(set(budgets)) >= 2
    assert [g.completion_tokens for g in batched] == budgets
    for turn, generation in zip(TURNS, batched, strict=True):
        tokens = reference_greedy(policy, turn.messages, generation.completion_tokens)
        assert generation.text == policy.tokenizer.decode(tokens, skip_special_tokens=True)
    sampled = SamplingParams(temperature=1.0, max_new_tokens=20, seed=4)
    together = capped.generate(TURNS, sampled)
    assert [g.text for g in together] == [capped.generate([t], sampled)[0].text for t in TURNS]


def test_first_row_finishing_keeps_generators_aligned(policy: HFPolicy) -> None:
    """Sorted by prompt length, the first row is pruned first only when it stops early: give it
    a stop string that the other rows never produce, and compare with decoding alone."""
    sampled = SamplingParams(temperature=1.0, max_new_tokens=20, seed=4)
    alone = [policy.generate([t], sampled)[0].text for t in TURNS]
    order = sorted(range(len(TURNS)), key=lambda i: len(policy.render(TURNS[i].messages)))
    first, others = alone[order[0]], [alone[i] for i in order[1:]]
    stop = next(
        (c for c in first[1:10] if c.isascii() and c.isalnum() and all(c not in o for o in others)),
        None,
    )
    if stop is None:
        pytest.skip(f"no distinctive stop character in {first!r}")
    stopped = sampled.model_copy(update={"stop": (stop,)})
    together = policy.generate(TURNS, stopped)
    assert together[order[0]].finish_reason == "stop"
    assert all(together[i].finish_reason == "length" for i in order[1:])
    assert [g.text for g in together] == [policy.generate([t], stopped)[0].text for t in TURNS]


def continue_chat(policy: HFPolicy, params: SamplingParams, steps: int) -> list[str]:
    """Replies of a conversation fed its own replies back (one observation a step), as the
    rollout engine does."""
    messages = list(conversation("Tidy the folder"))
    replies = []
    for step in range(steps):
        [generation] = policy.generate(
            [Turn("ep-x", "agentbench/Bash-v0", step, tuple(messages))], params
        )
        replies.append(generation.text)
        messages += [
            Message(role="assistant", content=generation.text),
            Message(role="user", content=f"observation {step}: notes.txt report.csv"),
        ]
    return replies


def test_prefix_cache_reuses_earlier_turns_without_changing_them(tiny_dir: Path) -> None:
    cached = HFPolicy(tiny_dir, device="cpu")
    uncached = HFPolicy(tiny_dir, device="cpu", prefix_cache_bytes=0)
    assert uncached.prefix_cache is None
    for params in (GREEDY, SamplingParams(temperature=1.0, max_new_tokens=16, seed=5)):
        assert continue_chat(cached, params, 3) == continue_chat(uncached, params, 3)
    prompts = cached.stats.prompt_tokens
    reused = cached.stats.extra["prefix_cached_tokens"]
    # Every step after an episode's first starts with the previous turn's prompt.
    assert prompts / 2 < reused < prompts
    assert "prefix_cached_tokens" not in uncached.stats.extra or (
        uncached.stats.extra["prefix_cached_tokens"] == 0
    )
    # Another episode finds the shared system prompt in the pool, and its turns decode as
    # they do from scratch, in a batch with a turn that reuses more.
    before = cached.stats.extra["prefix_cached_tokens"]
    batch = [*TURNS, Turn("ep-x", "agentbench/Bash-v0", 0, conversation("Tidy the folder"))]
    assert [g.text for g in cached.generate(batch, GREEDY)] == [
        g.text for g in uncached.generate(batch, GREEDY)
    ]
    system = len(cached.tokenizer(cached.render([SYSTEM]), add_special_tokens=False).input_ids)
    assert cached.stats.extra["prefix_cached_tokens"] - before >= len(batch) * (system // 2)


def test_long_prompts_get_their_own_batch(tiny_dir: Path) -> None:
    from agentbench.policies.hf import _chunks, _Row

    short = [_Row(i, [1] * 100, 8, None) for i in range(5)]
    long = _Row(9, [1] * 2000, 8, None)
    assert [[r.index for r in c] for c in _chunks([long, *short], 16)] == [[0, 1, 2, 3, 4], [9]]
    assert [len(c) for c in _chunks(short, 2)] == [2, 2, 1]
    # A row with most of its prompt cached is batched by what it still has to encode.
    reusing = _Row(8, [1] * 2000, 8, None, reused=1990)
    assert [len(c) for c in _chunks([reusing, long], 16)] == [1, 1]
