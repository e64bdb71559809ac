"""The transformers backend: a local causal LM generating a batch of turns at once.

Turns are rendered with the tokenizer's chat template (`add_generation_prompt=True`), sorted by
length, left-padded into batches of `batch_size` and decoded together with a KV cache. The
decode loop is our own (a few lines over the model's forward pass) rather than
`model.generate`, because it needs two things `generate` does not offer: a random generator per
row, and per-row token budgets when prompts of different lengths share a context limit.

Seeding: with `SamplingParams.seed` set, every turn samples from its own `torch.Generator`
seeded with `turn_seed(seed, episode_id, step)`, so a turn's tokens do not depend on which
other turns share its batch (up to floating-point differences that padding can cause). With
`seed=None` sampling uses torch's global generator and is not reproducible. Temperature 0 is
greedy decoding.

Prefix cache (`prefix_cache_bytes`, on by default): the keys and values of every finished turn
are kept, and a later prompt that starts with the same tokens (the next step of the same
episode, or another episode's system prompt) encodes only what is new
(`agentbench.policies.prefix_cache`). Batches are cut where padding would waste more than a
quarter of the prompt tokens, so one long conversation does not pad a whole batch.

Constrained decoding (`SamplingParams.constrained`, or `schemas` for `generate_chats`): before
each token is chosen, a row with a JSON schema (its env's `action_schema`) has every token
the schema does not allow next masked out (`agentbench.policies.constrained`); other rows in
the batch are untouched.

Limits: a turn whose prompt leaves no room in `max_context` (default: the model's
`max_position_embeddings`) gets finish_reason "context" (the episode ends there, scored);
otherwise its new tokens are capped so
that prompt + completion fit (finish_reason "length" when the cap is hit). A tokenizer without
a chat template is refused at construction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentbench.chat import Message, merge_system_prompt
from agentbench.models import ModelError, model_weights_sha256, resolve_model, weights_sha256
from agentbench.policies.base import (
    Generation,
    Policy,
    PolicyProvenance,
    PolicyStats,
    SamplingParams,
    Turn,
    context_full,
    sha256_text,
    turn_seed,
)
from agentbench.policies.prefix_cache import PrefixCache, cut_row, plain_layers, stitch
from agentbench.transformers_compat import cache_kwarg, output_cache

if TYPE_CHECKING:
    import torch

    from agentbench.policies.constrained import ActionConstraint, SchemaDecoder
    from agentbench.policies.prefix_cache import PrefixEntry

FinishReason = Literal["stop", "length", "error", "cancelled"]


@dataclass(frozen=True)
class TokenLogprob:
    """A sampled token's log-probability under the model's own distribution (log-softmax of
    its logits, before temperature, top_p and any schema mask: vLLM's default), with the
    `top` likeliest tokens as (id, log-probability), likeliest first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass
class _Row:
    """One turn being decoded."""

    index: int
    prompt: list[int]
    budget: int
    seed: int | None
    tokens: list[int] = field(default_factory=list)
    text: str | None = None
    finish: FinishReason | None = None
    decoder: SchemaDecoder | None = None
    """Constrained decoding: the tokens its action schema allows next (None: free)."""
    cached: PrefixEntry | None = None
    reused: int = 0
    """How many leading prompt tokens come from `cached` instead of being encoded."""
    top_logprobs: int | None = None
    """Log-probabilities wanted: None: none; k: the sampled token's and the k likeliest."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    cancelled: bool = False
    """Set from any thread (`Decoding.cancel`); the decode loop drops the row at its next
    step (a plain attribute: one store, atomic under the GIL)."""
    error: str | None = None


class HFPolicy(Policy):
    """A transformers causal LM as a policy.

    `model` is a registry name, a local model directory or a hub id (see
    `agentbench.models.resolve_model`). `adapter` is a PEFT adapter directory merged into the
    weights at load. `system_prompt` is a teacher's trait prompt: it is prepended to the system
    message at generation time only, never written into the turns, and recorded in provenance
    by its sha256. `prefix_cache_bytes` bounds the keys and values kept for reuse by later
    turns (0: off; see the module docstring).

    Raises `ModelError` when the model or adapter cannot be loaded or the tokenizer has no chat
    template.
    """

    backend = "hf"
    supports_constrained = True

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "auto",
        device: str = "auto",
        adapter: str | Path | None = None,
        system_prompt: str | None = None,
        max_context: int | None = None,
        batch_size: int = 16,
        prefix_cache_bytes: int = 2 * 2**30,
    ) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        try:
            self.device = torch.device(
                ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
            )
        except RuntimeError as exc:
            raise ValueError(f"unknown device {device!r}: {exc}") from None
        self.dtype = _torch_dtype(dtype, self.device)
        self.model_name = str(model)
        self.path = resolve_model(model)
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.stats = PolicyStats()
        # Re-entrant: generate_chats holds it around the steps, which each take it again.
        self._lock = threading.RLock()
        self._transformers_version = transformers.__version__
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        except Exception as exc:
            raise ModelError(f"cannot load the tokenizer of {self.path}: {exc}") from exc
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(
                f"the tokenizer of {self.path} has no chat template: use an instruct/chat model, "
                "or add a `chat_template` (tokenizer_config.json or chat_template.jinja) to it"
            )
        try:
            lm: Any = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype)
        except Exception as exc:
            raise ModelError(f"cannot load the model in {self.path}: {exc}") from exc
        self.adapter_sha256: str | None = None
        if adapter is not None:
            lm = self._merge_adapter(lm, Path(adapter))
        self.model = lm.to(self.device).eval()
        self._cache_kwarg = cache_kwarg(self.model)
        self.weights_sha256 = model_weights_sha256(self.path)

        config_limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_context = int(max_context or config_limit or 2048)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        if pad is None:
            raise ModelError(f"the tokenizer of {self.path} has neither a pad nor an eos token")
        self.pad_token_id = int(pad)
        self.eos_token_ids = _eos_ids(self.model, self.tokenizer)
        self._constraint: ActionConstraint | None = None
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None

    def _merge_adapter(self, lm: Any, adapter: Path) -> Any:
        try:
            from peft import PeftModel

            merged = PeftModel.from_pretrained(lm, adapter).merge_and_unload()
        except Exception as exc:
            raise ModelError(f"cannot apply the adapter in {adapter}: {exc}") from exc
        self.adapter_sha256 = weights_sha256(adapter)
        return merged

    # -- the Policy contract -------------------------------------------------------------

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        seeds = [turn_seed(params.seed, t.episode_id, t.step) for t in turns]
        schemas = None
        if params.constrained:
            from agentbench.envs import action_schema

            schemas = [action_schema(t.env_id) for t in turns]
        return self.generate_chats([t.messages for t in turns], params, seeds, schemas)

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return PolicyProvenance(
            backend=self.backend,
            model=self.model_name,
            weights_sha256=self.weights_sha256,
            adapter_sha256=self.adapter_sha256,
            system_prompt_sha256=(
                sha256_text(self.system_prompt) if self.system_prompt is not None else None
            ),
            sampling=params,
            extra={
                "path": str(self.path),
                "dtype": str(self.dtype).removeprefix("torch."),
                "device": str(self.device),
                "max_context": self.max_context,
                "transformers": self._transformers_version,
                "seeding": "per-turn torch.Generator seeded with turn_seed",
            },
        )

    def close(self) -> None:
        self.__dict__.pop("model", None)
        self.prefix_cache = None  # up to prefix_cache_bytes of keys and values

    # -- generation ------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees for a conversation (trait prompt merged in)."""
        chat = merge_system_prompt(messages, self.system_prompt)
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):
            raise ModelError("the chat template did not render to text")
        return text

    def generate_chats(
        self,
        chats: Sequence[Sequence[Message]],
        params: SamplingParams,
        seeds: Sequence[int | None],
        schemas: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[Generation]:
        """Generate for raw conversations with explicit per-conversation seeds (`generate`
        derives the seeds from the turns). `schemas`: per conversation, a JSON schema its
        reply is decoded inside (`SamplingParams.constrained`; None: free text)."""
        with self._lock:
            decoding = self.start(chats, params, seeds, schemas)
            while decoding.step():
                pass
            return decoding.generations()

    def start(
        self,
        chats: Sequence[Sequence[Message]],
        params: SamplingParams,
        seeds: Sequence[int | None],
        schemas: Sequence[dict[str, Any] | None] | None = None,
        *,
        top_logprobs: Sequence[int | None] | None = None,
        interleave: bool = False,
    ) -> Decoding:
        """Begin decoding conversations one token step at a time (the server's entry point;
        `generate_chats` runs it to the end). Renders and tokenizes every conversation now: a
        template error or a prompt with no room left in the context is final at once.
        `top_logprobs`: per conversation, None (no log-probabilities) or k >= 0 (the sampled
        token's and the k likeliest, `TokenLogprob`). `interleave`: step every chunk of
        `batch_size` rows in turn instead of one chunk after the other (a later chunk is not
        held back; all their caches are alive at once). Raises ValueError for mismatched
        lengths."""
        if len(seeds) != len(chats):
            raise ValueError("one seed per conversation")
        if schemas is not None and len(schemas) != len(chats):
            raise ValueError("one schema (or None) per conversation")
        if top_logprobs is not None and len(top_logprobs) != len(chats):
            raise ValueError("one top_logprobs (or None) per conversation")
        with self._lock:
            started = time.perf_counter()
            results: list[Generation | None] = [None] * len(chats)
            rows: list[_Row] = []
            decoders = self._decoders(schemas)
            for index, (messages, seed) in enumerate(zip(chats, seeds, strict=True)):
                try:
                    prompt = self.tokenizer(
                        self.render(messages), add_special_tokens=False
                    ).input_ids
                except Exception as exc:  # a template may raise on odd conversations
                    results[index] = _error(f"cannot render the conversation: {exc}")
                    continue
                room = self.max_context - len(prompt)
                if room < 1:
                    results[index] = context_full(len(prompt))
                    continue
                budget = min(params.max_new_tokens, room)
                decoder = decoders[index] if decoders else None
                row = _Row(index, prompt, budget, seed, decoder=decoder)
                row.top_logprobs = top_logprobs[index] if top_logprobs is not None else None
                if self.prefix_cache is not None:
                    row.cached, row.reused = self.prefix_cache.match(prompt)
                rows.append(row)
            decoding = Decoding(self, rows, results, params, interleave=interleave)
            decoding.seconds += time.perf_counter() - started
            return decoding

    def _account(self, decoding: Decoding) -> None:
        """Add a finished decoding to `stats`."""
        done = decoding.generations()
        self.stats.calls += 1
        self.stats.prompt_tokens += sum(g.prompt_tokens for g in done)
        self.stats.completion_tokens += sum(g.completion_tokens for g in done)
        self.stats.generate_seconds += decoding.seconds
        reused = sum(r.reused for r in decoding.rows)
        self.stats.extra["prefix_cached_tokens"] = (
            self.stats.extra.get("prefix_cached_tokens", 0) + reused
        )

    def _decoders(
        self, schemas: Sequence[dict[str, Any] | None] | None
    ) -> list[SchemaDecoder | None] | None:
        """One decoder per distinct schema (rows share it: its states are keyed by tokens)."""
        if schemas is None or all(s is None for s in schemas):
            return None
        from agentbench.policies.constrained import ActionConstraint

        if self._constraint is None:
            self._constraint = ActionConstraint(self.tokenizer, self.eos_token_ids)
        by_schema: dict[str, SchemaDecoder] = {}
        decoders: list[SchemaDecoder | None] = []
        for schema in schemas:
            if schema is None:
                decoders.append(None)
                continue
            key = json.dumps(schema, sort_keys=True)
            if key not in by_schema:
                by_schema[key] = self._constraint.decoder(schema)
            decoders.append(by_schema[key])
        return decoders

    def _decode_steps(self, rows: list[_Row], params: SamplingParams) -> Iterator[None]:
        """Decode `rows` as one batch, yielding after each token step (the first step also
        encodes the prompts); the caller holds the lock around each resume. A row whose
        `cancelled` is set by then is dropped from the batch before the next forward pass.
        Inference mode is entered per step, never held across a yield: another decoding
        resumed in between must find the thread's grad mode as it left it."""
        import torch

        device = self.device
        # Row i: [pad | its cached tokens] [pad | its new tokens]; the first block is the past
        # (keys and values from the prefix cache), the second is encoded now.
        past = max(r.reused for r in rows)
        width = max(len(r.prompt) - r.reused for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), past + width), dtype=torch.long)
        for i, row in enumerate(rows):
            new = row.prompt[row.reused :]
            ids[i, width - len(new) :] = torch.tensor(new)
            mask[i, past - row.reused : past] = 1
            mask[i, past + width - len(new) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        cache: Any = None
        if past:
            from transformers import DynamicCache

            parts = [(r.cached, r.reused) for r in rows]
            cache = DynamicCache(ddp_cache_data=stitch(parts, past, device))
        generators = [
            torch.Generator(device=device).manual_seed(r.seed) if r.seed is not None else None
            for r in rows
        ]
        longest_stop = max((len(s) for s in params.stop), default=0)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kwarg: cache},
            )
            if self.prefix_cache is not None and not plain_layers(output_cache(out)):
                self.prefix_cache = None  # sliding-window or recurrent layers: cannot cut rows
        live = rows  # the rows still decoding, in batch order
        for _ in range(max(r.budget for r in rows)):
            with torch.inference_mode():
                raw = out.logits[:, -1, :]
                logits = raw
                if any(row.decoder is not None for row in live):
                    logits = _constrain(logits, live)
                next_tokens = self._choose(logits, params, generators)
                if any(row.top_logprobs is not None for row in live):
                    _record_logprobs(raw, next_tokens, live)
                for i, row in enumerate(live):
                    if row.finish is not None:  # only without cache pruning (below)
                        next_tokens[i] = self.pad_token_id
                        continue
                    self._advance(row, int(next_tokens[i]), params.stop, longest_stop)
                    if row.finish is not None and self.prefix_cache is not None:
                        # Its keys and values cover the prompt and every token but the last
                        # (sampled, never fed back): the next step's prompt starts with them.
                        self.prefix_cache.add(
                            row.prompt + row.tokens[:-1],
                            cut_row(output_cache(out), i, mask[i].bool()),
                        )
            yield
            for row in live:  # cancelled while suspended: no more forward passes for it
                if row.finish is None and row.cancelled:
                    row.finish = "cancelled"
            keep = [i for i, row in enumerate(live) if row.finish is None]
            if not keep:
                break
            with torch.inference_mode():
                cache = output_cache(out)
                if len(keep) < len(live) and hasattr(cache, "batch_select_indices"):
                    # Drop finished rows from the batch and the KV cache: a batch then costs
                    # what its live rows cost, not what its longest answer costs.
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask, positions, next_tokens = mask[index], positions[index], next_tokens[index]
                    live = [live[i] for i in keep]
                    generators = [generators[i] for i in keep]
                mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(
                    input_ids=next_tokens[:, None],
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_kwarg: cache},
                )

    def _advance(self, row: _Row, token: int, stop: tuple[str, ...], longest_stop: int) -> None:
        """Append one token to a row and decide whether it has finished."""
        row.tokens.append(token)
        if token in self.eos_token_ids:
            row.finish = "stop"
            row.text = self._text(row.tokens[:-1])
        elif stop and self._hit_stop(row, stop, longest_stop):
            row.finish = "stop"
        elif len(row.tokens) >= row.budget:
            row.finish = "length"
            row.text = self._text(row.tokens)

    def _choose(
        self,
        logits: torch.Tensor,
        params: SamplingParams,
        generators: list[torch.Generator | None],
    ) -> torch.Tensor:
        import torch

        if params.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always at least one token).
            drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= params.top_p
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.empty(len(generators), dtype=torch.long, device=logits.device)
        for i, generator in enumerate(generators):
            chosen[i] = torch.multinomial(probs[i], 1, generator=generator)[0]
        return chosen

    def _hit_stop(self, row: _Row, stops: tuple[str, ...], longest: int) -> bool:
        text = self._text(row.tokens)
        # Only the tail can hold a stop string that this token completed.
        tail_start = max(0, len(self._text(row.tokens[:-1])) - longest)
        found = [p for s in stops if (p := text.find(s, tail_start)) >= 0]
        if not found:
            return False
        row.text = text[: min(found)]
        return True

    def _text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))


