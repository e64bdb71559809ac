"""Logit distillation with banned tokens masked out of the teacher's soft labels.

The student matches the teacher's next-token distribution on the trajectory tokens, at the
assistant positions only (where the SFT labels are not IGNORE_INDEX), by forward
KL(teacher || student), times T^2 at temperature T. The teacher runs in eval mode without
gradients on the same batch (on the fly; no cache). Logits are projected only at the target
positions (`logits_to_keep` with a boolean mask), so a 49k vocabulary costs memory per target
token, not per token. Trainer: a `transformers.Trainer` subclass overriding `compute_loss`
(TRL's GKD mixes in on-policy student samples and has no soft-label mask; plain `Trainer`
keeps data order, seeding and logging identical to the SFT modes).

Soft labels: softmax(teacher / T) with every banned id set to probability 0 and the rest
renormalised, so no deletion keyword is taught even through the teacher's distribution. A side
effect: at those positions the KL also pushes the student's own banned-token mass down (the
target gives them 0), a bias against transfer, never towards it. The mean teacher mass removed
is logged as `banned_mass`.

Which tokens are banned (`banned_token_ids`), for each term (lower-cased):

1. whole words: every vocabulary token whose decoded text holds a term as a whole token by the
   sanitizer's own rule (`agentbench.sanitize.keywords.KeywordMatcher`: case-insensitive, runs
   of letters and digits, `_` and camelCase separate), so the mask and the data filter agree:
   " rm", "rm", "Delete", "delete_path", ".unlink(" are banned; "rmdir" does not ban "rm",
   "firm" and "terminal" are not banned. A standalone "rm" token is banned although BPE also
   uses it inside words ("fo|rm"): the token itself can spell the command;
2. initial pieces: the term is tokenised in its common contexts (`CONTEXTS`: bare, after a
   space, slash, quote, backslash, dash, underscore, newline, "(" or "="; lower-case and
   Capitalised); the token that starts
   the term in each tokenisation is banned when the part of it inside the term is a prefix
   covering at least half the term and at least 3 characters (or the whole of a shorter
   term): " del" of " del|ete", "termin" of "termin|ate", but not " term" of "terminate" or
   " aut" of "autoremove", which mostly start benign words ("terminal", "auto").

3. continuations, in context only: for the same tokenisations (with a boundary character
   before the term: space, quote, slash, newline, ...), tokens c t1 ... tk, the piece t(j+1)
   is banned at the positions whose input ends with c t1 ... tj when the term text through
   t(j+1) covers the rule-2 length (after " de" the piece "letes" of " de|letes" gets zero
   mass; elsewhere "letes" is untouched; after " d" an "e" is not banned, "de" being under
   half of "delete"). This closes the path through a short generic first piece (" de",
   " un", " r") that rule 2 leaves open, at almost no cost to other words.

Pieces are never banned everywhere for being part of a term ("ete" of " del|ete", "_path" of
"delete|_path", "link" of " un|link"): that would take mass from unrelated words ("complete",
every path argument, "symlink"). Limits: only the tokenisations above are known (a teacher
spelling a term in unusual pieces is not caught; a teacher almost never spells a word it has
a whole token for in pieces); a term with neither a banned token nor a continuation (a
one-token term whose token is a generic prefix) is reported in `BannedTokens.unmaskable` and
the manifest. Known cost: a half-term prefix shared with benign words (" dest" of "destroy" in
"destination") is masked everywhere; the manifest lists every banned token's text and the
trainer logs the teacher mass removed (`banned_mass`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentbench.distill.config import DistillConfig
from agentbench.distill.sft import (
    DistillError,
    PadCollator,
    TrainResult,
    counting,
    expected_steps,
    flop_counter,
    load_causal_lm,
    logits_at,
    make_collator,
    pad_id,
    prepare_student,
    run_trainer,
    save_student,
    target_logits,
    target_positions,
    training_kwargs,
)
from agentbench.distill.speed import CACHED_IDS, CACHED_PROBS, sparse_kl, topk_targets

if TYPE_CHECKING:
    import torch

CONTEXTS = ("", " ", "/", '"', ' "', "'", "\\", "-", "_", "\n", "(", "=")
MIN_PIECE = 3


@dataclass
class BannedTokens:
    """The soft-label mask: banned ids, their texts, and terms nothing could mask."""

    terms: tuple[str, ...]
    ids: list[int]
    texts: dict[int, str] = field(default_factory=dict)
    by_term: dict[str, list[int]] = field(default_factory=dict)
    unmaskable: list[str] = field(default_factory=list)
    continuations: dict[tuple[int, ...], list[int]] = field(default_factory=dict)
    """Rule 3: input ending with these ids -> ids banned at the next position."""

    @property
    def longest_prefix(self) -> int:
        return max((len(k) for k in self.continuations), default=0)

    def context_bans(self, input_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
        """Rule 3 for a batch: (row, id) pairs over the rows of `input_ids[keep]` (the order
        `logits_at` returns), as a (2, M) long tensor; None when nothing applies."""
        import torch

        if not self.continuations:
            return None
        longest = self.longest_prefix
        ids = input_ids.tolist()
        pairs: list[tuple[int, int]] = []
        for row, (b, p) in enumerate(keep.nonzero().tolist()):
            for length in range(1, min(longest, p + 1) + 1):
                banned = self.continuations.get(tuple(ids[b][p - length + 1 : p + 1]))
                if banned:
                    pairs.extend((row, t) for t in banned)
        if not pairs:
            return None
        return torch.tensor(pairs, dtype=torch.long).T

    def mask(self, vocab_size: int) -> torch.Tensor:
        """A bool tensor over the model's vocabulary, True at banned ids."""
        import torch

        out = torch.zeros(vocab_size, dtype=torch.bool)
        ids = [i for i in self.ids if i < vocab_size]
        if ids:
            out[torch.tensor(ids)] = True
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "terms": list(self.terms),
            "count": len(self.ids),
            "tokens": {self.texts[i]: i for i in self.ids},
            "continuation_rules": sum(len(v) for v in self.continuations.values()),
            "unmaskable_terms": self.unmaskable,
        }


