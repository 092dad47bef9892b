"""Maglev in XDP: which services the XDP program schedules itself, and the rings it schedules from.

A service whose scheduler is mh (lb.sched.mh), that has no persistence and whose reals have no
connection thresholds, gets a row of the `hash_rings` map: slot → the real id of the real its
MaglevHashing table names there when that real is available (weight > 0, healthy), else 0. Its
`service_info.flags` then carry SVC_F_HASH_IN_KERNEL (and SVC_F_HASH_PORT with mh-port) and the row,
and XDP creates the flow of a first packet whose slot is not 0 without asking user space
(hash_schedule() in bpf/lb_kern.c). A 0 slot, and every other service, goes through NFQUEUE, where
Python applies what a ring cannot hold (persistence, thresholds, mh-fallback's walk, table pressure).

Why those services only: persistence needs the per-client template only the daemon keeps; a
threshold must see every new connection as it happens, and XDP does not count them until the next
sweep. While the flow table is at its limit (FlowBook), no service keeps the bit, so new flows meet
the first-packet path's refusal policy, which protects established flows (docs/daemon.md). Between
two sweeps XDP may create at most the room the last sweep left (`hash_budget`, granted per CPU), so
a SYN flood cannot fill the table faster than the daemon notices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from lb.balancer.engine import ServiceState
from lb.datapath.maps import DatapathMaps
from lb.model import ServiceKey
from lb.sched.mh import MaglevHashing
from lb.tables import HASH_BITS, RING_SIZE, ServiceEntry, hashed_flags, service_flags

log = logging.getLogger("lbxdp")

ENV_VAR = "LBXDP_KERNEL_HASH"  # "0" (or "off", "no"): every first packet goes through NFQUEUE


def enabled_by_env(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV_VAR, "1").strip().lower() not in ("0", "off", "no", "false")


def eligible(state: ServiceState) -> bool:
    """May XDP schedule this service's new flows? (The module docstring says why these rules.)"""
    return why_daemon(state) is None


def why_daemon(state: ServiceState) -> str | None:
    """Why the daemon, not XDP, decides this service's first packets, in `lbxdp -L`'s words; None
    when XDP may. The one place the rules are written (eligible() and the listings read it)."""
    service = state.service
    if not state.scheduler.xdp_schedules or not isinstance(state.scheduler, MaglevHashing):
        return "scheduler not decided in XDP"  # the ring is a Maglev table: the one kind XDP reads
    if state.scheduler.m != RING_SIZE:
        return "service past XDP's bound (ring size)"
    if service.persistence is not None:
        return "persistence"
    if service.key.port == 0:
        return "port-0 service"  # port-0 services are not in the fast path at all
    if any(r.real.upper_threshold or r.real.lower_threshold for r in state.reals.values()):
        return "thresholds set"
    return None


def ring_of(state: ServiceState) -> list[int]:
    """Slot → real id, 0 where the real is unavailable or no real holds the slot. The scheduler's
    table indexes the destinations in the order update() last saw them: the order of state.reals."""
    assert isinstance(state.scheduler, MaglevHashing)
    ids = [r.real_id if r.dest.available else 0 for r in state.reals.values()]
    ids.append(0)  # table entries are -1 (EMPTY) where nobody claimed the slot: index -1 reads this 0
    return [ids[i] for i in state.scheduler.table]


