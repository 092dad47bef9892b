"""Round-robin: each new flow to the next available real, in the order the reals were added.

Follows net/netfilter/ipvs/ip_vs_rr.c: a cursor names the last real chosen; scheduling walks on
from it, wrapping once, and skips reals that are quiescent (weight 0) or overloaded (and, in
lbxdp, unhealthy). When the cursor's real is removed the cursor steps back to the real before it
(ip_vs_rr_del_dest), so the walk continues where it would have. Kept as one cycle of the available
reals and a position in it (lb.sched.cycle), which is what XDP schedules from.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.sched.base import Destination
from lb.sched.cycle import CycleScheduler
from lb.sched.registry import register


@register
class RoundRobin(CycleScheduler):
    name = "rr"

    def passes_of(self, dests: Sequence[Destination]) -> list[tuple[int, list[int]]]:
        return [(0, [i for i, d in enumerate(dests) if d.available])]