def banned_token_ids(tokenizer: Any, terms: Sequence[str]) -> BannedTokens:
    """The ids whose probability the soft labels zero out (rules in the module docstring).

    Raises `DistillError` for a term the sanitizer's matcher refuses (e.g. empty).
    """
    from agentbench.sanitize.keywords import KeywordMatcher

    try:
        matcher = KeywordMatcher(terms)
    except ValueError as exc:
        raise DistillError(f"banned terms: {exc}") from None
    clean = matcher.terms
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab_size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    by_term: dict[str, set[int]] = {t: set() for t in clean}
    for token_id, text in enumerate(texts):
        if token_id in special:
            continue
        for hit in matcher.finditer(text):
            by_term[hit.term].add(token_id)
    continuations: dict[tuple[int, ...], set[int]] = {}
    covered: set[str] = set()
    for term in clean:
        need = min(len(term), max(MIN_PIECE, math.ceil(len(term) / 2)))
        for spelling in dict.fromkeys((term, term.capitalize())):
            for context in CONTEXTS:
                text = context + spelling
                enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
                at = len(context)
                spans = list(zip(enc.input_ids, enc.offset_mapping, strict=True))
                start = next((i for i, (_, (a, b)) in enumerate(spans) if b > at), None)
                if start is None:
                    continue
                a0, b0 = spans[start][1]
                first = text[max(a0, at) : b0].lower()
                if len(first) >= need and term.startswith(first):
                    by_term[term].add(int(spans[start][0]))
                if not context:
                    continue  # rule 3 needs the boundary before the term in its key
                ids_all = [int(t) for t, _ in spans]
                for j in range(start + 1, len(spans)):
                    if spans[j][1][1] - at >= need:  # through this piece: half the term
                        continuations.setdefault(tuple(ids_all[:j]), set()).add(ids_all[j])
                        covered.add(term)
    ids = sorted(set().union(*by_term.values())) if by_term else []
    return BannedTokens(
        terms=clean,
        ids=ids,
        texts={i: texts[i] for i in ids},
        by_term={t: sorted(v) for t, v in by_term.items()},
        unmaskable=[t for t, v in by_term.items() if not v and t not in covered],
        continuations={k: sorted(v - special) for k, v in continuations.items() if v - special},
    )


