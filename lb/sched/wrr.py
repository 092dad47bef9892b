"""Weighted round-robin: IPVS's interleaved walk, exact proportions over each cycle.

Follows net/netfilter/ipvs/ip_vs_wrr.c. State: `cw` (current weight), `mw` (maximum weight less
gcd-1) and `di` (gcd of the positive weights). Each pass takes, in list order, the available reals
whose weight is at least `cw`; then `cw` drops by `di`, and when it reaches 0 it wraps to `mw`. Over
one cycle of mw/di passes a real of weight w is chosen w/di times, interleaved: weights 3, 2, 1 give
A A B A B C. The passes are laid out as one cycle (lb.sched.cycle), which is what XDP schedules from.

An edit of the reals or their weights does what ip_vs_wrr_dest_changed() does: the walk restarts
at the list head with `cw` kept (rounded to the new gcd's passes), or at `mw` when it no longer fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd

from lb.sched.base import Destination
from lb.sched.cycle import HEAD, CycleScheduler
from lb.sched.registry import register


@register
class WeightedRoundRobin(CycleScheduler):
    name = "wrr"

    def passes_of(self, dests: Sequence[Destination]) -> list[tuple[int, list[int]]]:
        di, mw = _gcd_and_max(dests)
        return [
            (cw, [i for i, d in enumerate(dests) if d.available and d.weight >= cw])
            for cw in range(mw, 0, -di)
        ]

    def idle(self, dests: Sequence[Destination]) -> None:
        """The kernel's walk found no real after wrapping: it stops at the head with cw = mw."""
        self._last, self._pass = HEAD, _gcd_and_max(dests)[1]

    def update(self, dests: Sequence[Destination]) -> None:
        """ip_vs_wrr_init_svc() the first time, ip_vs_wrr_dest_changed() afterwards: back to the head
        of the list, in the pass of the current cw (rounded to the new gcd), else the first pass."""
        di, mw = _gcd_and_max(dests)
        cw = self._pass
        if cw is None or cw > mw or cw <= 0:
            cw = mw
        elif di > 1:
            cw = (cw // di) * di + 1
        self._last, self._pass = HEAD, cw  # the state a walk starts from: the head, in pass cw
        self._keys = [d.key for d in dests]
        self._rebuild(dests)


def _gcd_and_max(dests: Sequence[Destination]) -> tuple[int, int]:
    """di, the gcd of the positive weights (1 when there are none), and mw = max weight - (di - 1)."""
    di = 0
    for d in dests:
        if d.weight > 0:
            di = gcd(di, d.weight)
    di = di or 1
    return di, max((d.weight for d in dests), default=0) - (di - 1)
