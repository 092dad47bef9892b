"""The one small interface every scheduler implements, and the live view of a real it schedules over.

Schedulers are pure: they never see a socket, a map or a clock. The daemon (and the experiments)
keep `Destination` counters current and call `update()` whenever the set of reals or their weights
change, then `schedule()` once per new flow. Semantics follow IPVS (net/netfilter/ipvs/ip_vs_*.c).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from lb.model import FlowKey, RealKey
from lb.sched.xdpkind import XdpKind


@dataclass(eq=False)
class Destination:
    """A real server as a scheduler sees it: identity, weight and live connection counts.

    Mutable on purpose: the daemon bumps `active`/`inactive` as flows open and close, and flips
    `healthy` from health checks, without rebuilding schedulers. `overloaded` mirrors IPVS's
    IP_VS_DEST_F_OVERLOAD, set from the upper/lower thresholds (ip_vs_ctl.c, ip_vs_dest_totalconns).
    """

    key: RealKey
    weight: int = 1
    active: int = 0
    inactive: int = 0
    healthy: bool = True
    overloaded: bool = False

    @property
    def available(self) -> bool:
        """May take a new flow: up, not overloaded, and not quiescent (weight 0)."""
        return self.healthy and not self.overloaded and self.weight > 0


class Scheduler(ABC):
    """Picks a real for each new flow.

    Subclasses set `name` (the `-s` value) and may accept flags (`-b`, e.g. `sh-port`). `update()` is
    called with the service's destinations in the order they were added, before the first
    `schedule()` and after every change to the set or its weights; stateful schedulers (rr's cursor,
    wrr's walk, mh's table) rebuild there. `schedule()` returns None when no destination is available
    (IPVS logs "no destination available" and drops the packet).
    """

    # What a scheduler is, stated on its class and nowhere else: ipvsadm's flag names and aliases, the
    # CLI's help, lb.tables' service flags and lb.daemon.kernelsched read these. A test checks that every
    # built-in states them (tests/unit/test_sched_facts.py).
    name: ClassVar[str]
    flags_allowed: ClassVar[frozenset[str]] = frozenset()
    # The flags in the order of the kernel's generic bits IP_VS_SVC_F_SCHED1, 2, 3, which ipvsadm(8)
    # also accepts as flag-1, flag-2, flag-3 (sh: flag-1 = sh-fallback, flag-2 = sh-port). A built-in's
    # flags_allowed is exactly these; a plugin may leave it empty and name its flags freely.
    flag_bits: ClassVar[tuple[str, ...]] = ()
    # True when the real is a hash of the packet's addresses (sh, dh, mh), not of the schedule's state.
    hashes: ClassVar[bool] = False
    # The flag that adds the client's port to the hash (sh-port, mh-port), if there is one.
    port_flag: ClassVar[str | None] = None
    # The flag that walks on to another real when the hashed one is unavailable (sh-fallback, …).
    fallback_flag: ClassVar[str | None] = None
    # How the XDP program decides this scheduler's first packets itself, from a map row the daemon
    # writes with xdp_row() (lb.sched.xdpkind says which map; lb.daemon.kernelsched when a service
    # qualifies). DAEMON: only the first-packet path (Python) can, as for every plugin by default.
    xdp_kind: ClassVar[XdpKind] = XdpKind.DAEMON
    # True when schedule() gives an established connection's packet the real it had, from the packet
    # alone (a hash of its addresses: sh, dh, mh), so a flow entry lost to a restart or the LRU can be
    # made again from a mid-connection segment. Other schedulers' services drop such a segment, as
    # IPVS does without sloppy_tcp, and XDP drops it before it reaches user space (lb.tables
    # service_flags(), lb.balancer.decide). The one place this property of a scheduler is stated.
    rederives_midflow: ClassVar[bool] = False

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        unknown = set(flags) - self.flags_allowed
        if unknown:
            raise ValueError(f"scheduler {self.name} does not take flag(s): {', '.join(sorted(unknown))}")
        self.flags = frozenset(flags)

    def update(self, dests: Sequence[Destination]) -> None:  # noqa: B027 - optional hook
        """The set of destinations or their weights changed."""

    def xdp_row(self, dests: Sequence[Destination], ids: Sequence[int]) -> list[int] | None:
        """This scheduler's state as the row XDP decides from (`xdp_kind`'s map), destination i named by
        real id ids[i]; None when it does not fit the map (the daemon decides then). Called after
        update(), whenever the daemon rewrites the row."""
        return None

    @abstractmethod
    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        """The destination for a new flow, or None when none is available."""