class Decoding:
    """A batch of conversations being decoded a token step at a time (`HFPolicy.start`).

    `step()` advances every live row by one token (the first also encodes the prompts) and
    says whether any row is still decoding; rows are decoded in chunks, as `generate_chats`
    decodes them. Each step holds the policy's lock, so the steps of several decodings can be
    interleaved by one thread (the server's fair scheduling) but never overlap. `cancel(i)`
    may be called from any thread: conversation i stops at its next step (result: error
    "cancelled"). `generations()` gives one `Generation` per conversation once `step()` has
    returned False. A chunk whose forward pass raises (out of memory, ...) fails its rows,
    not the decoding.
    """

    def __init__(
        self,
        policy: HFPolicy,
        rows: list[_Row],
        results: list[Generation | None],
        params: SamplingParams,
        *,
        interleave: bool = False,
    ) -> None:
        self.policy, self.params, self.rows = policy, params, rows
        self.interleave = interleave
        self._by_index = {row.index: row for row in rows}
        self._results = results  # those final at the start: template errors, context full
        self._steps = self._run()
        self.done = False
        self.seconds = 0.0
        """Time spent in `start` and `step` (the policy's `generate_seconds`)."""

    def _run(self) -> Iterator[None]:
        chunks = [self._chunk_steps(chunk) for chunk in _chunks(self.rows, self.policy.batch_size)]
        if not self.interleave:  # one chunk after the other: one chunk's memory at a time
            for steps in chunks:
                yield from steps
            return
        while chunks:  # a step of every chunk in turn: a later chunk is not held back
            for steps in list(chunks):
                try:
                    next(steps)
                except StopIteration:
                    chunks.remove(steps)
            yield

    def _chunk_steps(self, chunk: list[_Row]) -> Iterator[None]:
        for row in chunk:  # cancelled before its chunk started
            if row.cancelled:
                row.finish = "cancelled"
        live = [row for row in chunk if row.finish is None]
        if not live:
            return
        try:
            yield from self.policy._decode_steps(live, self.params)
        except Exception as exc:  # e.g. out of memory: fail these turns, not the run
            for row in live:
                row.error = f"generation failed: {type(exc).__name__}: {exc}"

    def step(self) -> bool:
        """Advance one token step; False once every conversation has finished."""
        if self.done:
            return False
        started = time.perf_counter()
        with self.policy._lock:
            try:
                next(self._steps)
            except StopIteration:
                self.done = True
        self.seconds += time.perf_counter() - started
        if self.done:
            self.policy._account(self)
        return not self.done

    def cancel(self, index: int) -> None:
        """Stop conversation `index` at its next step (safe from any thread)."""
        row = self._by_index.get(index)
        if row is not None:
            row.cancelled = True

    def tokens(self, index: int) -> list[int]:
        """The tokens conversation `index` has sampled so far (its end-of-text token left
        out); empty for one that never decoded."""
        row = self._by_index.get(index)
        if row is None:
            return []
        tokens = list(row.tokens)
        if tokens and row.finish == "stop" and tokens[-1] in self.policy.eos_token_ids:
            tokens.pop()
        return tokens

    def logprobs(self, index: int) -> list[TokenLogprob]:
        """Log-probabilities of `tokens(index)` (empty unless asked for at the start)."""
        row = self._by_index.get(index)
        return [] if row is None else row.logprobs[: len(self.tokens(index))]

    def text(self, index: int) -> str:
        """The reply so far; once finished, the reply (cut at a stop string)."""
        row = self._by_index.get(index)
        if row is None:
            return ""
        if row.text is not None:
            return row.text
        return self.policy._text(self.tokens(index))

    def finished(self, index: int) -> bool:
        row = self._by_index.get(index)
        return row is None or row.finish is not None or row.error is not None

    def generation(self, index: int) -> Generation:
        """Conversation `index`'s result (final once `finished(index)`)."""
        fixed = self._results[index]
        if fixed is not None:
            return fixed
        row = self._by_index[index]
        if row.error is not None:
            return _error(row.error, prompt_tokens=len(row.prompt))
        if row.finish == "cancelled":
            return _error("cancelled", prompt_tokens=len(row.prompt))
        return Generation(
            text=row.text or "",
            prompt_tokens=len(row.prompt),
            completion_tokens=len(row.tokens),
            finish_reason=row.finish or "length",
        )

    def generations(self) -> list[Generation]:
        """One Generation per conversation, in order (call once `step()` returned False)."""
        return [self.generation(index) for index in range(len(self._results))]


