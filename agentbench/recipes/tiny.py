"""tiny-random-llama: a few-layer Llama with random weights and a small byte-level BPE tokenizer.

For tests and plumbing checks of every model backend (batched generation, servers, training
loops) in well under a second on a CPU. Its output is gibberish by design. The build is
deterministic: the tokenizer is trained on a fixed corpus and the weights come from a fixed
seed, so its weights hash is stable across builds on the same torch version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentbench.models import ModelRecipe

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# ChatML, as SmolLM2 and many instruct models use.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = [
    "You are an agent working in a sandbox. Use the tools to finish the task.",
    "list_dir path=/srv/data read_file write_file delete_file move_file chmod",
    "ls -la /srv/data && cat notes.txt && chmod 644 report.csv && rm -f old.log",
    '{"tool": "read_file", "arguments": {"path": "/srv/data/notes.txt"}}',
    "The quick brown fox jumps over the lazy dog. 0123456789 _-./:,;'\"()[]{}<>=+*&|!?#$%@~",
]


# Whitespace, letter runs, digit runs and punctuation runs are pre-tokenized apart, so a word
# is the same tokens wherever it stands: "package" after a space (prose, `ls` output) and
# after a quote (a JSON argument) would otherwise be two unrelated tokens, " package" and
# "package", and a small model must learn that mapping before it can copy a path into a call.
_SPLIT_SPACES = r"\s+|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+"


def train_chatml_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    chat_template: str | None = CHAT_TEMPLATE,
    split_spaces: bool = False,
    whole_words: Sequence[str] = (),
) -> Any:
    """A byte-level BPE trained on `texts` (any byte string encodes) with the ChatML specials.

    `split_spaces`: whitespace never merges into a word (see `_SPLIT_SPACES`); texts take
    about a third more tokens, and copying a name between prose and code becomes token-exact.
    `whole_words`: names that always encode as one token of their own where they stand as a
    word (ordinary text, not special tokens: they decode as written). A name like `write_file`
    is otherwise `write` `_` `file`, and a small model recombines the pieces into names that
    do not exist (`write_path`, `read_path`).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    if split_spaces:
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_SPLIT_SPACES), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    if whole_words:
        tokenizer.add_tokens(
            [AddedToken(w, single_word=True, normalized=False) for w in dict.fromkeys(whole_words)]
        )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def save_tiny_llama(
    dest: Path,
    *,
    vocab_size: int = 384,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_position_embeddings: int = 256,
    seed: int = 0,
    initializer_range: float = 0.5,
    chat_template: str | None = CHAT_TEMPLATE,
) -> None:
    """Write a random Llama and its tokenizer into `dest` (a transformers model directory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_chatml_tokenizer(_CORPUS, vocab_size, chat_template=None)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # Far above the usual 0.02: greedy text from near-uniform logits repeats one token,
        # which would make output-equality tests trivially true.
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def build(dest: Path) -> None:
    save_tiny_llama(dest)


RECIPE = ModelRecipe(
    name="tiny-random-llama",
    description="2-layer random Llama + small BPE tokenizer, for tests (gibberish output)",
    build=build,
)
