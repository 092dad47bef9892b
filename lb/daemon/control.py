"""The daemon's end of the control channel: a non-blocking listener its event loop polls.

One request per connection, answered before the next is read; requests are small and the daemon's
answers are quick (configuration edits and listings), so no request waits long behind another.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from lb.daemon.protocol import ADDRESS, MAX_MESSAGE, decode, encode, reply_error

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class AddressInUse(RuntimeError):
    """Another daemon already serves this network namespace."""


class ControlServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(ADDRESS)
        except OSError as exc:
            self._sock.close()
            raise AddressInUse("an lbxdp daemon is already running in this network namespace") from exc
        self._sock.listen(16)
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def serve_one(self, handler: Handler) -> None:
        """Accept one waiting connection and answer its request."""
        try:
            conn, _ = self._sock.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(5.0)
            try:
                request = self._read(conn)
                if not self._peer_is_root(conn):
                    reply = reply_error("permission denied: lbxdp commands need root (as ipvsadm)")
                else:
                    reply = handler(request)
            except (OSError, ValueError) as exc:
                reply = reply_error(f"bad control request: {exc}")
            try:
                conn.sendall(encode(reply))
            except OSError:
                pass  # the client went away; nothing to tell it

    @staticmethod
    def _read(conn: socket.socket) -> dict[str, Any]:
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_MESSAGE:
                raise ValueError("request too large")
        return decode(bytes(buf))

    @staticmethod
    def _peer_is_root(conn: socket.socket) -> bool:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid == 0

    def close(self) -> None:
        self._sock.close()
