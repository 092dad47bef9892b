"""Never queue: an idle real if there is one, otherwise shortest expected delay.

Follows net/netfilter/ipvs/ip_vs_nq.c (after Weinrib and Shenker, INFOCOM'88): walking the list
in order, the first available real with no active connection is taken at once, whatever its
weight; with none idle, the choice is sed's, (active + 1) / weight by cross-multiplication.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched import register
from lb.sched.base import Destination, Scheduler
from lb.sched.sed import sed_overhead


@register
class NeverQueue(Scheduler):
    name = "nq"

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        least: Destination | None = None
        loh = 0
        for d in dests:
            if not d.available:
                continue
            if d.active == 0:
                return d
            doh = sed_overhead(d)
            if least is None or loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least
