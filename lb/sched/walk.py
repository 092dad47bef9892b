"""lc, wlc, sed, nq, fo and ovf in XDP: a walk over the service's reals, which XDP repeats.

Each of these schedulers chooses from the reals in list order and their counters alone, so its XDP
row is simply the reals' ids in that order (`sched_dests`, at most WALK_MAX): XDP reads each real's
weight and availability from `real_sched` and its connections from `real_conns`, and applies the
scheduler's overhead formula as the kernel does (pick_least() in bpf/lb_kern.c, docs/schedulers.md).
A service with more reals than WALK_MAX is left to the daemon: the walk's length is what bounds
XDP's work per first packet.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.sched.base import Destination, Scheduler
from lb.sched.xdpkind import WALK_MAX


class WalkScheduler(Scheduler):
    """A scheduler XDP runs as a walk: subclasses name their `xdp_kind` (the overhead formula)."""

    def xdp_row(self, dests: Sequence[Destination], ids: Sequence[int]) -> list[int] | None:
        """The reals' ids in the order the walk visits them, whatever their availability; None
        past WALK_MAX reals (the daemon decides then)."""
        return list(ids) if len(ids) <= WALK_MAX else None
