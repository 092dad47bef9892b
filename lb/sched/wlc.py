"""Weighted least-connection, ipvsadm's default: the least overhead per unit of weight.

Follows net/netfilter/ipvs/ip_vs_wlc.c. The kernel has no floats, so overhead/weight is compared
by cross-multiplication, `loh * dw > doh * lw`, replacing the current choice only when strictly
worse; ties go to the earliest real. Python ints do not overflow, so the (__s64) casts need no
mirror here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.lc import conn_overhead
from lb.sched.registry import register
from lb.sched.walk import WalkScheduler
from lb.sched.xdpkind import XdpKind


def least_weighted(dests: Sequence[Destination], overhead: Callable[[Destination], int]) -> Destination | None:
    """The available real minimising overhead/weight, first on ties (ip_vs_wlc.c, ip_vs_sed.c)."""
    least: Destination | None = None
    loh = 0
    for d in dests:
        if not d.available:
            continue
        doh = overhead(d)
        if least is None or loh * d.weight > doh * least.weight:
            least, loh = d, doh
    return least


@register
class WeightedLeastConnection(WalkScheduler):
    name = "wlc"
    xdp_kind = XdpKind.WLC  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        return least_weighted(dests, conn_overhead)
