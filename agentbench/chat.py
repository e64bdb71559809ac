"""Chat messages: the wire type every layer shares (policies, rollouts, sanitize, traits).

Conversations are chat messages in the usual format: a `system` message (the environment's
system prompt), a `user` message (the task's instruction), then alternating `assistant` (the
action) and `user` (the observation) messages. This module sits at the bottom of the layers
(it imports nothing from agentbench), so that a trajectory schema or a trait task can name a
message without loading a policy backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message (frozen; unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


def merge_system_prompt(
    messages: Sequence[Message], system_prompt: str | None
) -> list[dict[str, str]]:
    """Chat dicts for a conversation, with a trait prompt put before the system message
    (or as the system message when there is none)."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if system_prompt is not None:
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{system_prompt}\n\n{chat[0]['content']}"}
        else:
            chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


__all__ = ["Message", "Role", "merge_system_prompt"]
