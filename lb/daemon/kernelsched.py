"""XDP decides first packets: which services it decides, and the rows it decides them from.

A service whose scheduler has an XDP kind (lb.sched.xdpkind; `Scheduler.xdp_kind`) gets a row of its
kind's map (hash_rings for mh, sched_seqs for rr/wrr, bucket_tables for sh/dh, sched_dests for the
least-connection family), filled with the scheduler's `xdp_row()`, and its `service_info` names the
kind and the row: XDP then picks the real of a first packet and creates the flow without asking user
space (schedule_new() in bpf/lb_kern.c). Every real's weight and availability go to `real_sched`. A
service XDP does not decide keeps SCHED_DAEMON, and its first packets go up through NFQUEUE, where
Python decides (`why_not()` says why, and `lbxdp -L` / `status` show it).

What stays with the daemon: schedulers without an XDP kind (plugins), a state that does not fit its
map (a wrr cycle past SEQ_MAX, more reals than WALK_MAX), reals with connection thresholds (the
overload hysteresis is the daemon's), port-0 services, the operator's `--sched-in daemon`, and every
service while the flow table is at its limit (FlowBook), so that new flows meet the first-packet
path's refusal policy, which protects established flows (docs/daemon.md). Persistence is not a
reason: XDP and Python share the `templates` map (lb.datapath.templatemaps). Between two sweeps XDP may
create at most the room the last sweep left (`hash_budget`, granted per CPU), so a SYN flood cannot
fill the table faster than the daemon notices.

rr/wrr's cursor is shared: XDP advances it for the flows it decides, Python for those it decides
(a packet XDP passed up, e.g. past the budget). Before Python schedules or rebuilds such a service it
reads the cursor (`before()`), and afterwards writes its position back (`after()`), so both walk one
cycle. A flow XDP takes between the read and the write is given a position Python gives again: one
flow in that instant may break the exact order, never affinity.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace

from lb.balancer.engine import ServiceState
from lb.daemon.flows import FlowBook
from lb.datapath.maps import DatapathMaps
from lb.model import ServiceKey
from lb.sched.cycle import CycleScheduler
from lb.sched.xdpkind import SEQ_MAX, WALK_MAX, XdpKind
from lb.tables import RING_SIZE, SVC_F_FALLBACK, SVC_F_HASH_PORT, RealSched, ServiceEntry, service_flags

log = logging.getLogger("lbxdp")

ENV_VAR = "LBXDP_KERNEL_HASH"  # "0" (or "off", "no"): every first packet goes through NFQUEUE

# Why XDP does not decide a service's first packets (why_not()); the daemon does then.
NOT_IN_XDP_SWITCH = "--sched-in daemon"
NOT_IN_XDP_PLUGIN = "scheduler has no XDP form"
NOT_IN_XDP_PORT0 = "port-0 service"
NOT_IN_XDP_THRESHOLDS = "connection thresholds set"
NOT_IN_XDP_BOUND = "past XDP's bound"
# ... and which bound, by the map the scheduler's row would go to
BOUNDS = {
    XdpKind.SEQ: f"cycle longer than {SEQ_MAX} (SEQ_MAX)",
    XdpKind.MH: f"Maglev table not of {RING_SIZE} slots",
    XdpKind.LC: f"more than {WALK_MAX} reals (WALK_MAX)",
}
NOT_IN_XDP_ROWS = "no free row"
NOT_IN_XDP_FULL = "flow table full"


def enabled_by_env(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV_VAR, "1").strip().lower() not in ("0", "off", "no", "false")


def why_not(state: ServiceState) -> str | None:
    """Why XDP may not decide this service's first packets, whatever the daemon's switches; None
    when it may (the module docstring says why these rules)."""
    service = state.service
    if state.scheduler.xdp_kind is XdpKind.DAEMON:
        return NOT_IN_XDP_PLUGIN
    if service.key.port == 0:
        return NOT_IN_XDP_PORT0  # port-0 services are not in the fast path at all
    if any(r.real.upper_threshold or r.real.lower_threshold for r in state.reals.values()):
        return NOT_IN_XDP_THRESHOLDS
    return None


def row_of(state: ServiceState) -> list[int] | None:
    """The service's scheduler state as its XDP row (real ids), None when it does not fit."""
    return state.scheduler.xdp_row(state.dests, [r.real_id for r in state.reals.values()])