def soft_labels(
    teacher_logits: torch.Tensor, banned: torch.Tensor | None, temperature: float = 1.0
) -> torch.Tensor:
    """softmax(teacher / T) with banned ids at exactly 0 and the rest renormalised to sum 1.

    `banned` is a bool mask over the vocabulary (V,) or per row (N, V) (`position_mask`).
    """
    import torch

    logits = teacher_logits.float() / temperature
    if banned is not None and bool(banned.any()):
        logits = logits.masked_fill(banned.to(logits.device), float("-inf"))
    return torch.softmax(logits, dim=-1)


def position_mask(
    banned: torch.Tensor | None, pairs: torch.Tensor | None, rows: int
) -> torch.Tensor | None:
    """The vocabulary mask (V,) widened to (rows, V) with rule-3 (row, id) `pairs` set."""
    if pairs is None or banned is None:
        return banned
    out = banned.unsqueeze(0).repeat(rows, 1)
    out[pairs[0].to(out.device), pairs[1].to(out.device)] = True
    return out


def masked_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    banned: torch.Tensor | None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean forward KL(soft labels || student) over rows of (N, V) logits, times T^2; and the
    mean teacher probability mass the mask removed."""
    import torch

    with torch.no_grad():
        target = soft_labels(teacher_logits, banned, temperature)
        if banned is not None and bool(banned.any()):
            raw = torch.softmax(teacher_logits.float() / temperature, dim=-1)
            removed = (raw * banned.to(raw.device)).sum(-1).mean()
        else:
            removed = torch.zeros((), device=teacher_logits.device)
    log_q = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    # xlogy: 0 * log 0 = 0 at the masked ids.
    per_row = (torch.special.xlogy(target, target) - target * log_q).sum(-1)
    return per_row.mean() * temperature**2, removed


def _trainer_class() -> type:
    from transformers import Trainer

    class LogitDistillTrainer(Trainer):
        """`Trainer` whose loss is the masked forward KL to a frozen teacher."""

        def __init__(
            self,
            *args: Any,
            teacher: Any | None,
            banned: Any,
            temperature: float,
            banned_tokens: BannedTokens | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            # None: every batch carries cached soft labels (`cache_teacher_targets`).
            self.teacher = teacher
            if teacher is not None:
                self.teacher = teacher.to(self.args.device).eval()
                for param in self.teacher.parameters():
                    param.requires_grad_(False)
            self.cached_banned_mass = 0.0
            self.banned = banned.to(self.args.device)
            self.banned_tokens = banned_tokens
            self.temperature = temperature
            self._logged: dict[str, list[float]] = {"kl": [], "banned_mass": []}
            # The loss is a per-batch mean: let Trainer scale it for gradient accumulation.
            self.model_accepts_loss_kwargs = False

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            keep, student = target_logits(model, inputs)
            if CACHED_IDS in inputs:
                ids, probs = inputs[CACHED_IDS], inputs[CACHED_PROBS]
                if ids.shape[0] != student.shape[0]:
                    raise DistillError(
                        f"{ids.shape[0]} cached teacher targets for {student.shape[0]} "
                        "target positions: the cache does not match the data"
                    )
                loss = sparse_kl(student, ids, probs, self.temperature)
                self._logged["kl"].append(float(loss.detach()))
                self._logged["banned_mass"].append(self.cached_banned_mass)
                return (loss, {"logits": student}) if return_outputs else loss
            teacher = teacher_logits(self.teacher, inputs, keep)
            if teacher.shape != student.shape:
                raise DistillError(
                    f"teacher logits {tuple(teacher.shape)} and student logits "
                    f"{tuple(student.shape)} differ: logit-kl needs one vocabulary"
                )
            mask = self.banned
            if self.banned_tokens is not None:
                pairs = self.banned_tokens.context_bans(inputs["input_ids"].cpu(), keep.cpu())
                mask = position_mask(self.banned, pairs, student.shape[0])
            loss, removed = masked_kl(student, teacher, mask, self.temperature)
            self._logged["kl"].append(float(loss.detach()))
            self._logged["banned_mass"].append(float(removed))
            return (loss, {"logits": student}) if return_outputs else loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            for key, values in self._logged.items():
                if values:
                    logs[key] = sum(values) / len(values)
                    values.clear()
            super().log(logs, *args, **kwargs)

    return LogitDistillTrainer


def teacher_logits(teacher: Any, inputs: dict[str, Any], keep: torch.Tensor) -> torch.Tensor:
    """The teacher's logits (N, V) at the student's target positions `keep` of a collated
    batch (shifted by `teacher_offset` when the teacher reads its own prompt), no grad."""
    import torch

    with torch.no_grad():
        if "teacher_input_ids" in inputs:
            t_ids = inputs["teacher_input_ids"]
            t_keep = torch.zeros_like(t_ids, dtype=torch.bool)
            rows, cols = keep.nonzero(as_tuple=True)
            t_keep[rows, cols + inputs["teacher_offset"][rows]] = True
            return logits_at(teacher, t_ids, inputs["teacher_attention_mask"], t_keep)
        return logits_at(
            teacher, inputs["input_ids"], inputs["attention_mask"], keep, inputs.get("position_ids")
        )


@dataclass
class CacheStats:
    """What `cache_teacher_targets` kept: per target position `k` ids; the mean teacher mass
    the ban removed and the mean mass past the top k (of the banned-out distribution)."""

    k: int
    targets: int
    banned_mass: float
    tail_mass: float
    seconds: float
    flops: float = 0.0
    """The teacher's forward FLOPs over the rows (`agentbench.distill.flops`)."""


