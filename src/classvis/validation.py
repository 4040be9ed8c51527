"""Typed settings for every config group, checked before any work starts.

Each config group's module declares a frozen dataclass for its options. ``parse`` turns a plain
mapping (a Hydra/OmegaConf node converted to a dict) into that dataclass, checking unknown keys,
types and each class's own ``check`` so that a bad value fails at the door with a one-line
message naming the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is invalid. The message names the key and what was expected."""

    def __init__(self, key: str, expected: str, got: Any = dataclasses.MISSING):
        self.key = key
        message = f"{key}: expected {expected}"
        if got is not dataclasses.MISSING:
            message += f", got {got!r}"
        super().__init__(message)


def require(condition: bool, key: str, expected: str, got: Any = dataclasses.MISSING) -> None:
    """Raise ``ConfigError(key, expected, got)`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, expected, got)


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in get_args(annotation) if a is not type(None)]
        optional = type(None) in get_args(annotation)
        return " or ".join(parts) + (" or null" if optional else "")
    if origin is tuple:
        return f"a list of {_describe(get_args(annotation)[0])}"
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(key, _describe(annotation), value)
    if origin is Literal:
        require(value in get_args(annotation), key, _describe(annotation), value)
        return value
    if origin is tuple:
        require(isinstance(value, (list, tuple)), key, _describe(annotation), value)
        item_type = get_args(annotation)[0]
        return tuple(_coerce(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(annotation):
        return parse(typing.cast(Any, annotation), value, key)
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok, key, "a number", value)
        return float(value)
    if annotation is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if annotation is bool:
        require(isinstance(value, bool), key, "true or false", value)
        return value
    if annotation is str:
        require(isinstance(value, str), key, "a string", value)
        return value
    if annotation is Any:
        return value
    raise TypeError(f"settings field {key} has an unsupported annotation {annotation!r}")


def parse(cls: type[T], mapping: Any, key: str) -> T:
    """Build settings dataclass ``cls`` from ``mapping``; ``key`` is its dotted config path."""
    require(isinstance(mapping, Mapping), key, "a mapping of settings", mapping)
    fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "no such key; known keys are " + ", ".join(fields))
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name not in mapping:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            require(has_default, f"{key}.{name}", f"a value ({_describe(hints[name])})", None)
            continue
        values[name] = _coerce(hints[name], mapping[name], f"{key}.{name}")
    settings = cls(**values)
    check = getattr(settings, "check", None)
    if check is not None:
        check(key)
    return settings


def positive(value: float, key: str, what: str = "a number > 0") -> None:
    require(math.isfinite(value) and value > 0, key, what, value)  # inf passes "> 0"


def non_negative(value: float, key: str) -> None:
    require(math.isfinite(value) and value >= 0, key, "a number >= 0", value)


def writable_folder(path: str | Path, key: str) -> None:
    """``path`` is a folder, or can be made one, that this process can write in: checked at the
    door, so that a cache or store under a file fails before the work, not after it."""
    folder = Path(path).expanduser().absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, f"a folder that can be created ({existing} is a file)", str(path))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, f"a folder this user can write in ({existing} is not writable)",
                          str(path))
