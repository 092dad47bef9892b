"""Writing a `Tables` into the datapath's BPF maps, and reading maps and counters back.

The maps are those of bpf/lb_maps.h, handled through their fds with the plain bpf(2) map commands
(via libbcc), so the same code serves a freshly loaded program (`DatapathMaps.from_bpf`) and a
program whose maps are pinned (`DatapathMaps.open_pinned`, e.g. a CLI inspecting a running daemon).
Entries are converted with the ctypes mirror in lb.datapath.structs.
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bcc.libbcc import lib as _lib  # type: ignore[import-not-found]
from bcc.utils import get_possible_cpus  # type: ignore[import-not-found]

from lb.datapath import structs as S
from lb.datapath.records import FlowRecords
from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
from lb.rewrite.verdicts import Reason
from lb.tables import RING_SIZE, FlowEntry, RealEntry, ReverseEntry, ServiceEntry, Tables, TcpSeen, Traffic, ring_row

_FWD_TO_C = {Forwarding.MASQ: S.FWD_MASQ, Forwarding.ROUTE: S.FWD_ROUTE, Forwarding.TUNNEL: S.FWD_TUNNEL}
_FWD_FROM_C = {v: k for k, v in _FWD_TO_C.items()}


class MapError(RuntimeError):
    """A map operation the kernel refused; the message names the map, the key and the errno."""


class DatapathMaps:
    """The datapath maps of one loaded (or pinned) program."""

    def __init__(self, fds: Mapping[str, int], max_reals: int, max_tx_ports: int) -> None:
        missing = set(S.MAP_TYPES) - set(fds)
        if missing:
            raise MapError(f"maps missing: {', '.join(sorted(missing))}")
        self._fds = dict(fds)
        self.max_reals = max_reals
        self.max_tx_ports = max_tx_ports
        self.max_hashed_services = 16  # rows of hash_rings (loader sets its Tunables' figure)
        self._ncpus = len(get_possible_cpus())

    @classmethod
    def from_bpf(cls, bpf: Any, max_reals: int, max_tx_ports: int) -> DatapathMaps:
        return cls({name: bpf[name.encode()].map_fd for name in S.MAP_TYPES}, max_reals, max_tx_ports)

    @classmethod
    def open_pinned(cls, pin_dir: Path, max_reals: int = 4096, max_tx_ports: int = 4096) -> DatapathMaps:
        fds = {}
        for name in S.MAP_TYPES:
            fd = _lib.bpf_obj_get(str(pin_dir / name).encode())
            if fd < 0:
                raise MapError(f"cannot open pinned map {pin_dir / name}: {os.strerror(ctypes.get_errno())}")
            fds[name] = fd
        return cls(fds, max_reals, max_tx_ports)

    # --- writing -------------------------------------------------------------------------------

    def write(self, tables: Tables) -> None:
        """Make the maps hold exactly `tables` (services, reals, flows, reverse, config, tx_ports).

        Counters are left alone (reset_counters()). Flows are written with the last_seen/tcp_seen
        the Tables carry; use it for tests, restores and full syncs, and the single-entry methods
        below on the daemon's hot paths. The cached next hops are flushed (set_tunnel_source() does
        it), so the next packets ask bpf_fib_lookup() again, exactly as the rewrite model does.
        """
        current = self.read()
        for row in current.rings.keys() - tables.rings.keys():
            self.clear_ring(row)
        for row, ring in tables.rings.items():  # before the services whose flags name them
            if current.rings.get(row) != ring:
                self.set_ring(row, ring)
        for key in current.services.keys() - tables.services.keys():
            self.delete_service(key)
        for real_id in current.reals.keys() - tables.reals.keys():
            self.delete_real(real_id)
        for flow in current.flows.keys() - tables.flows.keys():
            self.delete_flow(flow)
        for flow in current.reverse.keys() - tables.reverse.keys():
            self.delete_reverse(flow)
        for ifindex in current.tx_ports - tables.tx_ports:
            self.delete_tx_port(ifindex)
        for key, service in tables.services.items():
            self.set_service(key, service)
        for real_id, real in tables.reals.items():
            self.set_real(real_id, real)
        for flow, entry in tables.flows.items():
            self.set_flow(flow, entry)
        for flow, rev in tables.reverse.items():
            self.set_reverse(flow, rev)
        for ifindex in tables.tx_ports:
            self.add_tx_port(ifindex)
        self.set_tunnel_source(tables.tunnel_source)
        unlimited = tables.hash_budget is None
        self.grant_hash_budget([_NO_LIMIT if unlimited else tables.hash_budget] * self._ncpus, reset=True)

    def set_service(self, key: ServiceKey, entry: ServiceEntry) -> None:
        self._update("services", _service_key(key), S.ServiceInfoC(entry.service_id, entry.flags))

    def set_ring(self, row: int, real_ids: list[int]) -> None:
        """Fill Maglev ring `row` of hash_rings: slot → real id, 0 where the first-packet path decides.
        A ring is one map value (struct mh_ring), so this is one update: 1.4 ms here, most of it
        turning the list into an array (an array map of RING_SIZE entries a ring took 30 ms with
        BPF_MAP_UPDATE_BATCH, 0.4 s entry by entry, and twice the memory)."""
        self._check_row(row)
        if len(real_ids) != RING_SIZE:
            raise MapError(f"a ring has {RING_SIZE} slots, not {len(real_ids)}")
        value = S.MhRingC.from_buffer(array.array("I", real_ids))
        self._update("hash_rings", ctypes.c_uint32(row), value)

    def clear_ring(self, row: int) -> None:
        """Every slot of `row` 0: no flow of it is scheduled in XDP any more."""
        self.set_ring(row, [0] * RING_SIZE)

    def read_ring(self, row: int) -> list[int]:
        """Ring `row` of hash_rings, slot by slot."""
        self._check_row(row)
        value = self._lookup("hash_rings", ctypes.c_uint32(row))
        if value is None:
            raise MapError(f"hash_rings: lookup of row {row} failed: {os.strerror(ctypes.get_errno())}")
        return list(value.real_ids)

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self.max_hashed_services:
            raise MapError(f"ring row {row} does not fit hash_rings (MAX_HASHED_SERVICES={self.max_hashed_services})")

    def read_hash_budget(self) -> list[tuple[int, int]]:
        """(created, allowed) of each CPU's hash_budget: flows it created in XDP, and its limit."""
        return [(c.created, c.allowed) for c in self._percpu("hash_budget", 0)]

    def grant_hash_budget(self, allowed: list[int], reset: bool = False) -> None:
        """Let CPU i create flows in XDP while its count is below allowed[i]. The counts are kept
        (`reset`: zeroed); one XDP may add between the read and the write is lost, which only
        grants that many flows more."""
        values = (S.HashBudgetC * self._ncpus)()
        current = [(0, 0)] * self._ncpus if reset else self.read_hash_budget()
        for i, ((created, _), limit) in enumerate(zip(current, allowed, strict=True)):
            values[i].created, values[i].allowed = created, limit
        self._update("hash_budget", ctypes.c_uint32(0), values)

    def hash_conns(self, real_ids: range | list[int]) -> dict[int, int]:
        """Flows XDP scheduled itself, per real id (summed over CPUs): part of ipvsadm's Conns."""
        return {rid: sum(self._percpu("hash_conns", rid)) for rid in real_ids}

    def reset_hash_conns(self, real_ids: range | list[int]) -> None:
        for rid in real_ids:
            self._set_percpu("hash_conns", rid, ctypes.c_uint64)

    def delete_service(self, key: ServiceKey) -> None:
        self._delete("services", _service_key(key))

    def set_real(self, real_id: int, real: RealEntry) -> None:
        value = S.RealInfoC(S.be32(real.address), S.be16(real.port), _FWD_TO_C[real.forwarding], 0)
        self._update("reals", ctypes.c_uint32(real_id), value)

    def delete_real(self, real_id: int) -> None:
        """Empty the slot (an array entry cannot be deleted); flows to it then PASS (PASS_NO_REAL)."""
        self._update("reals", ctypes.c_uint32(real_id), S.RealInfoC())

    # The flow entries are written and read as packed bytes (the struct layouts below), not ctypes
    # structures: the first-packet path does this for every new flow, and building a ctypes key
    # field by field cost more than the bpf(2) call itself.

    def set_flow(self, flow: FlowKey, entry: FlowEntry) -> None:
        value = _FLOW_STATE.pack(entry.last_seen_ns, entry.real_id, entry.service_id, int(entry.tcp_seen), 0)
        self._update_raw("flows", _flow_key(flow), value)

    def delete_flow(self, flow: FlowKey) -> None:
        self._delete_raw("flows", _flow_key(flow))

    def set_reverse(self, flow: FlowKey, entry: ReverseEntry) -> None:
        value = _REVERSE_STATE.pack(entry.last_seen_ns, entry.vip.packed, entry.vport.to_bytes(2, "big"),
                                    entry.real_id, entry.service_id, int(entry.tcp_seen), 0)
        self._update_raw("reverse", _flow_key(flow), value)

    def delete_reverse(self, flow: FlowKey) -> None:
        self._delete_raw("reverse", _flow_key(flow))

    def install_flow(self, tables: Tables, flow: FlowKey) -> None:
        """Write `flow`'s forward entry, and its reverse entry if masqueraded, as `tables` holds them
        (call after tables.install_flow()). The reverse entry goes first, so that no reply can find
        the forward path open and the way back missing."""
        entry = tables.flows[flow]
        real = tables.reals[entry.real_id]
        if real.forwarding is Forwarding.MASQ:
            rkey = FlowKey(flow.proto, real.address, real.port, flow.saddr, flow.sport)
            self.set_reverse(rkey, tables.reverse[rkey])
        self.set_flow(flow, entry)

    def set_tunnel_source(self, source: IPv4Address | None) -> None:
        """Set IPIP's outer source; cached next hops were looked up from the old one, so flush them."""
        self._update("config", ctypes.c_uint32(0), S.LbConfigC(S.be32(source) if source else 0, self._next_epoch()))

    def flush_next_hops(self) -> None:
        """Make XDP ask bpf_fib_lookup() again for every destination (after a route or neighbour change
        the daemon knows of; without it a cached answer lives at most NEXT_HOP_TTL_NS, 1 s)."""
        config = self._lookup("config", ctypes.c_uint32(0)) or S.LbConfigC()
        self._update("config", ctypes.c_uint32(0), S.LbConfigC(config.tunnel_saddr, self._next_epoch()))

    def _next_epoch(self) -> int:
        """hop_epoch + 1: every cached next hop carries the epoch it was cached in, so this voids them."""
        config = self._lookup("config", ctypes.c_uint32(0))
        return ((config.hop_epoch if config is not None else 0) + 1) & 0xFFFFFFFF

    def add_tx_port(self, ifindex: int) -> None:
        """Let XDP redirect to `ifindex`; call from the namespace the interface lives in."""
        if not 0 < ifindex < self.max_tx_ports:
            raise MapError(f"ifindex {ifindex} does not fit tx_ports (MAX_TX_PORTS={self.max_tx_ports})")
        self._update("tx_ports", ctypes.c_int(ifindex), ctypes.c_int(ifindex))

    def delete_tx_port(self, ifindex: int) -> None:
        self._delete("tx_ports", ctypes.c_int(ifindex))

    # --- reading -------------------------------------------------------------------------------

    def read(self) -> Tables:
        """What the maps hold now, flows with the last_seen_ns and tcp_seen XDP stamped."""
        tables = Tables()
        for key, value in self._items("services"):
            tables.services[_service_key_back(key)] = ServiceEntry(value.service_id, value.flags)
        for real_id in range(self.max_reals):
            value = self._lookup("reals", ctypes.c_uint32(real_id))
            if value is not None and value.forwarding in _FWD_FROM_C:
                tables.reals[real_id] = RealEntry(
                    S.address(value.addr), S.port(value.port), _FWD_FROM_C[value.forwarding]
                )
        tables.flows, tables.reverse = self.read_flows()
        config = self._lookup("config", ctypes.c_uint32(0))
        if config is not None and config.tunnel_saddr:
            tables.tunnel_source = S.address(config.tunnel_saddr)
        for ifindex in range(1, self.max_tx_ports):
            if self._lookup("tx_ports", ctypes.c_int(ifindex)) is not None:
                tables.tx_ports.add(ifindex)
        left = min(allowed - created for created, allowed in self.read_hash_budget())
        tables.hash_budget = None if left >= _NO_LIMIT // 2 else max(0, left)
        for service in tables.services.values():
            row = ring_row(service.flags)
            if row is not None and row < self.max_hashed_services and row not in tables.rings:
                tables.rings[row] = self.read_ring(row)
        return tables

    def get_flow(self, flow: FlowKey) -> FlowEntry | None:
        """One flow's entry, or None (the first-packet path asks before scheduling)."""
        value = ctypes.create_string_buffer(_FLOW_STATE.size)
        if _lib.bpf_lookup_elem(self._fds["flows"], _flow_key(flow), value) != 0:
            return None
        last_seen, real_id, service_id, seen, _ = _FLOW_STATE.unpack(value.raw)
        return FlowEntry(real_id, service_id, last_seen, _SEEN.get(seen) or TcpSeen(seen))

    def read_reals(self) -> dict[int, RealEntry]:
        """The `reals` slots in use (a starting daemon checks them against its saved ids)."""
        reals = {}
        for real_id in range(self.max_reals):
            value = self._lookup("reals", ctypes.c_uint32(real_id))
            if value is not None and value.forwarding in _FWD_FROM_C:
                reals[real_id] = RealEntry(S.address(value.addr), S.port(value.port), _FWD_FROM_C[value.forwarding])
        return reals

    def read_services(self) -> dict[ServiceKey, ServiceEntry]:
        return {_service_key_back(k): ServiceEntry(v.service_id, v.flags) for k, v in self._items("services")}

    def read_flows(self) -> tuple[dict[FlowKey, FlowEntry], dict[FlowKey, ReverseEntry]]:
        """Only the flow tables (what the daemon's sweeper needs, once a second), without scanning
        the arrays.

        The entries come in batches of FLOW_BATCH (BPF_MAP_LOOKUP_BATCH, kernel ≥ 5.6 for LRU
        hashes) and are decoded from the raw buffers with struct, so a table of 100k flows costs a
        few dozen syscalls instead of two per entry, and no ctypes object per entry. Where the
        kernel refuses batches (EINVAL, ENOTSUPP) the per-key walk gives the same result. A batch
        read, like the walk, is not a snapshot: entries XDP or the daemon add or delete meanwhile
        may or may not be seen.
        """
        flows_raw = self._batch_raw("flows")
        reverse_raw = self._batch_raw("reverse") if flows_raw is not None else None
        if flows_raw is None or reverse_raw is None:
            return self._read_flows_walk()
        return _decode_flows(*flows_raw), _decode_reverse(*reverse_raw)

    def read_flow_records(self) -> FlowRecords:
        """Both flow maps as record arrays (lb.datapath.records), for judging the whole table at
        once: the same batched reads as read_flows(), without a Python object per entry."""
        flows_raw = self._batch_raw("flows")
        reverse_raw = self._batch_raw("reverse") if flows_raw is not None else None
        if flows_raw is None or reverse_raw is None:
            flows_raw, reverse_raw = self._walk_raw("flows"), self._walk_raw("reverse")
        return FlowRecords.from_raw(*flows_raw, *reverse_raw)

    def delete_records(self, name: str, keys: Any) -> int:
        """Delete the entries of hash map `name` whose raw keys are the records `keys` (a numpy
        record array of the map's key struct); returns how many were there to delete. Keys already
        gone (expired by the LRU, removed by a concurrent path) are skipped."""
        raw = keys.tobytes()
        size = ctypes.sizeof(S.MAP_TYPES[name][0])
        deleted = 0
        for at in range(0, len(raw), size):
            if _lib.bpf_delete_elem(self._fds[name], raw[at: at + size]) == 0:
                deleted += 1
            elif ctypes.get_errno() != errno.ENOENT:
                raise MapError(f"{name}: delete failed: {os.strerror(ctypes.get_errno())}")
        return deleted

    def _walk_raw(self, name: str) -> tuple[bytes, bytes]:
        """_batch_raw()'s result one key at a time, for kernels without batched lookups."""
        pairs = list(self._items(name))
        return b"".join(bytes(k) for k, _ in pairs), b"".join(bytes(v) for _, v in pairs)

    def _read_flows_walk(self) -> tuple[dict[FlowKey, FlowEntry], dict[FlowKey, ReverseEntry]]:
        """read_flows() one key at a time (bpf_get_next_key + lookup): for kernels without batches."""
        flows = {
            _flow_key_back(k): FlowEntry(v.real_id, v.service_id, v.last_seen_ns, TcpSeen(v.tcp_seen))
            for k, v in self._items("flows")
        }
        reverse = {
            _flow_key_back(k): ReverseEntry(
                S.address(v.vip), S.port(v.vport), v.real_id, v.service_id, v.last_seen_ns, TcpSeen(v.tcp_seen)
            )
            for k, v in self._items("reverse")
        }
        return flows, reverse

    def _batch_raw(self, name: str) -> tuple[bytes, bytes] | None:
        """Every key and value of hash map `name` as two raw byte strings (entry i at i × size), or
        None when the kernel does not do batched lookups on it."""
        key_type, value_type = S.MAP_TYPES[name]
        key_size, value_size = ctypes.sizeof(key_type), ctypes.sizeof(value_type)
        lookup = _libbpf().bpf_map_lookup_batch
        chunk = FLOW_BATCH
        keys = ctypes.create_string_buffer(key_size * chunk)
        values = ctypes.create_string_buffer(value_size * chunk)
        # The position token is opaque (a bucket index for hash maps); key_size bytes always hold it.
        token_in = ctypes.create_string_buffer(max(8, key_size))
        token_out = ctypes.create_string_buffer(max(8, key_size))
        key_parts: list[bytes] = []
        value_parts: list[bytes] = []
        started = False
        while True:
            count = ctypes.c_uint32(chunk)
            rc = lookup(self._fds[name], token_in if started else None, token_out, keys, values,
                        ctypes.byref(count), None)
            err = (-rc if rc < 0 else ctypes.get_errno()) if rc != 0 else 0
            if err and err != errno.ENOENT:
                if err == errno.ENOSPC and count.value == 0:  # one bucket holds more than a batch
                    chunk *= 2
                    keys = ctypes.create_string_buffer(key_size * chunk)
                    values = ctypes.create_string_buffer(value_size * chunk)
                    continue
                if not started and err in _NO_BATCH_ERRNOS:
                    return None
                raise MapError(f"{name}: batched lookup failed: {os.strerror(err)}")
            n = count.value
            if n:
                key_parts.append(keys.raw[: n * key_size])
                value_parts.append(values.raw[: n * value_size])
            if err == errno.ENOENT:  # the last batch (possibly empty)
                break
            ctypes.memmove(token_in, token_out, len(token_in))
            started = True
        return b"".join(key_parts), b"".join(value_parts)

    def tunnel_source(self) -> IPv4Address | None:
        config = self._lookup("config", ctypes.c_uint32(0))
        return S.address(config.tunnel_saddr) if config is not None and config.tunnel_saddr else None

    def reason_counts(self) -> dict[Reason, int]:
        """Packets per verdict reason, summed over CPUs (every reason, zeros included). A reason
        past the map's end reads 0: a map pinned by an older program (a smaller REASON_MAX) is
        adopted as it is, and XDP skips a reason it has no slot for."""
        counts: dict[Reason, int] = {}
        for reason in Reason:
            try:
                counts[reason] = sum(self._percpu("reason_counts", int(reason)))
            except MapError:
                counts[reason] = 0
        return counts

    def service_traffic(self, reals_of: Mapping[int, Iterable[int]]) -> dict[int, Traffic]:
        """Per-service totals, `reals_of` mapping each service id to its real ids: XDP counts per real
        only (one counter update per packet), and a real id belongs to one service."""
        return {sid: sum(self.real_traffic(list(rids)).values(), Traffic()) for sid, rids in reals_of.items()}

    def real_traffic(self, real_ids: range | list[int]) -> dict[int, Traffic]:
        return {rid: self._traffic("real_counts", rid) for rid in real_ids}

    def reset_counters(self, service_ids: range | list[int] = (), real_ids: range | list[int] = ()) -> None:
        """Zero the reason counters and the given reals' traffic counters. `service_ids` is accepted for
        the callers' sake and needs nothing: a service's traffic is the sum of its reals'."""
        del service_ids
        for reason in Reason:
            self._set_percpu("reason_counts", int(reason), ctypes.c_uint64)
        for rid in real_ids:
            self._set_percpu("real_counts", rid, S.TrafficCounterC)
            self._set_percpu("hash_conns", rid, ctypes.c_uint64)

    # --- bpf(2) map commands -------------------------------------------------------------------

    def _update(self, name: str, key: Any, value: Any) -> None:
        if _lib.bpf_update_elem(self._fds[name], ctypes.byref(key), ctypes.byref(value), 0) != 0:
            raise MapError(f"{name}: update failed: {os.strerror(ctypes.get_errno())}")

    def _update_raw(self, name: str, key: bytes, value: bytes) -> None:
        if _lib.bpf_update_elem(self._fds[name], key, value, 0) != 0:
            raise MapError(f"{name}: update failed: {os.strerror(ctypes.get_errno())}")

    def _delete(self, name: str, key: Any) -> None:
        self._delete_raw(name, ctypes.byref(key))

    def _delete_raw(self, name: str, key: Any) -> None:
        if _lib.bpf_delete_elem(self._fds[name], key) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:  # already gone (an LRU may have evicted it)
                raise MapError(f"{name}: delete failed: {os.strerror(err)}")

    def _lookup(self, name: str, key: Any) -> Any:
        value = S.MAP_TYPES[name][1]()
        if _lib.bpf_lookup_elem(self._fds[name], ctypes.byref(key), ctypes.byref(value)) != 0:
            return None
        return value

    def _items(self, name: str) -> Iterator[tuple[Any, Any]]:
        key_type, _ = S.MAP_TYPES[name]
        keys = []
        key, next_key = None, key_type()
        while _lib.bpf_get_next_key(self._fds[name], ctypes.byref(key) if key is not None else None,
                                    ctypes.byref(next_key)) == 0:
            keys.append(next_key)
            key, next_key = next_key, key_type()
        for key in keys:
            value = self._lookup(name, key)
            if value is not None:
                yield key, value

    def _percpu(self, name: str, index: int) -> list[Any]:
        leaf = S.MAP_TYPES[name][1]
        values = (leaf * self._ncpus)()
        if _lib.bpf_lookup_elem(self._fds[name], ctypes.byref(ctypes.c_uint32(index)), ctypes.byref(values)) != 0:
            raise MapError(f"{name}: lookup of {index} failed: {os.strerror(ctypes.get_errno())}")
        return list(values)  # ints for a u64 leaf, struct copies for a struct leaf

    def _set_percpu(self, name: str, index: int, leaf: type) -> None:
        self._update(name, ctypes.c_uint32(index), (leaf * self._ncpus)())

    def _traffic(self, name: str, index: int) -> Traffic:
        total = Traffic()
        for c in self._percpu(name, index):
            total = total + Traffic(c.in_packets, c.in_bytes, c.out_packets, c.out_bytes)
        return total


