"""The daemon's view of the flow table XDP forwards from: expiry, counts, removal, and its size limit.

XDP stamps flows; this module reads them back once a tick, expires the idle ones by IPVS's timeouts,
counts active and inactive connections per real (and writes the counts into `real_conns`, which XDP
keeps between sweeps for the least-connection schedulers it runs), removes the flows of reals that went
away, lists the connection table for `-L -c`, and keeps new flows from crowding established ones out
of the LRU.
"""

from __future__ import annotations

import logging
import os
import time
import typing
from collections.abc import Callable, Collection
from typing import Any

from lb.balancer.lifetime import REPLY_BITS, Timeouts, phase_of
from lb.daemon.sweep import conns_to_write, plan_sweep
from lb.datapath.maps import DatapathMaps
from lb.model import FlowKey, Forwarding, Protocol, RealServer
from lb.tables import FlowEntry, ReverseEntry

log = logging.getLogger("lbxdp")

HALF_OPEN_GRACE_NS = 1_000_000_000  # a half-open flow younger than this is not pruned under pressure
PRUNE_INTERVAL = 1.0  # seconds between whole-table prunes while the table is full


class XdpCreations(typing.Protocol):
    """What XDP created since the book last counted the table (lb.daemon.kernelsched)."""

    def created_since_count(self) -> int: ...

    def note_sweep(self) -> None: ...


class FlowBook:
    def __init__(self, maps: DatapathMaps, max_flows: int, real_of: Callable[[int], RealServer | None]) -> None:
        self.maps = maps
        self.max_flows = max_flows
        self.real_of = real_of  # real id → the real (configured or draining), None when unknown
        self.count = 0  # flows in the table as of the last sweep, plus those installed since
        self.pruned = 0  # half-open flows removed under pressure, since start
        self._last_prune = float("-inf")
        # BPF's LRU keeps part of its free list per CPU and starts evicting before max_entries,
        # so the daemon lets the table hold less, by a margin.
        self.limit = max(1, min(int(max_flows * 0.9), max_flows - 256 * (os.cpu_count() or 1)))
        # XDP creates flows too, between two counts, up to the room granted it (xdp_room): near the
        # limit the book asks how many it did, or it would fill the table past it and the LRU would
        # evict established flows (a SYN flood against a service XDP decides).
        self.xdp: XdpCreations | None = None
        self.xdp_room = 0

    def reverse_key(self, flow: FlowKey, real_id: int) -> FlowKey | None:
        real = self.real_of(real_id)
        if real is None or real.forwarding is not Forwarding.MASQ:
            return None
        return FlowKey(flow.proto, real.address, real.port, flow.saddr, flow.sport)

    def _state(
        self, flow: FlowKey, entry: FlowEntry, reverse: dict[FlowKey, ReverseEntry]
    ) -> tuple[int, int]:
        """(last seen ns, TCP events seen) over both directions of a flow."""
        rkey = self.reverse_key(flow, entry.real_id)
        rev = reverse.get(rkey) if rkey is not None else None
        last = max(entry.last_seen_ns, rev.last_seen_ns if rev else 0)
        seen = int(entry.tcp_seen) | (int(rev.tcp_seen) & REPLY_BITS if rev else 0)
        return last, seen

    def sweep(
        self, timeouts: Timeouts, keep_service_ids: Collection[int] = ()
    ) -> tuple[dict[int, tuple[int, int]], list[tuple[FlowKey, int]]]:
        """Expire idle flows; returns (active, inactive) per real id and the open flows, with their
        real ids, of the services `keep_service_ids` (the persistent ones: open flows keep their
        templates alive).
        The table is judged as arrays (lb.daemon.sweep), not entry by entry."""
        plan = plan_sweep(self.maps.read_flow_records(), time.monotonic_ns(), timeouts, keep_service_ids)
        # Reverse entries first: a forward entry without its way back is harmless for an instant
        # (XDP passes the reply up), a reverse entry without its flow is not.
        self.maps.delete_records("reverse", plan.expired_reverse)
        self.maps.delete_records("flows", plan.expired_flows)
        self.count = plan.open_count
        # XDP counted what it saw since the last sweep; the table says what it could not (expiries, a
        # real's FIN on a masqueraded reply, flows removed here or evicted): the count is the truth.
        for real_id, (active, inactive) in conns_to_write(plan.counts, self.maps.conns_table()).items():
            self.maps.set_conns(real_id, active, inactive)
        return plan.counts, plan.open_flows

    def remove(self, flow: FlowKey, real_id: int) -> None:
        rkey = self.reverse_key(flow, real_id)
        self.maps.delete_flow(flow)
        if rkey is not None:
            self.maps.delete_reverse(rkey)

    def expire_real(self, real_id: int) -> None:
        """Remove every flow to a real that is gone or dead, so its clients reconnect elsewhere."""
        flows, reverse = self.maps.read_flows()
        for flow, entry in flows.items():
            if entry.real_id == real_id:
                self.maps.delete_flow(flow)
        for rkey, rentry in reverse.items():
            if rentry.real_id == real_id:
                self.maps.delete_reverse(rkey)

    def full(self) -> bool:
        """True when a new flow must be refused; prunes old half-open flows first, at most once a
        second: a prune reads the whole table, and a SYN flood against a full table must cost each
        refused SYN nothing more than this comparison."""
        if self.count + self.xdp_room < self.limit or self._counted() < self.limit:
            return False
        now = time.monotonic()
        if now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            self._prune_half_open()
        return self._counted() >= self.limit

    def _counted(self) -> int:
        """The flows in the table now: the book's count and what XDP created since it."""
        return self.count + (self.xdp.created_since_count() if self.xdp is not None else 0)

    def _prune_half_open(self) -> int:
        """Under pressure, half-open flows (no handshake seen) older than a second go first."""
        now_ns = time.monotonic_ns()
        flows, _ = self.maps.read_flows()
        pruned = 0
        for flow, entry in flows.items():
            if flow.proto is Protocol.TCP and not entry.tcp_seen and now_ns - entry.last_seen_ns > HALF_OPEN_GRACE_NS:
                self.remove(flow, entry.real_id)
                pruned += 1
        self.count = len(flows) - pruned
        if self.xdp is not None:
            self.xdp.note_sweep()  # XDP's flows are in this count
        self.pruned += pruned
        return pruned

    def connections(self, timeouts: Timeouts) -> list[dict[str, Any]]:
        """Rows of `-L -c`: protocol, seconds to expiry, state, client, virtual and real address."""
        rows = []
        now_ns = time.monotonic_ns()
        flows, reverse = self.maps.read_flows()
        for flow, entry in flows.items():
            real = self.real_of(entry.real_id)
            if real is None:
                continue
            last, seen = self._state(flow, entry, reverse)
            phase = phase_of(flow.proto, seen)
            expire = max(0, timeouts.for_phase(phase) - (now_ns - last) / 1e9)
            rows.append(
                {
                    "proto": flow.proto.name, "expire": int(expire), "state": phase.value,
                    "saddr": str(flow.saddr), "sport": flow.sport, "vaddr": str(flow.daddr), "vport": flow.dport,
                    "daddr": str(real.address), "dport": real.port,
                }
            )
        return rows