class KernelHashing:
    """Keeps hash_rings and the services' flags in step with the balancer's services.

    It owns the hashing bits of `service_info.flags` (HASH_BITS: in-kernel, mh-port, the row) and
    keeps the others as the daemon's full resync wrote them (lb.tables.service_flags(), e.g.
    SVC_F_DROP_MIDFLOW_MISS), so none of its writes clears a bit that is not its own.
    """

    def __init__(self, maps: DatapathMaps, rows: int, enabled: bool = True) -> None:
        self.maps = maps
        self.max_rows = rows
        self.enabled = enabled
        self.paused = False  # the flow table is at its limit: no service keeps the bit
        self.rows: dict[ServiceKey, int] = {}
        self._written: dict[int, list[int]] = {}  # row → ring as last written
        self._flags: dict[ServiceKey, int] = {}  # flags as last written
        self._warned: set[ServiceKey] = set()
        self._base: list[int] | None = None  # per-CPU flows created in XDP when the table was last counted

    def sync(self, services: Mapping[ServiceKey, ServiceState], flags_reset: bool = False) -> None:
        """Give eligible services a row and write their rings where they changed, free the rows of
        the others, then set every service's flags. `flags_reset`: the caller just wrote every
        service's entry with service_flags() (the daemon's full resync), so none of the remembered
        flags hold: those are."""
        if flags_reset:
            self._flags = {key: service_flags(state.scheduler) for key, state in services.items()}
        wanted = {k: s for k, s in services.items() if self.enabled and eligible(s)}
        for key in [k for k in self.rows if k not in wanted]:
            freed = self.rows.pop(key)
            if key in services:  # the flags first: no new flow may read the row while it changes
                self._set_flags(key, services[key], 0)
            self.maps.clear_ring(freed)
            self._written.pop(freed, None)
        for key, state in wanted.items():
            row = self.rows.get(key)
            if row is None:
                row = self._free_row()
                if row is None:
                    if key not in self._warned:
                        log.warning("%s: all %d in-kernel hash rows taken; its flows go through the daemon",
                                    key, self.max_rows)
                        self._warned.add(key)
                    continue
                self.rows[key] = row
            ring = ring_of(state)
            if self._written.get(row) != ring:
                self.maps.set_ring(row, ring)
                self._written[row] = ring
        for key, state in services.items():
            row = self.rows.get(key)
            flags = 0
            if row is not None and not self.paused:
                flags = hashed_flags(row, state.scheduler.port_flag in state.service.sched_flags)
            self._set_flags(key, state, flags)
        for key in [k for k in self._flags if k not in services]:
            del self._flags[key]

    def decided_in(self, key: ServiceKey, state: ServiceState) -> str:
        """Where the service's first packets are decided now: "xdp" or "daemon (why)"."""
        why = ("--sched-in daemon" if not self.enabled else why_daemon(state) or
               ("flow table full" if self.paused else None) or
               (None if key in self.rows else f"all {self.max_rows} XDP rows taken"))
        return "xdp" if why is None else f"daemon ({why})"

    def set_paused(self, paused: bool, services: Mapping[ServiceKey, ServiceState]) -> None:
        """Table pressure on or off: clear or restore every service's in-kernel bit."""
        if paused != self.paused:
            self.paused = paused
            log.info("flow table %s: in-kernel scheduling %s", "full" if paused else "has room again",
                     "paused" if paused else "resumed")
            self.sync(services)

    def note_sweep(self) -> None:
        """The flow table was just counted: flows XDP creates from now on are not in that count."""
        self._base = [created for created, _ in self.maps.read_hash_budget()]

    def grant(self, room: int) -> None:
        """Let XDP create up to `room` flows (the table's limit minus its count at the last sweep,
        less what the daemon installed since) beyond what it had created at that sweep, split
        evenly over the CPUs (each CPU counts its own: no atomics on the packet path)."""
        if self._base is None:
            self.note_sweep()
        assert self._base is not None
        share = max(0, room) // len(self._base)
        if 0 < room < len(self._base):
            share = 1  # a little over the room: the limit keeps a margin below MAX_FLOWS
        self.maps.grant_hash_budget([created + share for created in self._base])

    def _set_flags(self, key: ServiceKey, state: ServiceState, hashing: int) -> None:
        """Make the service's hashing bits `hashing`, keeping its other bits as last written (a
        service not seen before gets service_flags())."""
        flags = (self._flags.get(key, service_flags(state.scheduler)) & ~HASH_BITS) | hashing
        if self._flags.get(key) == flags:
            return
        self.maps.set_service(key, ServiceEntry(state.service_id, flags))
        self._flags[key] = flags

    def _free_row(self) -> int | None:
        taken = set(self.rows.values())
        return next((row for row in range(self.max_rows) if row not in taken), None)
