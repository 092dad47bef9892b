"""Power of two choices (Mitzenmacher, 2001): look at two reals, take the less loaded one.

The two candidates come from a hash of the flow, not a random draw, so a replayed trace is
scheduled the same way every time, which is what an experiment wants.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler


class PowerOfTwoChoices(Scheduler):
    name = "p2c"

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        up = [d for d in dests if d.available]
        if not up:
            return None
        h = zlib.crc32(f"{flow.saddr}:{flow.sport}".encode())
        a, b = up[h % len(up)], up[(h // len(up)) % len(up)]
        # Load per unit of weight, compared without division as IPVS does.
        return a if a.active * b.weight <= b.active * a.weight else b