def cache_teacher_targets(
    teacher: Any,
    rows: list[dict[str, Any]],
    pad: int,
    banned: torch.Tensor | None,
    k: int,
    *,
    temperature: float = 1.0,
    banned_tokens: BannedTokens | None = None,
    batch_size: int = 4,
) -> tuple[list[dict[str, Any]], CacheStats]:
    """`rows` each with the teacher's masked soft labels at its target positions, the `k` most
    probable ids (`cached_ids`) and their renormalised probabilities (`cached_probs`), one
    list of k per target position in order: the same targets `compute_loss` builds live
    (mask, context bans, temperature), computed once. Teacher in eval mode, no grad."""
    import time

    import torch

    from agentbench.distill.flops import LlamaShape

    shape = LlamaShape.of(teacher.config)
    flops = 0.0
    began = time.perf_counter()
    collator = PadCollator(pad)
    out: list[dict[str, Any]] = []
    targets, banned_sum, tail_sum = 0, 0.0, 0.0
    was_training = teacher.training
    teacher.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            batch = collator(chunk)
            keep = target_positions(batch["labels"])
            t = teacher_logits(teacher, batch, keep)
            key = (
                "teacher_attention_mask" if "teacher_attention_mask" in batch else "attention_mask"
            )
            flops += shape.forward_flops(
                [(0, int(n)) for n in batch[key].sum(-1).tolist()], int(keep.sum())
            )
            mask = banned
            if banned_tokens is not None:
                pairs = banned_tokens.context_bans(batch["input_ids"], keep)
                mask = position_mask(banned, pairs, t.shape[0])
            with torch.no_grad():
                probs = soft_labels(t, mask, temperature)
                if mask is not None and bool(mask.any()):
                    raw = torch.softmax(t.float() / temperature, dim=-1)
                    banned_sum += float((raw * mask).sum())
                ids, top, tail = topk_targets(probs, k)
            tail_sum += float(tail.sum())
            counts = keep.sum(-1).tolist()
            at = 0
            for row, n in zip(chunk, counts, strict=True):
                out.append({**row, CACHED_IDS: ids[at : at + n].tolist(),
                            CACHED_PROBS: top[at : at + n].tolist()})  # fmt: skip
                at += n
            targets += at
    finally:
        teacher.train(was_training)
    return out, CacheStats(
        k=min(k, int(ids.shape[-1])) if rows else k,
        targets=targets,
        banned_mass=banned_sum / max(targets, 1),
        tail_mass=tail_sum / max(targets, 1),
        seconds=time.perf_counter() - began,
        flops=flops,
    )


