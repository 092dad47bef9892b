"""Weighted failover: every new flow to the available real with the highest weight.

Follows net/netfilter/ipvs/ip_vs_fo.c: the list is walked in order and a real replaces the current
choice only with a strictly higher weight, so ties go to the earliest. Lowering the primary's
weight (or it failing a health check) moves new flows to the standby.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.registry import register
from lb.sched.walk import WalkScheduler
from lb.sched.xdpkind import XdpKind


@register
class WeightedFailover(WalkScheduler):
    name = "fo"
    xdp_kind = XdpKind.FO  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        best: Destination | None = None
        for d in dests:
            if d.available and (best is None or d.weight > best.weight):
                best = d
        return best
