"""Shortest expected delay: the real that would finish a new connection soonest.

Follows net/netfilter/ipvs/ip_vs_sed.c: expected delay is (active + 1) / weight, inactive
connections ignored, compared by cross-multiplication as in wlc; ties go to the earliest real.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.registry import register
from lb.sched.walk import WalkScheduler
from lb.sched.wlc import least_weighted
from lb.sched.xdpkind import XdpKind


def sed_overhead(dest: Destination) -> int:
    """ip_vs_sed_dest_overhead(): activeconns + 1."""
    return dest.active + 1


@register
class ShortestExpectedDelay(WalkScheduler):
    name = "sed"
    xdp_kind = XdpKind.SED  # a walk over its reals (lb.sched.walk)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        return least_weighted(dests, sed_overhead)
