"""Round-robin: each new flow to the next available real, in the order the reals were added.

Follows net/netfilter/ipvs/ip_vs_rr.c: a cursor names the last real chosen; scheduling walks on
from it, wrapping once, and skips reals that are quiescent (weight 0) or overloaded (and, in
lbxdp, unhealthy). When the cursor's real is removed the cursor steps back to the real before it
(ip_vs_rr_del_dest), so the walk continues where it would have.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey, RealKey
from lb.sched.base import Destination, Scheduler
from lb.sched.registry import register


@register
class RoundRobin(Scheduler):
    name = "rr"

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self._keys: list[RealKey] = []
        self._cursor = -1  # index of the last real chosen; -1 is the list head

    def update(self, dests: Sequence[Destination]) -> None:
        keys = [d.key for d in dests]
        self._cursor = _carry_cursor(self._keys, keys, self._cursor)
        self._keys = keys

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        n = len(dests)
        start = self._cursor if -1 <= self._cursor < n else -1
        for step in range(1, n + 1):
            i = (start + step) % n
            if dests[i].available:
                self._cursor = i
                return dests[i]
        return None


def _carry_cursor(old: list[RealKey], new: list[RealKey], cursor: int) -> int:
    """The cursor's position in `new`: the same real, else the nearest earlier survivor, else head."""
    where = {key: i for i, key in enumerate(new)}
    for i in range(min(cursor, len(old) - 1), -1, -1):
        if old[i] in where:
            return where[old[i]]
    return -1
