"""The once-a-tick sweep of the flow table, on whole arrays: which flows expired, and how many
connections each real holds.

The daemon reads the `flows` and `reverse` maps as record arrays (lb.datapath.records) and decides
here, without a Python object per entry (a per-entry loop over 30k flows held the daemon, and
every first packet waiting for it, for a large part of each tick). The rules are lb.balancer.lifetime's,
applied per (protocol, TCP events) class; the
per-entry reading of them (`FlowBook._state`, `is_expired`, `phase_of`) is the reference the tests
hold this module to.

A masqueraded flow's replies stamp its reverse entry, so a flow's idle time is taken over both, and
so are its FIN and RST; ESTABLISHED only from the client's side (lifetime.REPLY_BITS says why). The
two are paired by (client address, client port, protocol, real id): the
reverse key is (real address, real port, client address, client port) and a real id names one
real of one service, so the pair is unique in either map.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import numpy as np

from lb.balancer.lifetime import REPLY_BITS, Timeouts, phase_of
from lb.datapath.records import FlowRecords
from lb.model import FlowKey, Protocol

_SEEN_BITS = 8  # TCP event bits the phase depends on (lifetime.FLOW_F_*): 3 bits


@dataclass
class SweepPlan:
    """What one sweep decided: entries to delete (raw key records), connections per real id,
    and the still-open flows of the services the caller asked about."""

    expired_flows: np.ndarray  # FLOW_KEY records
    expired_reverse: np.ndarray  # FLOW_KEY records: those of expired flows, and orphans past their time
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)  # real id → (active, inactive)
    open_flows: list[tuple[FlowKey, int]] = field(default_factory=list)  # with each flow's real id
    open_count: int = 0


def phase_tables(timeouts: Timeouts) -> tuple[np.ndarray, np.ndarray]:
    """Timeout (s) and active flag by class: index = is_udp × 8 + TCP event bits."""
    limit = np.empty(2 * _SEEN_BITS, np.float64)
    active = np.empty(2 * _SEEN_BITS, bool)
    for is_udp, proto in ((0, Protocol.TCP), (1, Protocol.UDP)):
        for bits in range(_SEEN_BITS):
            phase = phase_of(proto, bits)
            limit[is_udp * _SEEN_BITS + bits] = timeouts.for_phase(phase)
            active[is_udp * _SEEN_BITS + bits] = phase.active
    return limit, active


def _client_of(addr: np.ndarray, port: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """(address, port, protocol) as one u64, 56 bits used."""
    client: np.ndarray = (addr.astype(np.uint64) << np.uint64(24)) | (port.astype(np.uint64) << np.uint64(8)) | proto
    return client


def match_reverse(records: FlowRecords) -> np.ndarray:
    """For each flow, the row of its reverse entry, or -1. Both sets are sorted together by
    (client, real id): a flow and its reverse entry end up side by side."""
    fk, fv, rk, rv = records.flow_keys, records.flow_values, records.reverse_keys, records.reverse_values
    match = np.full(len(fk), -1, np.int64)
    if len(rk) == 0 or len(fk) == 0:
        return match
    client = np.concatenate([_client_of(fk["saddr"], fk["sport"], fk["proto"]),
                             _client_of(rk["daddr"], rk["dport"], rk["proto"])])
    real = np.concatenate([fv["real_id"], rv["real_id"]])
    order = np.lexsort((real, client))
    client, real = client[order], real[order]
    at = np.nonzero((client[:-1] == client[1:]) & (real[:-1] == real[1:]))[0]
    # each key is unique within its map, so an equal neighbour is the other map's entry
    first, second = order[at], order[at + 1]
    flow_row, reverse_row = np.minimum(first, second), np.maximum(first, second) - len(fk)
    match[flow_row] = reverse_row
    return match


def _expired(now_ns: int, last: np.ndarray, proto: np.ndarray, seen: np.ndarray,
             limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expired mask, class index) — idle seconds computed as lifetime.is_expired does, in floats."""
    cls = (proto == int(Protocol.UDP)).astype(np.int64) * _SEEN_BITS + (seen & (_SEEN_BITS - 1))
    idle = (np.int64(now_ns) - last.astype(np.int64)).astype(np.float64) / 1e9
    return idle > limit[cls], cls