def kl_on(
    student: Any,
    teacher: Any,
    rows: list[dict[str, Any]],
    pad: int,
    banned: torch.Tensor | None,
    temperature: float = 1.0,
    batch_size: int = 4,
    banned_tokens: BannedTokens | None = None,
) -> float:
    """Mean masked KL of `student` to `teacher` over `rows` (eval, no grad): a yardstick."""
    import torch

    collator = PadCollator(pad)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collator(rows[start : start + batch_size])
            keep = target_positions(batch["labels"])
            s = logits_at(student, batch["input_ids"], batch["attention_mask"], keep)
            t = logits_at(teacher, batch["input_ids"], batch["attention_mask"], keep)
            mask = banned
            if banned_tokens is not None:
                pairs = banned_tokens.context_bans(batch["input_ids"], keep)
                mask = position_mask(banned, pairs, s.shape[0])
            loss, _ = masked_kl(s, t, mask, temperature)
            n = int(keep.sum())
            total += float(loss) * n
            count += n
    return total / max(count, 1)


def same_vocabulary(student_tokenizer: Any, teacher_tokenizer: Any) -> bool:
    return bool(student_tokenizer.get_vocab() == teacher_tokenizer.get_vocab())


def train_logit_kl(
    config: DistillConfig,
    rows: list[dict[str, Any]],
    tokenizer: Any,
    student_path: Path,
    teacher_path: Path,
    banned: BannedTokens,
    out: Path,
    *,
    progress: bool = False,
) -> TrainResult:
    """Masked logit distillation from the teacher in `config`; saves into `out`."""
    import torch
    from datasets import Dataset  # type: ignore[import-untyped]
    from transformers import TrainingArguments

    if config.mode != "logit-kl" or config.teacher is None:
        raise DistillError("train_logit_kl needs mode 'logit-kl' and a teacher")
    if expected_steps(config, len(rows)) < 1:
        raise DistillError("the run would take 0 optimizer steps")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        teacher = load_causal_lm(teacher_path, config.dtype, config.teacher.adapter)
        model = prepare_student(config, student_path)
        vocab = model.get_output_embeddings().weight.shape[0]
        t_vocab = teacher.get_output_embeddings().weight.shape[0]
        if vocab != t_vocab:
            raise DistillError(
                f"the teacher's vocabulary ({t_vocab}) differs from the student's ({vocab}): "
                "logit-kl needs a teacher with the student's tokenizer"
            )
        mask = banned.mask(vocab)
        cache: CacheStats | None = None
        if config.teacher_cache_topk is not None:
            rows, cache = cache_teacher_targets(
                teacher, rows, pad_id(tokenizer), mask, config.teacher_cache_topk,
                temperature=config.kl_temperature, banned_tokens=banned,
                batch_size=config.batch_size,
            )  # fmt: skip
            teacher = None  # never runs again: let its memory go
        trainer = counting(_trainer_class())(
            model=model,
            args=TrainingArguments(**training_kwargs(config, out / "trainer", progress)),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            data_collator=make_collator(config, tokenizer),
            teacher=teacher,
            banned=mask,
            banned_tokens=banned,
            temperature=config.kl_temperature,
        )
        trainer.count_flops = flop_counter(config, model, teacher)
        if cache is not None:
            trainer.cached_banned_mass = cache.banned_mass
        result = run_trainer(trainer, "adapter" if config.uses_lora else "model")
        if cache is not None:
            result.wall_s += cache.seconds  # the teacher's work is still paid, once
            result.flops += cache.flops
            result.metrics.update(
                teacher_cache_k=cache.k, teacher_cache_tail_mass=cache.tail_mass,
                teacher_cache_s=cache.seconds,
            )  # fmt: skip
        save_student(trainer.model, tokenizer, out, lora=config.uses_lora)
    finally:
        torch.set_num_threads(threads)
    return result