# --- batched reads of the flow tables -------------------------------------------------------------

FLOW_BATCH = 8192  # entries per BPF_MAP_LOOKUP_BATCH call
_NO_LIMIT = 2**64 - 1  # hash_budget.allowed of a Tables without a budget
# EINVAL: the map type has no batch ops (or the kernel predates them); ENOTSUPP (524, kernel-internal)
# and EOPNOTSUPP: batches not implemented for this map.
_NO_BATCH_ERRNOS = frozenset({errno.EINVAL, errno.EOPNOTSUPP, 524})

# struct flow_key ("!IIHHB3x": addresses and ports in network order), struct flow_state ("=QIIII")
# and struct reverse_state ("=Q4s2s2xIIII": vip and vport as network-order bytes), from their mirrors
_FLOW_KEY = S.struct_format(S.FlowKeyC)
_FLOW_STATE = S.struct_format(S.FlowStateC)
_REVERSE_STATE = S.struct_format(S.ReverseStateC)

_PROTOCOLS = {int(p): p for p in Protocol}
_SEEN = {int(bits): TcpSeen(bits) for bits in range(8)}

_libbpf_handle: ctypes.CDLL | None = None


def _libbpf() -> ctypes.CDLL:
    """libbpf's bpf_map_lookup_batch (LIBBPF_0.0.7; libbcc has no batch call). It returns a
    negative errno (libbpf ≥ 1.0) or -1 with errno set (older)."""
    global _libbpf_handle
    if _libbpf_handle is None:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        lib.bpf_map_lookup_batch.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p,
        ]
        lib.bpf_map_lookup_batch.restype = ctypes.c_int
        _libbpf_handle = lib
    return _libbpf_handle