def plan_sweep(records: FlowRecords, now_ns: int, timeouts: Timeouts,
               keep_service_ids: Collection[int] = ()) -> SweepPlan:
    """Expire idle flows (with their reverse entries), count the rest per real, and list the open
    flows of `keep_service_ids` with their real ids (persistent services: an open flow keeps the
    template that placed it on that real alive)."""
    fk, fv, rk, rv = records.flow_keys, records.flow_values, records.reverse_keys, records.reverse_values
    limit, active_class = phase_tables(timeouts)
    rev_row = match_reverse(records)
    has_rev = rev_row >= 0
    matched = rev_row[has_rev]
    last = fv["last_seen_ns"].copy()
    seen = fv["tcp_seen"].copy()
    last[has_rev] = np.maximum(last[has_rev], rv["last_seen_ns"][matched])
    seen[has_rev] |= rv["tcp_seen"][matched] & np.uint32(REPLY_BITS)
    expired, cls = _expired(now_ns, last, fk["proto"], seen, limit)

    # A reverse entry whose flow is gone (evicted by the LRU, or deleted between the two reads)
    # would rewrite replies to a client that is no longer there: it goes when its own time is up.
    orphan = np.ones(len(rk), bool)
    orphan[matched] = False
    orphan_expired, _ = _expired(now_ns, rv["last_seen_ns"], rk["proto"], rv["tcp_seen"], limit)
    # One mask, not np.concatenate: numpy 2 concatenates structured arrays into native byte order,
    # and keys whose bytes are swapped delete nothing (the soak found every reverse entry left over).
    gone = orphan & orphan_expired
    gone[rev_row[expired & has_rev]] = True
    expired_reverse = rk[gone]

    alive = ~expired
    real_ids = fv["real_id"][alive].astype(np.int64)
    is_active = active_class[cls[alive]]
    counts: dict[int, tuple[int, int]] = {}
    if len(real_ids):
        size = int(real_ids.max()) + 1
        act = np.bincount(real_ids, weights=is_active, minlength=size).astype(np.int64)
        total = np.bincount(real_ids, minlength=size)
        for rid in np.nonzero(total)[0].tolist():
            counts[rid] = (int(act[rid]), int(total[rid] - act[rid]))
    open_flows: list[tuple[FlowKey, int]] = []
    if keep_service_ids:
        keep = alive & np.isin(fv["service_id"], np.fromiter(keep_service_ids, np.int64))
        open_flows = [(flow_key_of(row), int(rid)) for row, rid in zip(fk[keep], fv["real_id"][keep], strict=True)]
    return SweepPlan(fk[expired], expired_reverse, counts, open_flows, int(alive.sum()))


def conns_to_write(counts: dict[int, tuple[int, int]],
                   current: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """The `real_conns` entries a sweep rewrites: (active, inactive) per real id as this sweep
    counted them, for every real whose entry differs from it now, and (0, 0) for a real no flow
    names any more (its last flow expired, or XDP counted one the LRU evicted before any sweep saw
    it). `current` is the map as read after the count (entries other than (0, 0)); an entry that
    already holds the count is left alone, so an atomic add XDP made meanwhile is not overwritten
    for nothing. Counts are clamped to the map's __s32."""
    top = 2**31 - 1
    out: dict[int, tuple[int, int]] = {}
    for rid in counts.keys() | current.keys():
        active, inactive = counts.get(rid, (0, 0))
        want = (min(active, top), min(inactive, top))
        if current.get(rid, (0, 0)) != want:
            out[rid] = want
    return out


def flow_key_of(row: np.void) -> FlowKey:
    return FlowKey(Protocol(int(row["proto"])), IPv4Address(int(row["saddr"])), int(row["sport"]),
                   IPv4Address(int(row["daddr"])), int(row["dport"]))
