"""Student distillation: SFT (LoRA or full) and masked-logit KL on sanitized trajectories.

`distill(config, data, out=None)` is the stage (content-addressed output with a manifest);
`DistillConfig` / `load_distill_config` configure it; `encode_chat` is the assistant-only loss
mask shared with tiny-agent pre-training (`agentbench.recipes`). torch and transformers load
inside the functions that train, so importing this package stays cheap.
"""

from __future__ import annotations

from agentbench.distill.config import (
    DistillConfig,
    DistillConfigError,
    LoraParams,
    TeacherSpec,
    load_distill_config,
)
from agentbench.distill.data import IGNORE_INDEX, DistillDataError, encode_chat, encode_examples
from agentbench.distill.logits import BannedTokens, banned_token_ids, soft_labels
from agentbench.distill.manifest import DistillManifest, distill, read_manifest
from agentbench.distill.sft import DistillError

__all__ = [
    "IGNORE_INDEX",
    "BannedTokens",
    "DistillConfig",
    "DistillConfigError",
    "DistillDataError",
    "DistillError",
    "DistillManifest",
    "LoraParams",
    "TeacherSpec",
    "banned_token_ids",
    "distill",
    "encode_chat",
    "encode_examples",
    "load_distill_config",
    "read_manifest",
    "soft_labels",
]
