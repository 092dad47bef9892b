"""Least-connection: the real with the least connection overhead.

Follows net/netfilter/ipvs/ip_vs_lc.c. Overhead is ip_vs_dest_conn_overhead() from
include/net/ip_vs.h, `active * 256 + inactive`: an active connection costs far more than one in
TIME_WAIT or FIN_WAIT, which IPVS still counts. Ties go to the earliest real in the list
(the kernel replaces only on a strictly smaller overhead).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.registry import register
from lb.sched.walk import WalkScheduler
from lb.sched.xdpkind import XdpKind


def conn_overhead(dest: Destination) -> int:
    """ip_vs_dest_conn_overhead(): (activeconns << 8) + inactconns."""
    return (dest.active << 8) + dest.inactive


@register
class LeastConnection(WalkScheduler):
    name = "lc"
    xdp_kind = XdpKind.LC  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        least: Destination | None = None
        loh = 0
        for d in dests:
            if not d.available:
                continue
            doh = conn_overhead(d)
            if least is None or doh < loh:
                least, loh = d, doh
        return least
