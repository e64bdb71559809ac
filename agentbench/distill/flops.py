"""What the CPU can do and what a model run asks of it: bf16 support, peak matmul FLOP/s at a
model's own shapes, model FLOPs of a training or generation run, and so MFU.

- `cpu_bf16_native()`: whether the CPU has bf16 arithmetic (AVX512-BF16 or AMX, read at run
  time from torch's oneDNN check and /proc/cpuinfo). Without it torch still runs bf16, by
  conversion to float32, slower than float32 itself.
- `measure_peak(shapes, dtype, threads)`: matmul FLOP/s for the given (M, K, N) shapes, each
  timed for `min_s` seconds, weighted by how much of the model's work each shape is; and
  `square_peak` for large square matmuls (the hardware's best case). Small shapes run far
  below the square peak (a 128-wide bf16 matmul fell to 1.2 GFLOP/s on this machine kind
  against 28 in float32), so MFU is given against both.
- `LlamaShape`: the sizes of a Llama-family model (from its config) and its FLOP counts.
  Conventions (PaLM appendix B, with attention at full length): a forward pass costs
  2 x (weights used) per token for the linear layers, 4 x layers x attention width x context
  per token for attention, and 2 x hidden x vocabulary per position whose logits are
  projected (agentbench projects only target positions). Backward costs twice the forward
  for what is trained and once for what is frozen (input gradients only): full fine-tuning
  is 3x forward, LoRA about 2x forward plus 3x the adapters' own.

Figures from a shared machine move with the load; read ratios measured in one run.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Dtype = Literal["float32", "bfloat16"]
Shape = tuple[int, int, int]
"""(M, K, N): an (M x K) by (K x N) matmul, 2*M*K*N FLOPs."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_native() -> bool:
    """True where the CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16): torch's oneDNN
    check, or the flags where torch cannot say."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is not None:
        try:
            if bool(check()):
                return True
        except RuntimeError:
            pass
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_description() -> dict[str, Any]:
    """What the figures depend on: torch's CPU capability, bf16 support, cores, load."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": cpu_bf16_native(),
        "amx": bool({"amx_tile", "amx_bf16"} & cpu_flags()),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_1min": round(load[0], 2),
    }


def _time_matmul(shape: Shape, dtype: Dtype, min_s: float) -> float:
    """Seconds per matmul of `shape` in `dtype` (after one warm-up call)."""
    import torch

    m, k, n = shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(getattr(torch, dtype))
    b = torch.randn(k, n, generator=gen).to(getattr(torch, dtype))
    torch.matmul(a, b)
    calls, began = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= min_s:
            return elapsed / calls


@dataclass(frozen=True)
class Peak:
    """Measured matmul throughput: at a workload's shapes (FLOP-weighted) and square."""

    dtype: str
    threads: int
    shape_flops: float
    """FLOP/s over the workload's matmuls: their FLOPs over their summed times."""
    square_flops: float
    """FLOP/s of the best of a few large square matmuls: the hardware's peak here."""
    per_shape: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "threads": self.threads,
            "shape_gflops": round(self.shape_flops / 1e9, 2),
            "square_gflops": round(self.square_flops / 1e9, 2),
            "per_shape_gflops": {k: round(v / 1e9, 2) for k, v in self.per_shape.items()},
        }


SQUARE_SIZES = (512, 1024)
"""Square matmul sizes for the hardware peak (2048 in emulated bf16 takes ~30 s a call)."""


