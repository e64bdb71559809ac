"""Opt-in CPU speed levers for training: bf16 autocast, packing, cached teacher soft labels.

Each is a `DistillConfig` field (off by default) or a `train_shared_prefix` argument; what each
bought on this project's machines is in docs/benchmarks.md (`agentbench bench distill`).

- `autocast` (`resolve_autocast`, `autocast`): the forward pass under `torch.autocast("cpu",
  bfloat16)`, float32 weights and optimizer. `auto` turns it on only where the CPU computes bf16
  natively (`agentbench.distill.flops.cpu_bf16_native`); elsewhere bf16 is emulated and matmuls
  run 10-70x slower than float32. Loss within bf16 tolerance of float32, not bit-identical.
- packing (`PackCollator`): a batch's examples are placed first-fit-decreasing into rows as
  wide as its longest example, each document with its own position ids (from 0) and no
  attention across documents (transformers builds a per-document causal mask from position
  ids that restart, when no 2D attention mask is passed). The batch and so the loss are the
  same as padded; fewer rows run. A document's first label is dropped so that it is not
  predicted from the previous document's last token (padded rows never predict it either).
- teacher cache (`cache_teacher_targets`): logit-kl's soft labels computed once, before
  training, with the banned mass removed, keeping the `k` most probable ids per target
  position renormalised; the teacher then never runs during training. With `k` at least the
  vocabulary size the loss is the live teacher's (within float rounding); smaller `k` drops
  the tail of the distribution (its mass is reported as `tail_mass`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agentbench.distill.data import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

Autocast = Literal["off", "bf16", "auto"]
CACHED_IDS = "cached_ids"
CACHED_PROBS = "cached_probs"


def resolve_autocast(setting: Autocast) -> bool:
    """Whether bf16 autocast is on: `bf16` always, `auto` where the CPU has native bf16."""
    if setting == "bf16":
        return True
    if setting == "auto":
        from agentbench.distill.flops import cpu_bf16_native

        return cpu_bf16_native()
    return False


@contextlib.contextmanager
def autocast(enabled: bool) -> Iterator[None]:
    """bf16 autocast on CPU when `enabled` (matmuls in bf16, reductions in float32)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        yield


def pack_layout(lengths: Sequence[int]) -> list[list[int]]:
    """First-fit-decreasing: indices of `lengths` grouped into rows no wider than the longest
    (ties kept in input order, so the layout is deterministic)."""
    width = max(lengths)
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, room in enumerate(free):
            if lengths[index] <= room:
                rows[r].append(index)
                free[r] -= lengths[index]
                break
        else:
            rows.append([index])
            free.append(width - lengths[index])
    return rows


class PackCollator:
    """Packs a batch's rows (see the module docstring): `input_ids`, `labels`, `position_ids`
    and `attention_mask` (1 on real tokens, for the token counter; not passed to the model).
    Cached teacher targets (`cached_ids`, `cached_probs`) follow the documents' new order.
    Rows with a teacher prompt (`teacher_input_ids`) are refused (ValueError)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if "teacher_input_ids" in rows[0]:
            raise ValueError("packing cannot carry a teacher prompt's rows (teacher_input_ids)")
        layout = pack_layout([len(r["input_ids"]) for r in rows])
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(layout), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(layout), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(layout), width), dtype=torch.long)
        mask = torch.zeros((len(layout), width), dtype=torch.long)
        cached: dict[str, list[Any]] = {CACHED_IDS: [], CACHED_PROBS: []}
        for b, members in enumerate(layout):
            at = 0
            for index in members:
                row = rows[index]
                n = len(row["input_ids"])
                ids[b, at : at + n] = torch.tensor(row["input_ids"])
                labels[b, at + 1 : at + n] = torch.tensor(row["labels"][1:])
                positions[b, at : at + n] = torch.arange(n)
                mask[b, at : at + n] = 1
                for key in cached:
                    if key in row:
                        cached[key].append(row[key])
                at += n
            # Padding is a document of its own (positions from 0): it attends to nothing real.
            positions[b, at:] = torch.arange(width - at)
        out: dict[str, Any] = {
            "input_ids": ids, "labels": labels, "position_ids": positions, "attention_mask": mask,
        }  # fmt: skip
        out.update(stack_cached(cached))
        return out


def stack_cached(cached: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
    """Concatenated cached teacher targets, (N, k) each, in the given rows' order."""
    import torch

    if not cached.get(CACHED_IDS):
        return {}
    return {
        CACHED_IDS: torch.cat([torch.as_tensor(x, dtype=torch.long) for x in cached[CACHED_IDS]]),
        CACHED_PROBS: torch.cat(
            [torch.as_tensor(x, dtype=torch.float32) for x in cached[CACHED_PROBS]]
        ),
    }


def topk_targets(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `k` most probable ids per row of soft labels (N, V), their probabilities
    renormalised to sum 1, and the mass left out per row."""
    import torch

    k = min(k, probs.shape[-1])
    top, ids = torch.topk(probs, k, dim=-1)
    kept = top.sum(-1, keepdim=True)
    return ids, top / kept.clamp_min(1e-30), (1.0 - kept.squeeze(-1)).clamp_min(0.0)


def sparse_kl(
    student_logits: torch.Tensor,
    ids: torch.Tensor,
    probs: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean forward KL(cached soft labels || student) over rows, times T^2, where the soft
    labels are (N, k) `probs` at `ids` and 0 elsewhere (`masked_kl` with a sparse target)."""
    import torch

    log_q = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    picked = log_q.gather(-1, ids.to(log_q.device))
    p = probs.to(log_q.device)
    per_row = (torch.special.xlogy(p, p) - p * picked).sum(-1)
    return per_row.mean() * temperature**2
