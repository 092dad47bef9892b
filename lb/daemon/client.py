"""Talks to the daemon of the current network namespace (protocol: lb.daemon.protocol).

Before sending anything the client checks who listens: the abstract name carries no permissions,
so a process of any user could hold it and would otherwise receive root's commands and answer
them with forged listings. Only a listener running as root is spoken to.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from lb.daemon.protocol import ADDRESS, MAX_REPLY_LINE, ProtocolError, decode, encode, is_partial


class DaemonNotRunning(ConnectionError):
    """No daemon listens in this network namespace."""


class NotRootDaemon(ConnectionError):
    """The control socket's name is held by a process that does not run as root."""


def _connect(timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(ADDRESS)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise DaemonNotRunning("no lbxdp daemon is running in this network namespace") from exc
    except BaseException:
        sock.close()
        raise
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    if uid != 0:
        sock.close()
        raise NotRootDaemon(
            f"the control socket of this namespace is held by pid {pid} (uid {uid}), not a root lbxdp "
            "daemon: refusing to send to it"
        )
    return sock


def stream(message: dict[str, Any], write: Callable[[str], Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request; hand each piece of the reply's output to `write` as it arrives and
    return the last line of the reply (its "output" already written)."""
    sock = _connect(timeout)
    try:
        try:
            sock.sendall(encode(message))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before reading: its one line is waiting for us
        reader = sock.makefile("rb")
        while True:
            line = reader.readline(MAX_REPLY_LINE + 1)
            if not line:
                raise ConnectionError("the lbxdp daemon closed the connection without a reply")
            if len(line) > MAX_REPLY_LINE:
                raise ConnectionError("the lbxdp daemon's reply line is too long")
            try:
                reply = decode(line)
            except ProtocolError as exc:
                raise ConnectionError(f"the lbxdp daemon's reply is unreadable: {exc}") from None
            output = reply.get("output")
            if isinstance(output, str) and output:
                write(output)
            if not is_partial(reply):
                return {**reply, "output": ""} if "output" in reply else reply  # an error has none
    except ConnectionResetError as exc:
        raise ConnectionError("the lbxdp daemon closed the connection without a reply") from exc
    finally:
        sock.close()


def send(message: dict[str, Any], timeout: float = 30.0,
         write: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Send one request and wait for its reply. With `write`, the output goes to it piece by
    piece as it arrives (a long listing is never held whole) and the reply's "output" is ""."""
    if write is not None:
        return stream(message, write, timeout)
    pieces: list[str] = []
    reply = stream(message, pieces.append, timeout)
    return {**reply, "output": "".join(pieces)} if "output" in reply else reply


def is_running() -> bool:
    """A root daemon answers in this namespace. Raises NotRootDaemon when the name is squatted."""
    try:
        return bool(send({"op": "ping"}, timeout=5.0).get("ok"))
    except NotRootDaemon:
        raise
    except (ConnectionError, OSError, ValueError):
        return False