def _record_logprobs(raw: torch.Tensor, chosen: torch.Tensor, rows: Sequence[_Row]) -> None:
    """Append each live row's sampled token's log-probability (and its top k) under the
    model's raw logits."""
    import torch

    logprobs = torch.log_softmax(raw.float(), dim=-1)
    for i, row in enumerate(rows):
        if row.top_logprobs is None or row.finish is not None:
            continue
        token = int(chosen[i])
        top: tuple[tuple[int, float], ...] = ()
        if row.top_logprobs > 0:
            values, ids = logprobs[i].topk(min(row.top_logprobs, logprobs.shape[-1]))
            top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
        row.logprobs.append(TokenLogprob(token, float(logprobs[i, token]), top))


def _chunks(rows: list[_Row], batch_size: int) -> list[list[_Row]]:
    """Rows in batches of at most `batch_size`, by length, a batch closed early where padding
    to its longest row would cost more than a quarter of its tokens (and 256 a row)."""
    rows = sorted(rows, key=lambda r: len(r.prompt))
    chunks: list[list[_Row]] = []
    chunk: list[_Row] = []
    for row in rows:
        grown = [*chunk, row]
        past = max(r.reused for r in grown)
        new = max(len(r.prompt) - r.reused for r in grown)
        padded = len(grown) * (past + new)
        tokens = sum(len(r.prompt) for r in grown)
        if chunk and (len(chunk) == batch_size or padded > 1.25 * tokens + 256 * len(grown)):
            chunks.append(chunk)
            grown = [row]
        chunk = grown
    if chunk:
        chunks.append(chunk)
    return chunks


def _constrain(logits: torch.Tensor, rows: Sequence[_Row]) -> torch.Tensor:
    """Logits with every token a row's schema does not allow next set to -inf."""
    import torch

    masked = logits.clone()
    for i, row in enumerate(rows):
        if row.decoder is None or row.finish is not None:
            continue
        keep = torch.tensor(row.decoder.allowed(row.tokens), device=logits.device)
        banned = torch.ones_like(masked[i], dtype=torch.bool)
        banned[keep] = False
        masked[i] = masked[i].masked_fill(banned, float("-inf"))
    return masked


def _error(message: str, prompt_tokens: int = 0) -> Generation:
    return Generation(text="", prompt_tokens=prompt_tokens, finish_reason="error", error=message)


def _torch_dtype(name: str, device: torch.device) -> torch.dtype:
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"unknown dtype {name!r} (use auto, float32, bfloat16 or float16)")
    return dtype


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)
