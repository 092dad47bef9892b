"""Talks to the daemon of the current network namespace (see lb.daemon.protocol)."""

from __future__ import annotations

import socket
from typing import Any

from lb.daemon.protocol import ADDRESS, MAX_MESSAGE, decode, encode


class DaemonNotRunning(ConnectionError):
    """No daemon listens in this network namespace."""


def send(message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and wait for its reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(ADDRESS)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning("no lbxdp daemon is running in this network namespace") from exc
        sock.sendall(encode(message))
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the lbxdp daemon closed the connection without a reply")
            buf += chunk
            if len(buf) > MAX_MESSAGE:
                raise ConnectionError("the lbxdp daemon's reply is too large")
        return decode(bytes(buf))
    finally:
        sock.close()


def is_running() -> bool:
    try:
        return bool(send({"op": "ping"}, timeout=5.0).get("ok"))
    except (DaemonNotRunning, ConnectionError, OSError, ValueError):
        return False
