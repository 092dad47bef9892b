"""Writing a `Tables` into the datapath's BPF maps, and reading maps and counters back.

The maps are those of bpf/lb_maps.h. `DatapathMaps` is their one handle, made of one part per
concern: lb.datapath.mapaccess (fds and the bpf(2) map commands), servicemaps (services, reals,
config, tx_ports), ringmaps (Maglev rings, budgets, XDP's Conns), schedmaps (the other scheduler maps,
connection counts, persistence templates) and countermaps (reason and traffic counters); this module
holds the flow tables (`flows`, `reverse`) and the whole-table write and read.

The flow entries are written and read as packed bytes (the struct layouts below), not ctypes
structures: the first-packet path does this for every new flow, and building a ctypes key field by
field cost more than the bpf(2) call itself. Whole flow tables are read in batches
(BPF_MAP_LOOKUP_BATCH) and decoded from the raw buffers.
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
from ipaddress import IPv4Address
from typing import Any

from bcc.libbcc import lib as _lib

from lb.datapath import structs as S
from lb.datapath.countermaps import CounterMaps
from lb.datapath.mapaccess import MapError
from lb.datapath.records import FlowRecords
from lb.datapath.ringmaps import NO_LIMIT, RingMaps
from lb.datapath.schedmaps import SchedMaps
from lb.datapath.servicemaps import ServiceMaps
from lb.model import FlowKey, Forwarding, Protocol, flow_key
from lb.sched.xdpkind import XdpKind
from lb.tables import FlowEntry, RealEntry, RealSched, ReverseEntry, Tables, TcpSeen

FLOW_BATCH = 8192  # entries per BPF_MAP_LOOKUP_BATCH call
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

__all__ = ["FLOW_BATCH", "DatapathMaps", "MapError"]

_libbpf_handle: ctypes.CDLL | None = None


class DatapathMaps(ServiceMaps, RingMaps, SchedMaps, CounterMaps):
    """The datapath maps of one loaded (or pinned) program."""

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
        for row, ring in tables.rings.items():  # the scheduler rows before the services that name them
            if current.rings.get(row) != ring:
                self.set_ring(row, ring)
        # Rows and per-real entries this handle wrote before, or that `tables` names: the others
        # are zero already (an array map starts zeroed) or named by no service.
        for row in self.rows_written | tables.seqs.keys() | tables.cursors.keys() | tables.walks.keys():
            self.set_seq(row, tables.seqs.get(row, []))
            self.set_cursor(row, tables.cursors.get(row, 0))
            self.set_walk(row, tables.walks.get(row, []))
        for row, buckets in tables.buckets.items():
            self.set_buckets(row, buckets)
        written = self.reals_written | current.real_sched.keys() | current.conns.keys()
        for real_id in written | tables.real_sched.keys() | tables.conns.keys():
            self.set_real_sched(real_id, tables.real_sched.get(real_id, RealSched(0, False)))
            active, inactive = tables.conns.get(real_id, (0, 0))
            self.set_conns(real_id, active, inactive)
        for (service_id, net), _ in current.templates.items():
            self.delete_template(service_id, IPv4Address(net))
        for (service_id, net), (expires_ns, real_id) in tables.templates.items():
            self.set_template(service_id, IPv4Address(net), real_id, expires_ns)
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
        budget = NO_LIMIT if tables.hash_budget is None else tables.hash_budget
        self.grant_hash_budget([budget] * self._ncpus, reset=True)

    def read(self) -> Tables:
        """What the maps hold now, flows with the last_seen_ns and tcp_seen XDP stamped."""
        tables = Tables()
        tables.services = self.read_services()
        tables.reals = self.read_reals()
        tables.flows, tables.reverse = self.read_flows()
        tables.tunnel_source = self.tunnel_source()
        tables.tx_ports = self.read_tx_ports()
        left = min(allowed - created for created, allowed in self.read_hash_budget())
        tables.hash_budget = None if left >= NO_LIMIT // 2 else max(0, left)
        for service in tables.services.values():
            row, kind = service.row, service.sched
            if kind is XdpKind.MH and row < self.max_hashed_services and row not in tables.rings:
                tables.rings[row] = self.read_ring(row)
            elif kind is not XdpKind.DAEMON and kind is not XdpKind.MH and row < self.max_sched_rows:
                if kind is XdpKind.SEQ:
                    tables.seqs[row], tables.cursors[row] = self.read_seq(row), self.read_cursor(row)
                elif kind in (XdpKind.SH, XdpKind.DH):
                    tables.buckets[row] = self.read_buckets(row)
                else:
                    tables.walks[row] = self.read_walk(row)
        used = {e.real_id for e in tables.flows.values()} | set(tables.reals)
        for real_id in sorted(used):
            if real_id < self.max_reals:
                tables.real_sched[real_id] = self.read_real_sched(real_id)
        tables.real_sched = {k: v for k, v in tables.real_sched.items() if v != RealSched(0, False)}
        tables.conns = {k: v for k, v in self.read_conns(sorted(used)).items() if v != (0, 0)}
        tables.templates = self.read_templates()
        return tables

    # --- the flow tables ------------------------------------------------------------------------

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

    def install_new_flow(self, flow: FlowKey, real_id: int, service_id: int, real: RealEntry, stamp_ns: int) -> None:
        """install_flow() of the entries Tables.install_flow(flow, real_id, stamp_ns) makes (nothing seen
        yet), packed straight from their fields: the first-packet path installs every flow it schedules
        this way, and building a Tables for one flow cost more than both bpf(2) calls. Same order: the
        reverse entry first."""
        if real.forwarding is Forwarding.MASQ:
            # reverse_key(flow, real): real address:port → client address:port
            rkey = _FLOW_KEY.pack(int(real.address), int(flow.saddr), real.port, flow.sport, flow.proto)
            self._update_raw("reverse", rkey, _REVERSE_STATE.pack(
                stamp_ns, flow.daddr.packed, flow.dport.to_bytes(2, "big"), real_id, service_id, 0, 0))
        self._update_raw("flows", _flow_key(flow), _FLOW_STATE.pack(stamp_ns, real_id, service_id, 0, 0))

    def get_flow(self, flow: FlowKey) -> FlowEntry | None:
        """One flow's entry, or None (the first-packet path asks before scheduling)."""
        value = ctypes.create_string_buffer(_FLOW_STATE.size)
        if _lib.bpf_lookup_elem(self._fds["flows"], _flow_key(flow), value) != 0:
            return None
        last_seen, real_id, service_id, seen, _ = _FLOW_STATE.unpack(value.raw)
        return FlowEntry(real_id, service_id, last_seen, _SEEN.get(seen) or TcpSeen(seen))

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

    def conns_table(self) -> dict[int, tuple[int, int]]:
        """Every real_conns entry other than (0, 0), as stored (below 0 stays below 0), in one batched
        read: what the sweep compares its counts with (lb.daemon.sweep.conns_to_write)."""
        raw = self._batch_raw("real_conns") or self._walk_raw("real_conns")
        ids, counts = array.array("I", raw[0]), array.array("i", raw[1])  # struct real_conns: two __s32
        pairs = zip(ids, zip(counts[0::2], counts[1::2], strict=True), strict=True)
        return {rid: pair for rid, pair in pairs if pair != (0, 0)}

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

    def read_raw(self, name: str) -> tuple[bytes, bytes]:
        """Every key and value of hash map `name` as two raw byte strings (entry i at i × size):
        batched where the kernel can, else walked."""
        return self._batch_raw(name) or self._walk_raw(name)

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
        return read_batched(self._fds[name], ctypes.sizeof(key_type), ctypes.sizeof(value_type), name)


def read_batched(fd: int, key_size: int, value_size: int, name: str,
                 chunk: int = FLOW_BATCH) -> tuple[bytes, bytes] | None:
    """Every key and value of map `fd` with BPF_MAP_LOOKUP_BATCH, as two raw byte strings (entry i
    at i × size): one consistent pass even while entries come and go (a bpf_get_next_key walk
    restarts from the top when its key was just deleted). None when the kernel does not do batched
    lookups on this map; MapError on any other failure."""
    lookup = _libbpf().bpf_map_lookup_batch
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
        rc = lookup(fd, token_in if started else None, token_out, keys, values, ctypes.byref(count), None)
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
        keys.append(flow_key(protocols.get(proto) or Protocol(proto), src, sport, dst, dport))
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


def _flow_key(flow: FlowKey) -> bytes:
    """struct flow_key's bytes."""
    return _FLOW_KEY.pack(int(flow.saddr), int(flow.daddr), flow.sport, flow.dport, flow.proto)


def _flow_key_back(key: S.FlowKeyC) -> FlowKey:
    proto = Protocol(key.proto)
    return FlowKey(proto, S.address(key.saddr), S.port(key.sport), S.address(key.daddr), S.port(key.dport))
