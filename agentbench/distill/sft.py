"""Supervised distillation on sampled trajectories: TRL `SFTTrainer`, LoRA (PEFT) or full.

The trainer gets the rows of `agentbench.distill.data.encode_examples` as a pre-tokenized
`datasets.Dataset` (`input_ids`, `labels`) with `dataset_kwargs={"skip_prepare_dataset":
True}` and our own padding collator, so TRL neither re-tokenizes, truncates, packs nor rebuilds
labels: the loss mask is exactly ours (TRL 1.x documents that a `labels` column is used as is).
SFTConfig's CPU-unfriendly defaults (bf16 autocast, gradient checkpointing) are switched off.

Optimizer: AdamW (`adamw_torch`), after Blank et al. (transfer needs LoRA with Adam, not SGD).
Determinism: `transformers.set_seed(seed)` before the model is loaded and the adapter is
initialised, and `seed`/`data_seed` for the sampler, so one seed gives one adapter (same torch
build, single-threaded). Output: the adapter (LoRA) or the whole model, plus the tokenizer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentbench.distill.config import DistillConfig
from agentbench.distill.data import IGNORE_INDEX
from agentbench.errors import ConfigError

if TYPE_CHECKING:
    import torch


class DistillError(ConfigError, RuntimeError):
    """Raised when a distillation run cannot start or produced nothing (a model that does not
    load, an output folder taken, no steps)."""


@dataclass
class TrainResult:
    """What a training run did (written into the manifest)."""

    kind: str
    """`adapter` (a PEFT LoRA adapter directory) or `model` (a full transformers model)."""
    steps: int
    epochs: float
    train_loss: float
    loss_history: list[tuple[int, float]]
    tokens_seen: int
    target_tokens_seen: int
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    flops: float = 0.0
    """Model FLOPs of the batches trained on (`agentbench.distill.flops` conventions; the
    teacher's forward passes included in logit-kl)."""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.wall_s if self.wall_s > 0 else 0.0


class PadCollator:
    """Right-pads rows: `input_ids` with the pad id, `labels` with IGNORE_INDEX, plus the
    attention mask; `teacher_input_ids` (logit-kl with a teacher prompt) likewise."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from agentbench.distill.speed import CACHED_IDS, CACHED_PROBS, stack_cached

        out = self._pad(rows, "input_ids", "labels", "attention_mask")
        if "teacher_input_ids" in rows[0]:
            teacher = self._pad(rows, "teacher_input_ids", None, "teacher_attention_mask")
            out.update(teacher)
            out["teacher_offset"] = torch.tensor([int(r["teacher_offset"]) for r in rows])
        if CACHED_IDS in rows[0]:
            out.update(stack_cached({k: [r[k] for r in rows] for k in (CACHED_IDS, CACHED_PROBS)}))
        return out

    def _pad(
        self, rows: list[dict[str, Any]], ids_key: str, labels_key: str | None, mask_key: str
    ) -> dict[str, torch.Tensor]:
        import torch

        width = max(len(r[ids_key]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r[ids_key])
            ids[i, :n] = torch.tensor(r[ids_key])
            mask[i, :n] = 1
            if labels_key is not None:
                labels[i, :n] = torch.tensor(r[labels_key])
        out = {ids_key: ids, mask_key: mask}
        if labels_key is not None:
            out[labels_key] = labels
        return out


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise DistillError(f"cannot load the tokenizer of {path}: {exc}") from exc


def pad_id(tokenizer: Any) -> int:
    value = tokenizer.pad_token_id
    if value is None:
        value = tokenizer.eos_token_id
    if value is None:
        raise DistillError("the student's tokenizer has neither a pad nor an eos token")
    return int(value)


def load_causal_lm(path: Path, dtype: str, adapter: Path | None = None) -> Any:
    """A causal LM from a directory (PEFT `adapter` merged into it). Raises `DistillError`."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as exc:
        raise DistillError(f"cannot load the model in {path}: {exc}") from exc
    if adapter is not None:
        try:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        except Exception as exc:
            raise DistillError(f"cannot apply the adapter in {adapter}: {exc}") from exc
    return model


def prepare_student(config: DistillConfig, path: Path) -> Any:
    """The student, seeded: a LoRA-wrapped model when the mode trains an adapter."""
    from transformers import set_seed

    set_seed(config.seed)
    model = load_causal_lm(path, config.dtype)
    if not config.uses_lora:
        return model
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in config.lora.target_modules if m not in present]
    if missing:
        raise DistillError(
            f"LoRA target modules {missing} are not in {path} (its module names include "
            f"{sorted(n for n in present if 'proj' in n)[:12]}): set lora.target_modules"
        )
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def make_collator(config: DistillConfig, tokenizer: Any) -> Any:
    """`PackCollator` when `config.packing`, else `PadCollator`."""
    from agentbench.distill.speed import PackCollator

    return (PackCollator if config.packing else PadCollator)(pad_id(tokenizer))


