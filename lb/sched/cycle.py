"""rr and wrr as one cycle and a position in it: the form the XDP program schedules from.

A round-robin scheduler's choices repeat: rr takes the available reals in list order, wrr walks
IPVS's passes (ip_vs_wrr.c: pass `cw` takes, in list order, every available real whose weight is at
least cw; cw steps down by the weights' gcd from the largest weight). So the whole state is the
cycle (destination indices in the order they are chosen, each tagged with its pass) and the
position of the next choice. The daemon writes the cycle into `sched_seqs` and the position into
`sched_cursors`, and XDP takes `cycle[cursor++ mod len]` with an atomic fetch-and-add, so XDP and
this class choose the same reals in the same order (lb.daemon.kernelsched, docs/schedulers.md).

When the reals, their weights or their availability change, a new cycle is built and the position
set where the old walk would have continued: right after the last real chosen, in its pass
(`_resume()`), or, for wrr after an edit of the set or the weights, at the start of the pass
ip_vs_wrr_dest_changed() leaves (`WeightedRoundRobin.update`).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey, RealKey
from lb.sched.base import Destination, Scheduler
from lb.sched.xdpkind import SEQ_MAX, XdpKind

HEAD = -1  # "before the first real": where a walk starts


class CycleScheduler(Scheduler):
    """The shared state and choice of rr and wrr; subclasses say how a cycle is built (`passes()`)."""

    xdp_kind = XdpKind.SEQ

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self.cycle: list[int] = []  # destination indices, in the order they are chosen
        self.passes: list[int] = []  # the pass of each position (wrr's cw; rr has one pass, 0)
        self.position = 0  # the next position in the cycle (XDP's cursor, modulo the length)
        self._keys: list[RealKey] = []
        self._available: list[bool] = []
        self._last = HEAD  # index of the real chosen last
        self._pass: int | None = None  # its pass (None: nothing chosen since the walk began)

    def passes_of(self, dests: Sequence[Destination]) -> list[tuple[int, list[int]]]:
        """The cycle as (pass, destination indices) in order, for these destinations."""
        raise NotImplementedError

    def update(self, dests: Sequence[Destination]) -> None:
        self._refresh(dests)

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        if [d.available for d in dests] != self._available or len(dests) != len(self._keys):
            # availability changed without update() (a threshold, a test's hand): continue after
            # the last real chosen, as IPVS's walk skipping unavailable reals would
            self._refresh(dests)
        if not self.cycle:
            self.idle(dests)
            return None
        p = self.position % len(self.cycle)
        self.position = (p + 1) % len(self.cycle)
        self._last, self._pass = self.cycle[p], self.passes[p]
        return dests[self._last]

    def idle(self, dests: Sequence[Destination]) -> None:
        """No real was available: what the walk's state becomes (wrr: back to the head, first pass)."""

    def seek(self, cursor: int) -> None:
        """Continue from XDP's cursor: it took the positions up to `cursor` (free-running) itself."""
        if not self.cycle:
            return
        self.position = cursor % len(self.cycle)
        before = (cursor - 1) % len(self.cycle)
        self._last, self._pass = self.cycle[before], self.passes[before]

    def xdp_row(self, dests: Sequence[Destination], ids: Sequence[int]) -> list[int] | None:
        """The cycle as real ids (XDP's sched_seqs row); None when it is longer than SEQ_MAX."""
        if len(self.cycle) > SEQ_MAX:
            return None
        return [ids[i] for i in self.cycle]

    def _refresh(self, dests: Sequence[Destination]) -> None:
        """A new cycle, resumed right after the last real chosen (found again by its key)."""
        keys = [d.key for d in dests]
        self._last = _carry(self._keys, keys, self._last)
        self._keys = keys
        self._rebuild(dests)

    def _rebuild(self, dests: Sequence[Destination]) -> None:
        self._available = [d.available for d in dests]
        built = self.passes_of(dests)
        self.cycle = [i for _, members in built for i in members]
        self.passes = [cw for cw, members in built for _ in members]
        self.position = self._resume()

    def _resume(self) -> int:
        """The position after the last real chosen, in its pass (or the start of the cycle)."""
        if self._pass is None:
            return 0
        for p, (i, cw) in enumerate(zip(self.cycle, self.passes, strict=True)):
            if cw < self._pass or (cw == self._pass and i > self._last):
                return p
        return 0


def _carry(old: list[RealKey], new: list[RealKey], last: int) -> int:
    """The last real's index in `new`: the same real, else the nearest earlier survivor, else HEAD
    (ip_vs_rr_del_dest() steps the cursor back when its real goes)."""
    where = {key: i for i, key in enumerate(new)}
    for i in range(min(last, len(old) - 1), -1, -1):
        if old[i] in where:
            return where[old[i]]
    return HEAD
