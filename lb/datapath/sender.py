"""Sends a finished Ethernet frame out of an interface, as XDP_TX/XDP_REDIRECT would.

The first-packet path computes the exact frame with the rewrite model and transmits it here, so the
first packet of a flow leaves the balancer byte-identical to what XDP emits for the rest.
"""

from __future__ import annotations

import socket


class FrameSender:
    """AF_PACKET sockets, one bound to each egress interface it has sent on.

    A bound socket sends with send(), no address: CPython's sendto() on AF_PACKET turns the
    interface name in the address into an index with an ioctl on every call.
    """

    def __init__(self) -> None:
        self._socks: dict[int, socket.socket] = {}

    def send(self, frame: bytes, ifindex: int) -> None:
        sock = self._socks.get(ifindex)
        if sock is None:
            # Protocol 0: the socket receives nothing, it only sends.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                sock.bind((socket.if_indextoname(ifindex), 0))
            except OSError:
                sock.close()
                raise
            self._socks[ifindex] = sock
        try:
            sock.send(frame)
        except OSError:
            # The interface may be gone (ENXIO, ENETDOWN): bind afresh next time.
            self._socks.pop(ifindex, None)
            sock.close()
            raise

    def forget_names(self) -> None:
        """Interfaces changed: an ifindex may now name another interface (or none)."""
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()

    def close(self) -> None:
        self.forget_names()

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
