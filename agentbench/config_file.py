"""Read a config file (YAML, or JSON by suffix) into a mapping, with errors that name it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentbench.errors import ConfigError


def read_config_mapping(
    path: Path, *, error: type[Exception] = ConfigError, empty_ok: bool = True
) -> dict[str, Any]:
    """The mapping a config file holds. An empty file is `{}` when `empty_ok`.

    Raises `error` (a `ConfigError` kind of the caller's) naming the file when it cannot be
    read, is not YAML/JSON, or does not hold a mapping.
    """
    import yaml

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read config {path}: {exc}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise error(f"{path} is not valid YAML/JSON: {exc}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path} must hold a mapping of config keys")
    return data
