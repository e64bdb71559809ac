"""Read a YAML config into a pydantic model with errors that name the file, line and field.

pydantic reports where in the data a value is wrong (`defaults.distill.mode`); the YAML node
tree knows which line each key and value came from. `load_yaml_model` joins the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agentbench import errors

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class ConfigError(errors.ConfigError, ValueError):
    """Raised when a suite or stage config file cannot be read, is not YAML, or does not validate
    (file:line: field). The `agentbench.errors.ConfigError` kind, as a `ValueError`."""


def node_lines(node: yaml.Node, prefix: Loc = ()) -> dict[Loc, int]:
    """1-based line of every mapping key and sequence item, by its path in the data."""
    lines: dict[Loc, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines.update(node_lines(value, path))
            lines[path] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(node_lines(item, (*prefix, index)))
    return lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of `loc` or of its nearest ancestor that the file spells out."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def format_errors(source: Path, exc: ValidationError, lines: dict[Loc, int], base: Loc = ()) -> str:
    out = []
    for err in exc.errors():
        loc = (*base, *err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(lines, loc)
        where = f"{source}:{line}" if line else str(source)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(f"{where}: {field}: {message}")
    return "\n".join(out)


def read_yaml(source: Path) -> tuple[Any, dict[Loc, int]]:
    """The data of a YAML file and its line table. Raises `ConfigError`."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    return data, (node_lines(node) if node is not None else {})


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Validate a YAML (or JSON) file as `model`. Raises `ConfigError` naming file:line: field."""
    source = Path(path)
    data, lines = read_yaml(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(source, exc, lines)) from None
