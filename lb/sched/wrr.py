"""Weighted round-robin: IPVS's interleaved walk, exact proportions over each cycle.

Follows net/netfilter/ipvs/ip_vs_wrr.c. State: `cl` (cursor), `cw` (current weight), `mw`
(maximum weight less gcd-1) and `di` (gcd of the positive weights). Each pass walks the reals
after the cursor and takes the first one whose weight is at least `cw`; at the end of the list `cw`
drops by `di`, and when it reaches 0 it wraps to `mw`. Over one cycle of mw/di passes a real of
weight w is chosen w/di times, interleaved: weights 3, 2, 1 give A A B A B C.

The kernel's `stop`/`last_pass` bookkeeping ends the walk after every real was checked for
weight >= 1 once, so an all-overloaded service returns None instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler
from lb.sched.registry import register


@register
class WeightedRoundRobin(Scheduler):
    name = "wrr"

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self._cl = -1  # index of the last real chosen; -1 is the list head
        self._cw = 0
        self._mw = 0
        self._di = 1
        self._initialised = False

    def update(self, dests: Sequence[Destination]) -> None:
        """ip_vs_wrr_init_svc() the first time, ip_vs_wrr_dest_changed() afterwards."""
        positive = [d.weight for d in dests if d.weight > 0]
        di = 0
        for w in positive:
            di = gcd(di, w)
        self._di = di or 1
        self._mw = max((d.weight for d in dests), default=0) - (self._di - 1)
        self._cl = -1
        if not self._initialised or self._cw > self._mw or self._cw == 0:
            self._cw = self._mw
        elif self._di > 1:
            self._cw = (self._cw // self._di) * self._di + 1
        self._initialised = True

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        if not self._initialised:
            self.update(dests)
        if self._mw <= 0:
            return None
        n = len(dests)
        pos = self._cl if -1 <= self._cl < n else -1
        last = pos
        stop: int | None = None
        last_pass = restarted = False
        while True:
            for i in range(pos + 1, n):
                d = dests[i]
                if d.available and d.weight >= self._cw:
                    self._cl = i
                    return d
                if i == stop:
                    self._cl = i
                    return None
            pos = -1
            self._cw -= self._di
            if self._cw <= 0:
                self._cw = self._mw
                # Every real was already checked for weight >= 1 (kernel: err_over).
                if last_pass or last == -1:
                    self._cl = -1
                    return None
                restarted = True
            last_pass = self._cw <= self._di
            if last_pass and restarted and last != -1:
                # The w >= 1 pass so far covered only the reals after `last`; finish at `last`.
                stop = last
