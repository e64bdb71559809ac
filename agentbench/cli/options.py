"""Command-line options derived from a stage's config model (as TRL derives its flags from
`SFTConfig`): the model is the only home of each field's default, bounds and help.

Every stage command takes the same three options:

- `--config FILE`: a YAML or JSON mapping of the model's fields;
- `--set key=value` (repeatable): one field, dotted for nested models (`--set lora.r=8`); the
  value is read as YAML (`3`, `true`, `[a, b]`, `null`) and validated by pydantic with the rest;
  an unknown key is a `ConfigError` naming the known keys and the closest match;
- `--show-config`: print the resolved config as YAML and exit 0 (nothing runs).

Precedence: the file, then the command's own flags, then `--set`, in the order given.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from agentbench.config_file import read_config_mapping
from agentbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

ConfigFileOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="The config as a YAML/JSON file (its fields; see --show-config)."
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set one config field (dotted for nested fields; the value is read as YAML). "
        "Repeatable; applied after --config and the other options.",
    ),
]
ShowConfigOption = Annotated[
    bool, typer.Option("--show-config", help="Print the resolved config as YAML and exit.")
]


def field_help(model: type[BaseModel], name: str, text: str | None = None) -> str:
    """Help for an option that sets `model.name`: `text` (default: the field's description)
    and the field's default, read from the model, never restated by hand."""
    field = model.model_fields[name]
    help_text = text or (field.description or name).split("\n\n")[0].strip()
    if field.default is not PydanticUndefined and field.default_factory is None:
        default = field.default
        if default is None or isinstance(default, BaseModel):
            return help_text
        shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        help_text += f" (default: {shown})"  # not [..]: rich would read it as markup
    elif field.is_required():
        help_text += " (required)"
    return help_text


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (through `X | None` and `Annotated`), or None."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _nested_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_mapping(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return origin is dict or annotation is dict


def known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every settable dotted key of `model` (nested models' fields too)."""
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        nested = _nested_model(field.annotation)
        if nested is not None:
            out += known_keys(nested, f"{prefix}{name}.")
    return out


def _check_key(model: type[BaseModel], key: str) -> None:
    """Raise `ConfigError` unless `key` names a field of `model` (dotted through nested
    models; any sub-key of a mapping field)."""
    current: type[BaseModel] | None = model
    parts = key.split(".")
    for index, part in enumerate(parts):
        assert current is not None
        field = current.model_fields.get(part)
        if field is None:
            known = known_keys(model)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown config key {key!r} for {model.__name__}{hint} "
                f"(known keys: {', '.join(known)})"
            )
        if index == len(parts) - 1 or _is_mapping(field.annotation):
            return
        current = _nested_model(field.annotation)
        if current is None:
            raise ConfigError(
                f"config key {key!r}: {'.'.join(parts[: index + 1])} is not a nested config "
                f"of {model.__name__}"
            )


def parse_set(item: str) -> tuple[str, Any]:
    """`key=value` as (key, value read as YAML). Raises `ConfigError` for another shape."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself (pydantic decides whether it fits)
    return key, value


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        child = data.get(part)
        data[part] = child = dict(child) if isinstance(child, dict) else {}
        data = child
    data[parts[-1]] = value


def read_mapping(path: Path) -> dict[str, Any]:
    """A config file's mapping (YAML, or JSON by suffix). Raises `ConfigError` naming it."""
    return read_config_mapping(path)


def resolve(
    model: type[M],
    *,
    file: Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    base: dict[str, Any] | None = None,
    source: Path | None = None,
) -> M:
    """The config: `base`, then the file's mapping, then the command's `flags` (None values
    are left out: the flag was not given), then each `--set`, validated once as `model`.
    `source`: the file errors name (default `file`; for a `base` read from a file).

    Raises `ConfigError` for an unreadable file, an unknown key (naming the known keys and the
    closest match) or a value pydantic refuses (naming each field).
    """
    data: dict[str, Any] = dict(base or {})
    if file is not None:
        data.update(read_mapping(file))
    for key, value in (flags or {}).items():
        if value is not None:
            _put(data, key, value)
    for item in sets or []:
        key, value = parse_set(item)
        _check_key(model, key)
        _put(data, key, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(where, known_keys(model), n=1, cutoff=0.5)
                message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            problems.append(f"  {where}: {message}")
        named = source or file
        where = f" ({named})" if named is not None else ""
        raise ConfigError(f"invalid {model.__name__}{where}:\n" + "\n".join(problems)) from None


def config_yaml(config: BaseModel) -> str:
    """The config as YAML, every field shown (defaults too), in declaration order."""
    data = config.model_dump(mode="json")
    for name in type(config).model_fields:  # flags a serializer leaves out while off
        if name not in data:
            data[name] = getattr(config, name)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def show(config: BaseModel) -> None:
    """`--show-config`: print the resolved config and stop the command (exit 0)."""
    typer.echo(config_yaml(config), nl=False)
    raise typer.Exit(0)
