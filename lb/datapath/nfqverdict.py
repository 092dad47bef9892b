"""Drop verdicts for queued packets, many in one netlink message (NFQNL_MSG_VERDICT_BATCH).

The first-packet path transmits the rewritten copy of almost every packet it is handed and drops the
original. netfilterqueue gives each verdict its own sendmsg(2); the kernel also takes one message
that gives a verdict to every packet still queued with an id up to the one named (ids grow in
queue order: nfqnl_recv_verdict_batch() in net/netfilter/nfnetlink_queue.c). So the daemon notes
the originals it drops and sends one such message when the queue has been drained, or after
`limit` of them, to keep the queue's room. Other verdicts (accept, a changed payload) are given one
by one as they are decided, before any batch that covers their ids: a batch only ever drops
packets the daemon meant to drop.

The message goes over the queue's own netlink socket (a duplicate of netfilterqueue's fd); the
kernel asks for no sequence numbers on verdicts.
"""

from __future__ import annotations

import os
import socket
import struct

# include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_queue.h and netfilter.h (tests/unit check them
# against the system's headers where these are installed)
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_VERDICT_HDR = 2
NFNETLINK_V0 = 0
NF_DROP = 0
NLM_F_REQUEST = 1

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host order)
_NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (the queue number, network order)
_NLATTR = struct.Struct("=HH")  # len, type
_VERDICT_HDR = struct.Struct("!II")  # verdict, id (network order)
MESSAGE_LEN = _NLMSGHDR.size + _NFGENMSG.size + _NLATTR.size + _VERDICT_HDR.size


def drop_batch_message(queue_num: int, last_id: int) -> bytes:
    """The netlink message dropping every packet of queue `queue_num` still waiting with id ≤ `last_id`."""
    return (
        _NLMSGHDR.pack(MESSAGE_LEN, NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, 0, 0)
        + _NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue_num)
        + _NLATTR.pack(_NLATTR.size + _VERDICT_HDR.size, NFQA_VERDICT_HDR)
        + _VERDICT_HDR.pack(NF_DROP, last_id)
    )


class DropBatch:
    """Drops noted by packet id, sent as one verdict message by flush() (or when `limit` are noted)."""

    def __init__(self, queue_fd: int, queue_num: int, limit: int = 64) -> None:
        self._sock = socket.socket(fileno=os.dup(queue_fd))  # AF_NETLINK, as the fd says
        self._queue_num = queue_num
        self.limit = limit
        self._last_id: int | None = None
        self._noted = 0
        self.messages = 0  # verdict messages sent (for tests and curiosity)

    def note(self, packet_id: int) -> None:
        """Drop packet `packet_id` with the next batch. Every packet queued before it must have had
        its verdict, or be noted here too."""
        self._last_id = packet_id
        self._noted += 1
        if self._noted >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Send the drops noted so far. On failure they stay noted (the next flush covers them: the
        kernel keeps the packets queued until a verdict) and the error is raised."""
        if self._last_id is None:
            return
        self._sock.send(drop_batch_message(self._queue_num, self._last_id))
        self._last_id, self._noted = None, 0
        self.messages += 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._sock.close()
