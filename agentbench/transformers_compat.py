"""What differs between the transformers versions agentbench runs on (`transformers>=4.45`)."""

from __future__ import annotations

import functools
import inspect
from typing import Any


def cache_kwarg(model: Any) -> str:
    """The forward keyword that takes a KV cache: transformers 5 renamed `past_key_values` to
    `cache` (the old name warns, and is to go in 5.40). Read once per model class: callers
    ask on every forward pass."""
    model_class: Any = type(model)
    return _cache_kwarg_of(model_class)


@functools.cache
def _cache_kwarg_of(model_class: Any) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