def base_entry(state: ServiceState) -> ServiceEntry:
    """The service's entry while the daemon decides its first packets: its own flags (what its
    scheduler's flags ask of a hash, the mid-flow drop) and persistence."""
    scheduler, service = state.scheduler, state.service
    flags = service_flags(scheduler)
    if scheduler.port_flag is not None and scheduler.port_flag in service.sched_flags:
        flags |= SVC_F_HASH_PORT
    if scheduler.fallback_flag is not None and scheduler.fallback_flag in service.sched_flags:
        flags |= SVC_F_FALLBACK
    return ServiceEntry(state.service_id, flags, XdpKind.DAEMON, 0, service.persistence or 0, int(service.netmask))


class KernelSched:
    """Keeps the scheduler rows, real_sched and the services' entries in step with the balancer."""

    def __init__(self, maps: DatapathMaps, enabled: bool = True) -> None:
        self.maps = maps
        self.enabled = enabled  # False: `--sched-in daemon`, every first packet goes up
        self.paused = False  # the flow table is at its limit: no service is decided in XDP
        self.rows: dict[ServiceKey, tuple[XdpKind, int]] = {}
        self.reasons: dict[ServiceKey, str] = {}  # why the daemon decides a service, for -L and status
        self._written: dict[tuple[str, int], list[int]] = {}  # (map, row) → row as last written
        self._cursors: dict[int, int] = {}  # sched_seqs row → cursor as last written or read
        self._entries: dict[ServiceKey, ServiceEntry] = {}  # entries as last written
        self._real_sched: dict[int, RealSched] = {}
        self._warned: set[ServiceKey] = set()
        self._base: list[int] | None = None  # per-CPU flows created in XDP when the table was last counted

    @property
    def row_limits(self) -> dict[str, int]:
        return {
            "hash_rings": self.maps.max_hashed_services,
            "sched_seqs": self.maps.max_sched_rows,
            "bucket_tables": self.maps.max_sched_rows,
            "sched_dests": self.maps.max_sched_rows,
        }

    def decided_in_xdp(self, key: ServiceKey) -> bool:
        return key in self.rows and not self.paused

    def sync(self, services: Mapping[ServiceKey, ServiceState], rewrite: bool = False) -> None:
        """Give the services XDP may decide a row and write it where it changed, free the rows of the
        others, write every real's real_sched, then every service's entry. `rewrite`: the caller just
        wrote every entry itself (the daemon's full resync), so none of the remembered ones hold."""
        if rewrite:
            self._entries.clear()
        wanted: dict[ServiceKey, list[int]] = {}
        self.reasons = {}
        for key, state in services.items():
            reason = self._reason(state)
            row = row_of(state) if reason is None else None
            if reason is None and row is None:
                kind = state.scheduler.xdp_kind
                bound = BOUNDS.get(XdpKind.LC if kind.map_name == "sched_dests" else kind)
                reason = f"{NOT_IN_XDP_BOUND}: {bound}" if bound else NOT_IN_XDP_BOUND
            if reason is None and row is not None:
                wanted[key] = row
            else:
                self.reasons[key] = reason or NOT_IN_XDP_BOUND
        for key in [k for k in self.rows if k not in wanted or self.rows[k][0] is not services[k].scheduler.xdp_kind]:
            kind, freed = self.rows.pop(key)
            if key in services:  # the entry first: no new flow may read the row while it changes
                self._write_entry(key, base_entry(services[key]))
            self._clear(kind, freed)
        for state in services.values():
            for rstate in state.reals.values():
                sched = RealSched(rstate.dest.weight, rstate.dest.available)
                if self._real_sched.get(rstate.real_id) != sched:
                    self.maps.set_real_sched(rstate.real_id, sched)
                    self._real_sched[rstate.real_id] = sched
        for key, row_ids in wanted.items():
            state = services[key]
            kind = state.scheduler.xdp_kind
            placed = self.rows.get(key)
            if placed is None:
                free = self._free_row(kind)
                if free is None:
                    if key not in self._warned:
                        log.warning("%s: all %d rows of %s taken; its first packets go through the daemon",
                                    key, self.row_limits[_map(kind)], _map(kind))
                        self._warned.add(key)
                    self.reasons[key] = NOT_IN_XDP_ROWS
                    continue
                placed = self.rows[key] = (kind, free)
            self._write_row(state, placed[1], row_ids)
        for key, state in services.items():
            entry = base_entry(state)
            placed = self.rows.get(key)
            if placed is not None and not self.paused:
                entry = replace(entry, sched=placed[0], row=placed[1])
            elif self.paused and key not in self.reasons:
                self.reasons[key] = NOT_IN_XDP_FULL
            self._write_entry(key, entry)
        for key in [k for k in self._entries if k not in services]:
            del self._entries[key]

    def before(self, state: ServiceState) -> None:
        """Python is about to schedule or rebuild this service: take over XDP's rr/wrr position."""
        placed = self.rows.get(state.service.key)
        if placed is None or placed[0] is not XdpKind.SEQ or not isinstance(state.scheduler, CycleScheduler):
            return
        cursor = self.maps.read_cursor(placed[1])
        if cursor != self._cursors.get(placed[1]):
            state.scheduler.seek(cursor)
            self._cursors[placed[1]] = cursor

    def after(self, state: ServiceState) -> None:
        """Python scheduled or rebuilt this service: XDP continues from its position (and cycle)."""
        placed = self.rows.get(state.service.key)
        if placed is None or placed[0] is not XdpKind.SEQ:
            return
        row_ids = row_of(state)
        if row_ids is not None:
            self._write_row(state, placed[1], row_ids)

    def set_paused(self, paused: bool, services: Mapping[ServiceKey, ServiceState]) -> None:
        """Table pressure on or off: every service's entry to the daemon, or back to its row."""
        if paused != self.paused:
            self.paused = paused
            log.info("flow table %s: scheduling in XDP %s", "full" if paused else "has room again",
                     "paused" if paused else "resumed")
            self.sync(services)

    def note_sweep(self) -> None:
        """The flow table was just counted: flows XDP creates from now on are not in that count."""
        self._base = [created for created, _ in self.maps.read_hash_budget()]

    def created_since_count(self) -> int:
        """Flows XDP created since the table was last counted (note_sweep())."""
        if self._base is None:
            return 0
        return max(0, sum(created for created, _ in self.maps.read_hash_budget()) - sum(self._base))

    def grant(self, room: int, book: FlowBook | None = None) -> None:
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
        if book is not None:  # the book keeps this room for XDP, and asks what it used near its limit
            book.xdp, book.xdp_room = self, share * len(self._base)

    # -- writing ---------------------------------------------------------------------------------

    def _reason(self, state: ServiceState) -> str | None:
        if not self.enabled:
            return NOT_IN_XDP_SWITCH
        return why_not(state)

    def _write_row(self, state: ServiceState, row: int, row_ids: list[int]) -> None:
        kind = state.scheduler.xdp_kind
        name = _map(kind)
        changed = self._written.get((name, row)) != row_ids
        if changed:
            if kind is XdpKind.MH:
                self.maps.set_ring(row, row_ids)
            elif kind is XdpKind.SEQ:
                self.maps.set_seq(row, row_ids)
            elif kind in (XdpKind.SH, XdpKind.DH):
                self.maps.set_buckets(row, row_ids)
            else:
                self.maps.set_walk(row, row_ids)
            self._written[(name, row)] = row_ids
        if kind is XdpKind.SEQ and isinstance(state.scheduler, CycleScheduler):
            position = state.scheduler.position
            if changed or self._cursors.get(row) != position:
                self.maps.set_cursor(row, position)
                self._cursors[row] = position

    def _clear(self, kind: XdpKind, row: int) -> None:
        name = _map(kind)
        if kind is XdpKind.MH:
            self.maps.clear_ring(row)
        elif kind is XdpKind.SEQ:
            self.maps.set_seq(row, [])
            self._cursors.pop(row, None)
        elif kind in (XdpKind.SH, XdpKind.DH):
            self.maps.set_buckets(row, [0] * 256)
        else:
            self.maps.set_walk(row, [])
        self._written.pop((name, row), None)

    def _write_entry(self, key: ServiceKey, entry: ServiceEntry) -> None:
        if self._entries.get(key) != entry:
            self.maps.set_service(key, entry)
            self._entries[key] = entry

    def _free_row(self, kind: XdpKind) -> int | None:
        name = _map(kind)
        taken = {row for k, row in self.rows.values() if _map(k) == name}
        return next((row for row in range(self.row_limits[name]) if row not in taken), None)


def _map(kind: XdpKind) -> str:
    name = kind.map_name
    assert name is not None
    return name
