"""Never queue: an idle real if there is one, otherwise shortest expected delay.

Follows net/netfilter/ipvs/ip_vs_nq.c (after Weinrib and Shenker, INFOCOM'88): walking the list
in order, the first available real with no active connection is taken at once, whatever its
weight; with none idle, the choice is sed's, (active + 1) / weight by cross-multiplication.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.registry import register
from lb.sched.sed import sed_overhead
from lb.sched.walk import WalkScheduler
from lb.sched.wlc import least_weighted
from lb.sched.xdpkind import XdpKind


@register
class NeverQueue(WalkScheduler):
    name = "nq"
    xdp_kind = XdpKind.NQ  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        # An idle real is taken at once (the first in order); otherwise sed's choice.
        idle = next((d for d in dests if d.available and d.active == 0), None)
        return idle or least_weighted(dests, sed_overhead)
