"""Type checks for values read from the control socket's JSON: a wrong type is a one-line ConfigError
naming the field, never a TypeError (the socket is not trusted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lb.config.values import shown
from lb.model import ConfigError


def json_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"malformed command: {shown(repr(value))} is not an integer")
    return value


def json_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"malformed command: {name} must be a string, not {type(value).__name__}")
    return value


def json_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"malformed command: {name} must be a list, not {type(value).__name__}")
    return value


def json_object(value: Any, name: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"malformed command: {name} must be an object, not {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ConfigError(f"malformed command: {name} lacks {', '.join(missing)}")
    return value
