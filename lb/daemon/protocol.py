"""The control channel between `lbxdp` commands and the daemon of the same network namespace.

An abstract Unix socket: the kernel scopes abstract names by network namespace, so every namespace
has its own `lbxdp-control` and two instances on one host can never answer each other's commands.
Messages are one JSON object per line. Abstract sockets carry no file permissions, so the server
checks the peer's uid (SO_PEERCRED) instead: root only, as ipvsadm.
"""

from __future__ import annotations

import json
from typing import Any

ADDRESS = "\0lbxdp-control"
MAX_MESSAGE = 16 * 1024 * 1024  # a -R of thousands of services still fits; anything bigger is refused


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("control message is not a JSON object")
    return value


def reply_ok(output: str = "", **extra: Any) -> dict[str, Any]:
    return {"ok": True, "output": output, **extra}


def reply_error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}