def _decode_keys(raw: bytes) -> list[FlowKey]:
    """FlowKeys of a run of struct flow_key; addresses are shared between keys that name the same
    one (a sweep sees a few VIPs and reals many thousand times)."""
    addresses: dict[int, IPv4Address] = {}
    protocols = _PROTOCOLS
    keys = []
    for saddr, daddr, sport, dport, proto in _FLOW_KEY.iter_unpack(raw):
        src = addresses.get(saddr)
        if src is None:
            src = addresses[saddr] = IPv4Address(saddr)
        dst = addresses.get(daddr)
        if dst is None:
            dst = addresses[daddr] = IPv4Address(daddr)
        keys.append(FlowKey(protocols.get(proto) or Protocol(proto), src, sport, dst, dport))
    return keys


def _decode_flows(raw_keys: bytes, raw_values: bytes) -> dict[FlowKey, FlowEntry]:
    return {
        key: FlowEntry(real_id, service_id, last_seen, _SEEN.get(seen) or TcpSeen(seen))
        for key, (last_seen, real_id, service_id, seen, _) in zip(
            _decode_keys(raw_keys), _FLOW_STATE.iter_unpack(raw_values)
        )
    }


def _decode_reverse(raw_keys: bytes, raw_values: bytes) -> dict[FlowKey, ReverseEntry]:
    vips: dict[bytes, IPv4Address] = {}
    out = {}
    for key, (last_seen, vip, vport, real_id, service_id, seen, _) in zip(
        _decode_keys(raw_keys), _REVERSE_STATE.iter_unpack(raw_values)
    ):
        address = vips.get(vip)
        if address is None:
            address = vips[vip] = IPv4Address(vip)
        out[key] = ReverseEntry(
            address, int.from_bytes(vport, "big"), real_id, service_id, last_seen, _SEEN.get(seen) or TcpSeen(seen)
        )
    return out


def _service_key(key: ServiceKey) -> S.ServiceKeyC:
    return S.ServiceKeyC(S.be32(key.vip), S.be16(key.port), int(key.proto), 0)


def _service_key_back(key: S.ServiceKeyC) -> ServiceKey:
    return ServiceKey(Protocol(key.proto), S.address(key.vip), S.port(key.port))


def _flow_key(flow: FlowKey) -> bytes:
    """struct flow_key's bytes."""
    return _FLOW_KEY.pack(int(flow.saddr), int(flow.daddr), flow.sport, flow.dport, flow.proto)


def _flow_key_back(key: S.FlowKeyC) -> FlowKey:
    return FlowKey(Protocol(key.proto), S.address(key.saddr), S.port(key.sport), S.address(key.daddr), S.port(key.dport))
