"""Overflow: fill the highest-weight real up to its weight in active connections, then the next.

Follows net/netfilter/ipvs/ip_vs_ovf.c: a real is skipped when overloaded, quiescent, or when its
active connections exceed its weight (`activeconns > weight`; so a real with weight w still takes
the flow that brings it from w to w + 1 active, exactly as the kernel does). Among the rest the
highest weight wins, the earliest on ties. Only active connections count, so this suits TCP.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.registry import register
from lb.sched.walk import WalkScheduler
from lb.sched.xdpkind import XdpKind


@register
class Overflow(WalkScheduler):
    name = "ovf"
    xdp_kind = XdpKind.OVF  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        best: Destination | None = None
        for d in dests:
            if not d.available or d.active > d.weight:
                continue
            if best is None or d.weight > best.weight:
                best = d
        return best
