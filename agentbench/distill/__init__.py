"""Student distillation: SFT (LoRA or full) and masked-logit KL on sanitized trajectories.

`distill(config, data, out=None)` is the stage (content-addressed output with a manifest);
`DistillConfig` / `load_distill_config` configure it; `encode_chat` is the assistant-only loss
mask shared with tiny-agent pre-training. Attributes load lazily so that `agentbench.models`
can import `agentbench.distill.data` without pulling in the trainers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DistillConfig": "agentbench.distill.config",
    "DistillConfigError": "agentbench.distill.config",
    "LoraParams": "agentbench.distill.config",
    "TeacherSpec": "agentbench.distill.config",
    "load_distill_config": "agentbench.distill.config",
    "IGNORE_INDEX": "agentbench.distill.data",
    "DistillDataError": "agentbench.distill.data",
    "encode_chat": "agentbench.distill.data",
    "encode_examples": "agentbench.distill.data",
    "DistillError": "agentbench.distill.sft",
    "DistillManifest": "agentbench.distill.manifest",
    "distill": "agentbench.distill.manifest",
    "read_manifest": "agentbench.distill.manifest",
    "BannedTokens": "agentbench.distill.logits",
    "banned_token_ids": "agentbench.distill.logits",
    "soft_labels": "agentbench.distill.logits",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentbench.distill' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = sorted(_EXPORTS)
