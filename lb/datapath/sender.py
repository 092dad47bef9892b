"""Sends a finished Ethernet frame out of an interface, as XDP_TX/XDP_REDIRECT would.

The first-packet path computes the exact frame with the rewrite model and transmits it here, so the
first packet of a flow leaves the balancer byte-identical to what XDP emits for the rest.
"""

from __future__ import annotations

import socket


class FrameSender:
    """One AF_PACKET socket, sending to any interface by index."""

    def __init__(self) -> None:
        # ETH_P_ALL is irrelevant for sending; protocol 0 means this socket receives nothing.
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._names: dict[int, str] = {}

    def send(self, frame: bytes, ifindex: int) -> None:
        name = self._names.get(ifindex)
        if name is None:  # an ioctl per packet would cost as much as the send
            name = self._names[ifindex] = socket.if_indextoname(ifindex)
        self._sock.sendto(frame, (name, 0))

    def forget_names(self) -> None:
        """Interfaces changed: an ifindex may now name another interface."""
        self._names.clear()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
