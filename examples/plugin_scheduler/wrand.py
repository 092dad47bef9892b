"""Single-file lbxdp scheduler plugin: weighted random with a fixed seed.

Load it without installing anything:
    LBXDP_SCHEDULERS=examples/plugin_scheduler/wrand.py:WeightedRandom lbxdp …  -s wrand
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler


class WeightedRandom(Scheduler):
    name = "wrand"
    flags_allowed = frozenset({"flag-1"})  # any flags your scheduler reads go here

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self._rng = random.Random(2016)  # seeded: runs are repeatable

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        up = [d for d in dests if d.available]
        if not up:
            return None
        return self._rng.choices(up, weights=[d.weight for d in up])[0]