def training_kwargs(config: DistillConfig, out: Path, progress: bool) -> dict[str, Any]:
    """Arguments shared by the SFT and logit-kl trainers (`TrainingArguments` fields)."""
    from agentbench.distill.speed import resolve_autocast

    return {
        "output_dir": str(out),
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "train_sampling_strategy": "group_by_length" if config.group_by_length else "random",
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "optim": "adamw_torch_fused" if config.fused_adamw else "adamw_torch",
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": config.logging_steps,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": not progress,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
        "include_num_input_tokens_seen": "non_padding",
        # Trainer's bf16 is autocast on CPU (float32 master weights).
        "bf16": resolve_autocast(config.autocast),
        "fp16": False,
        "torch_compile": config.compile,
        "gradient_checkpointing": config.gradient_checkpointing,
        # Non-reentrant: works with frozen inputs (LoRA) and keeps dropout's random state.
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
    }


def expected_steps(config: DistillConfig, rows: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    per_epoch = math.ceil(rows / config.batch_size)
    return math.ceil(per_epoch / config.grad_accum * config.epochs) if per_epoch else 0


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Bool (B, T): position p is True when its logits predict a target (labels[p+1])."""
    import torch

    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def logits_at(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    keep: torch.Tensor,
    position_ids: torch.Tensor | None = None,
) -> Any:
    """Logits (N, V) at the True positions of `keep`, projected only there. With
    `position_ids` (packed rows) the 2D mask is not passed: transformers then masks attention
    per document from the restarting positions."""
    if position_ids is not None:
        out = model(input_ids=ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False)
    else:
        out = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, use_cache=False)
    logits = out.logits
    if logits.dim() == 3:  # a model that ignores a boolean `logits_to_keep`
        logits = logits[keep]
    return logits


def target_logits(model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, Any]:
    """`target_positions` of a collated batch, and `model`'s logits (N, V) there."""
    keep = target_positions(inputs["labels"])
    return keep, logits_at(
        model, inputs["input_ids"], inputs["attention_mask"], keep, inputs.get("position_ids")
    )


def _target_only_sft() -> type:
    """TRL's `SFTTrainer` with the LM head projected at the target positions only.

    Why: TRL's fused LM head scores only labelled positions under Triton (GPU) and every
    position elsewhere, so on CPU a SmolLM2 row pays the 49k-vocabulary projection, forward
    and backward, on the prompt and observation tokens too (about 85 % of them here). The loss
    is the same token-mean cross-entropy TRL computes: summed over targets, divided by
    `num_items_in_batch` when the trainer passes it (gradient accumulation) or by the batch's
    target count. TRL's `mean_token_accuracy` is logged; its `entropy` is not (it would need
    the full distribution's entropy at every target, not worth its cost here).
    """
    import torch
    from trl import SFTTrainer

    class TargetOnlySFTTrainer(SFTTrainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            keep, logits = target_logits(model, inputs)
            targets = inputs["labels"][:, 1:][keep[:, :-1]].to(logits.device)
            total = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else targets.numel()
            loss = total / torch.as_tensor(count, device=total.device).clamp(min=1)
            if targets.numel():
                correct = (logits.detach().argmax(-1) == targets).float().mean()
                mode = "train" if model.training else "eval"
                self._metrics[mode]["mean_token_accuracy"].append(float(correct))
            return (loss, {"logits": logits}) if return_outputs else loss

    return TargetOnlySFTTrainer


def batch_documents(inputs: dict[str, Any], mask_key: str = "attention_mask") -> list[int]:
    """The document lengths of a collated batch: real tokens per row, or per packed
    document where positions restart (`position_ids`)."""
    mask = inputs[mask_key]
    if "position_ids" not in inputs or mask_key != "attention_mask":
        return [int(n) for n in mask.sum(-1).tolist()]
    lengths = []
    for positions, real in zip(inputs["position_ids"].tolist(), mask.tolist(), strict=True):
        starts = [i for i, (p, m) in enumerate(zip(positions, real, strict=True)) if m and p == 0]
        ends = [*starts[1:], sum(real)]
        lengths += [b - a for a, b in zip(starts, ends, strict=True)]
    return lengths


def flop_counter(config: DistillConfig, student: Any, teacher: Any | None) -> Any:
    """inputs -> model FLOPs of one training batch: the student's forward and backward
    (LoRA or full) and, when `teacher` runs live, its forward (`agentbench.distill.flops`)."""
    from agentbench.distill.flops import LlamaShape

    s_shape = LlamaShape.of(student.config)
    t_shape = LlamaShape.of(teacher.config) if teacher is not None else None
    rank = config.lora.r if config.uses_lora else None
    modules = len(config.lora.target_modules)

    def count(inputs: dict[str, Any]) -> float:
        projected = int((inputs["labels"] != IGNORE_INDEX).sum())
        docs = [(0, n) for n in batch_documents(inputs)]
        flops = s_shape.training_flops(docs, projected, lora_r=rank, lora_modules=modules)
        if t_shape is not None:
            if "teacher_attention_mask" in inputs:
                docs = [(0, n) for n in batch_documents(inputs, "teacher_attention_mask")]
            flops += t_shape.forward_flops(docs, projected)
        return flops

    return count


def counting(trainer_class: type) -> type:
    """`trainer_class` counting the target tokens of the batches it trains on (the collator
    cannot: the data loader collates one batch ahead of a `max_steps` stop), and their model
    FLOPs when given a `flop_counter` (attribute `count_flops`)."""

    class Counting(trainer_class):
        target_tokens_seen = 0
        flops_seen = 0.0
        count_flops: Any = None

        def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kw: Any) -> Any:
            self.target_tokens_seen += int((inputs["labels"] != IGNORE_INDEX).sum())
            if self.count_flops is not None:
                self.flops_seen += float(self.count_flops(inputs))
            return super().training_step(model, inputs, *args, **kw)

    Counting.__name__ = Counting.__qualname__ = f"Counting{trainer_class.__name__}"
    return Counting


def run_trainer(trainer: Any, kind: str) -> TrainResult:
    """Train, refusing a zero-step run, and summarise the trainer's log."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # One quiet bar with the running loss instead of a printed dict per logging step.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not trainer.args.disable_tqdm:
        trainer.add_callback(_loss_bar())
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    state = trainer.state
    if state.global_step < 1:
        raise DistillError("training ran 0 optimizer steps: check epochs, batch_size, max_steps")
    history = [(int(e["step"]), float(e["loss"])) for e in state.log_history if "loss" in e]
    metrics = {}
    for key in ("banned_mass", "kl"):
        values = [float(e[key]) for e in state.log_history if key in e]
        if values:
            metrics[f"{key}_first"] = values[0]
            metrics[f"{key}_last"] = values[-1]
    return TrainResult(
        kind=kind,
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        train_loss=float(result.training_loss),
        loss_history=history,
        tokens_seen=int(state.num_input_tokens_seen),
        target_tokens_seen=int(getattr(trainer, "target_tokens_seen", 0)),
        wall_s=wall,
        metrics=metrics,
        flops=float(getattr(trainer, "flops_seen", 0.0)),
    )


def _loss_bar() -> Any:
    """A progress bar over optimizer steps with the last logged loss (a `TrainerCallback`):
    live on a terminal, a plain line every 30 s in a log (`LoggedProgress`)."""
    from transformers import TrainerCallback

    from agentbench.progress import LoggedProgress, step_bar

    class LossBar(TrainerCallback):
        bar: LoggedProgress | None = None
        task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = step_bar("distill", "steps  {task.fields[loss]}")
            self.bar.start()
            self.task = self.bar.add_task("distill", total=state.max_steps, loss="")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if self.bar is not None and logs and "loss" in logs:
                self.bar.update(self.task, loss=f"loss {float(logs['loss']):.4g}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return LossBar()


def save_student(model: Any, tokenizer: Any, out: Path, *, lora: bool) -> None:
    """The adapter (LoRA) or the full model, and the tokenizer, into `out`."""
    if lora:
        model.save_pretrained(out)
    else:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = pad_id(tokenizer)
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def train_sft(
    config: DistillConfig,
    rows: list[dict[str, Any]],
    tokenizer: Any,
    student_path: Path,
    out: Path,
    *,
    progress: bool = False,
) -> TrainResult:
    """SFT on pre-tokenized rows with TRL's `SFTTrainer`; saves into `out`."""
    import torch
    from datasets import Dataset  # type: ignore[import-untyped]
    from trl import SFTConfig

    if config.mode not in ("sft-lora", "sft-full"):
        raise DistillError(f"train_sft cannot run mode {config.mode!r}")
    if expected_steps(config, len(rows)) < 1:
        raise DistillError("the run would take 0 optimizer steps")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        model = prepare_student(config, student_path)
        dataset = Dataset.from_list(
            [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
        )
        collator = make_collator(config, tokenizer)
        args = SFTConfig(
            **training_kwargs(config, out / "trainer", progress),
            max_length=None,
            packing=False,
            dataset_kwargs={"skip_prepare_dataset": True},
        )
        trainer = counting(_target_only_sft())(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            data_collator=collator,
        )
        trainer.count_flops = flop_counter(config, model, None)
        result = run_trainer(trainer, "adapter" if config.uses_lora else "model")
        save_student(trainer.model, tokenizer, out, lora=config.uses_lora)
    finally:
        torch.set_num_threads(threads)
    return result