def measure_peak(
    shapes: Iterable[tuple[Shape, float]],
    dtype: Dtype = "float32",
    threads: int | None = None,
    *,
    min_s: float = 0.15,
    square: Sequence[int] = SQUARE_SIZES,
) -> Peak:
    """Matmul FLOP/s for (shape, weight) pairs (weight: how many such matmuls the workload
    runs; weights only matter relative to each other) and for square matmuls of `square`
    sizes, with `threads` torch threads (None: as set). Raises ValueError on no shapes."""
    import torch

    pairs = [(tuple(int(x) for x in s), float(w)) for s, w in shapes if w > 0]
    if not pairs:
        raise ValueError("measure_peak needs at least one (shape, weight) with weight > 0")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        per_shape: dict[str, float] = {}
        flops = seconds = 0.0
        for shape, weight in dict(pairs).items():
            m, k, n = shape
            each = _time_matmul((m, k, n), dtype, min_s)
            per_shape[f"{m}x{k}x{n}"] = 2 * m * k * n / each
            flops += weight * 2 * m * k * n
            seconds += weight * each
        best = max((2 * s**3 / _time_matmul((s, s, s), dtype, min_s) for s in square), default=0.0)
        return Peak(
            dtype=dtype,
            threads=torch.get_num_threads(),
            shape_flops=flops / seconds,
            square_flops=best,
            per_shape=per_shape,
        )
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class LlamaShape:
    """The sizes that decide a Llama-family model's FLOPs (read from its config)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> LlamaShape:
        """From a transformers config (`LlamaConfig` or one with the same field names)."""
        heads = int(config.num_attention_heads)
        return cls(
            hidden=int(config.hidden_size),
            intermediate=int(config.intermediate_size),
            layers=int(config.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            vocab=int(config.vocab_size),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of one layer's linear maps: q, k, v, o, gate, up, down."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def body_params(self) -> int:
        """Weights of the layers' linear maps (norms and embeddings left out)."""
        return self.layers * sum(a * b for a, b in self.linear_shapes())

    def forward_flops(self, docs: Iterable[tuple[int, int]], projected: int) -> float:
        """Forward FLOPs over `docs` ((context before, new tokens) per document: a prefix
        run once has context 0) with logits projected at `projected` positions."""
        total = 0.0
        for before, new in docs:
            total += 2 * self.body_params * new
            # Each new token attends over the context before it plus the whole document
            # (full-length convention); QK^T and AV are 2 FLOPs a multiply-add each.
            total += 4 * self.layers * self.hidden * new * (before + new)
        return total + 2 * self.hidden * self.vocab * projected

    def training_flops(
        self,
        docs: Iterable[tuple[int, int]],
        projected: int,
        *,
        lora_r: int | None = None,
        lora_modules: int = 4,
    ) -> float:
        """Forward and backward FLOPs: 3x forward with every weight trained; with a LoRA
        adapter of rank `lora_r` on `lora_modules` of the attention maps, frozen weights
        cost 2x forward (no weight gradients) and the adapters 3x their own forward."""
        docs = list(docs)
        forward = self.forward_flops(docs, projected)
        if lora_r is None:
            return 3 * forward
        tokens = sum(new for _, new in docs)
        attention = sum(4 * self.layers * self.hidden * n * (b + n) for b, n in docs)
        linear = forward - attention
        widths = sum(a + b for a, b in self.linear_shapes()[:lora_modules])
        adapters = 2 * tokens * self.layers * lora_r * widths
        # Attention has no weights: its backward is 2x forward either way.
        return 2 * linear + 3 * attention + 3 * adapters

    def matmul_shapes(self, tokens: int, projected: int) -> list[tuple[Shape, float]]:
        """The forward matmuls of a step over `tokens` rows, with their counts."""
        out: dict[Shape, float] = {}
        for a, b in self.linear_shapes():
            out[(tokens, a, b)] = out.get((tokens, a, b), 0) + self.layers
        if projected:
            out[(projected, self.hidden, self.vocab)] = 1
        return list(out.items())


def mfu(achieved: float, peak: Peak) -> dict[str, float]:
    """Achieved FLOP/s over the square and shape peaks (fractions), and GFLOP/s achieved."""
    return {
        "gflops": round(achieved / 1e9, 3),
        "mfu": round(achieved / peak.square_flops, 4) if peak.square_flops else 0.0,
        "mfu_at_shapes": round(achieved / peak.shape_flops, 4) if peak.shape_flops else 0.0,
    }
