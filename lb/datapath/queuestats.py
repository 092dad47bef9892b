"""What the kernel says about an NFQUEUE queue: packets waiting for the daemon, and those it dropped.

/proc/net/netfilter/nfnetlink_queue has one line per bound queue of the reading task's network
namespace (seq_show() in net/netfilter/nfnetlink_queue.c): queue number, the listener's netlink
port id, packets waiting, copy mode, copy range, packets dropped because the queue was full,
packets dropped because netlink could not hand them to the listener (its socket buffer was full),
the last packet id, and a constant 1. A dropped first packet is a SYN the client must resend, so
`lbxdp status` shows both drop counts rather than leaving them to be found in /proc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC_PATH = Path("/proc/net/netfilter/nfnetlink_queue")


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # queued, no verdict yet
    dropped_full: int  # the queue held its maximum (queue_dropped)
    dropped_undelivered: int  # netlink could not deliver to the listener (queue_user_dropped)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_undelivered


def parse(text: str, queue: int | None = None) -> QueueStats:
    """The counts of queue `queue` in the file's text, or summed over every queue when None; a
    queue that is not listed (nobody bound) counts as zero."""
    waiting = full = undelivered = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or not all(f.isdigit() for f in fields[:7]):
            continue
        if queue is not None and int(fields[0]) != queue:
            continue
        waiting += int(fields[2])
        full += int(fields[5])
        undelivered += int(fields[6])
    return QueueStats(waiting, full, undelivered)


def read(queue: int | None = None, path: Path = PROC_PATH) -> QueueStats | None:
    """This namespace's counts of `queue`, or None where the kernel has no nfnetlink_queue."""
    try:
        return parse(path.read_text(), queue)
    except OSError:
        return None
