"""Single-file lbxdp scheduler plugin: plain round robin, written as a researcher would.

Every new flow goes to the next available real in the order the reals were added. The XDP program
cannot run Python, so a service using a plugin has each first packet decided by the daemon (through
NFQUEUE); lbxdp's bench measures that path with this scheduler (`new flows/s through NFQUEUE
(plugin rr)`) and tests/e2e check its exact rotation.

Load it without installing anything:
    LBXDP_SCHEDULERS=examples/plugin_scheduler/pyrr.py:PyRoundRobin lbxdp …  -s pyrr
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler


class PyRoundRobin(Scheduler):
    name = "pyrr"

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self._last = -1  # index of the real chosen last

    def update(self, dests: Sequence[Destination]) -> None:
        self._last = -1  # a changed set starts over from the first real

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        n = len(dests)
        for step in range(1, n + 1):
            i = (self._last + step) % n
            if dests[i].available:
                self._last = i
                return dests[i]
        return None
