"""ctypes mirror of the structs shared with the XDP program: the ONE Python definition of each.

MUST STAY IN SYNC with bpf/lb_structs.h (and the enums of bpf/lb_consts.h): tests/bpf/test_structs.py
compares every size and field offset here with the BTF of the loaded program (what clang laid out),
for the key and value of every map. Every other Python form of these structs is derived from the
classes here: the struct formats of the batched flow reads (`struct_format()`) and the numpy dtypes
of the sweeper (lb.datapath.records). Address and port fields hold network byte order, as the packet
does (`__be32`/`__be16` in C, listed in each class's `_network_order_`); `be32()`/`be16()` convert.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.sched import xdpkind


class ServiceKeyC(ctypes.Structure):
    """struct service_key"""

    _network_order_ = ("vip", "port")
    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8)]


class ServiceInfoC(ctypes.Structure):
    """struct service_info"""

    _network_order_ = ("persist_mask",)
    _fields_ = [
        ("service_id", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("sched", ctypes.c_uint16),
        ("row", ctypes.c_uint16),
        ("persist_timeout", ctypes.c_uint32),
        ("persist_mask", ctypes.c_uint32),
    ]


class RealInfoC(ctypes.Structure):
    """struct real_info"""

    _network_order_ = ("addr", "port")
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("forwarding", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class FlowKeyC(ctypes.Structure):
    """struct flow_key"""

    _network_order_ = ("saddr", "daddr", "sport", "dport")
    _fields_ = [
        ("saddr", ctypes.c_uint32),
        ("daddr", ctypes.c_uint32),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
    ]


class FlowStateC(ctypes.Structure):
    """struct flow_state"""

    _fields_ = [
        ("last_seen_ns", ctypes.c_uint64),
        ("real_id", ctypes.c_uint32),
        ("service_id", ctypes.c_uint32),
        ("tcp_seen", ctypes.c_uint32),
        ("seen_jiffies", ctypes.c_uint32),
    ]


class ReverseStateC(ctypes.Structure):
    """struct reverse_state"""

    _network_order_ = ("vip", "vport")
    _fields_ = [
        ("last_seen_ns", ctypes.c_uint64),
        ("vip", ctypes.c_uint32),
        ("vport", ctypes.c_uint16),
        ("pad", ctypes.c_uint16),
        ("real_id", ctypes.c_uint32),
        ("service_id", ctypes.c_uint32),
        ("tcp_seen", ctypes.c_uint32),
        ("seen_jiffies", ctypes.c_uint32),
    ]


class LbConfigC(ctypes.Structure):
    """struct lb_config"""

    _network_order_ = ("tunnel_saddr",)
    _fields_ = [("tunnel_saddr", ctypes.c_uint32), ("hop_epoch", ctypes.c_uint32)]


class NextHopC(ctypes.Structure):
    """struct next_hop (a cached bpf_fib_lookup() answer; real_hops and client_hops, per CPU)"""

    _fields_ = [
        ("expires", ctypes.c_uint64),
        ("daddr", ctypes.c_uint32),  # network order
        ("ingress", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("epoch", ctypes.c_uint32),
        ("max_len", ctypes.c_uint16),
        ("smac", ctypes.c_uint8 * 6),
        ("dmac", ctypes.c_uint8 * 6),
        ("pad", ctypes.c_uint16),
    ]


MH_RING_SIZE = 65537  # bpf/lb_consts.h (lb.tables.RING_SIZE, lb.sched.mh.DEFAULT_M)


class MhRingC(ctypes.Structure):
    """struct mh_ring"""

    _fields_ = [("real_ids", ctypes.c_uint32 * MH_RING_SIZE)]


SEQ_MAX, BUCKETS, WALK_MAX = xdpkind.SEQ_MAX, xdpkind.BUCKETS, xdpkind.WALK_MAX  # bpf/lb_consts.h


class SchedSeqC(ctypes.Structure):
    """struct sched_seq"""

    _fields_ = [("len", ctypes.c_uint32), ("real_ids", ctypes.c_uint32 * SEQ_MAX)]


class BucketTableC(ctypes.Structure):
    """struct bucket_table"""

    _fields_ = [("real_ids", ctypes.c_uint32 * BUCKETS)]


class SchedDestsC(ctypes.Structure):
    """struct sched_dests"""

    _fields_ = [("count", ctypes.c_uint32), ("real_ids", ctypes.c_uint32 * WALK_MAX)]


class RealSchedC(ctypes.Structure):
    """struct real_sched"""

    _fields_ = [("weight", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class RealConnsC(ctypes.Structure):
    """struct real_conns"""

    _fields_ = [("active", ctypes.c_int32), ("inactive", ctypes.c_int32)]


class TemplateKeyC(ctypes.Structure):
    """struct template_key"""

    _network_order_ = ("client_net",)
    _fields_ = [("service_id", ctypes.c_uint32), ("client_net", ctypes.c_uint32)]


class PersistTemplateC(ctypes.Structure):
    """struct persist_template"""

    _fields_ = [("expires_ns", ctypes.c_uint64), ("real_id", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class HashBudgetC(ctypes.Structure):
    """struct hash_budget (per CPU)"""

    _fields_ = [("created", ctypes.c_uint64), ("allowed", ctypes.c_uint64)]


class TrafficCounterC(ctypes.Structure):
    """struct traffic_counter"""

    _fields_ = [
        ("in_packets", ctypes.c_uint64),
        ("in_bytes", ctypes.c_uint64),
        ("out_packets", ctypes.c_uint64),
        ("out_bytes", ctypes.c_uint64),
    ]


# map name → (key class, value class); the per-CPU maps' values are per CPU, the devmap's are ints
MAP_TYPES: dict[str, tuple[type, type]] = {
    "services": (ServiceKeyC, ServiceInfoC),
    "reals": (ctypes.c_uint32, RealInfoC),
    "flows": (FlowKeyC, FlowStateC),
    "reverse": (FlowKeyC, ReverseStateC),
    "config": (ctypes.c_uint32, LbConfigC),
    "tx_ports": (ctypes.c_int, ctypes.c_int),
    "real_hops": (ctypes.c_uint32, NextHopC),
    "client_hops": (ctypes.c_uint32, NextHopC),
    "reason_counts": (ctypes.c_uint32, ctypes.c_uint64),
    "real_counts": (ctypes.c_uint32, TrafficCounterC),
    "hash_rings": (ctypes.c_uint32, MhRingC),
    "hash_conns": (ctypes.c_uint32, ctypes.c_uint64),
    "hash_budget": (ctypes.c_uint32, HashBudgetC),
    "sched_seqs": (ctypes.c_uint32, SchedSeqC),
    "sched_cursors": (ctypes.c_uint32, ctypes.c_uint64),
    "bucket_tables": (ctypes.c_uint32, BucketTableC),
    "sched_dests": (ctypes.c_uint32, SchedDestsC),
    "real_sched": (ctypes.c_uint32, RealSchedC),
    "real_conns": (ctypes.c_uint32, RealConnsC),
    "templates": (TemplateKeyC, PersistTemplateC),
}

# struct real_sched.flags
REAL_F_AVAILABLE = 0x1

# enum lb_forwarding
FWD_NONE, FWD_MASQ, FWD_ROUTE, FWD_TUNNEL = 0, 1, 2, 3


def be32(address: IPv4Address) -> int:
    """An address as the u32 whose in-memory bytes are the address in network order."""
    return int.from_bytes(address.packed, sys.byteorder)


def be16(port: int) -> int:
    """A port as the u16 whose in-memory bytes are the port in network order."""
    return int.from_bytes(port.to_bytes(2, "big"), sys.byteorder)


def address(raw: int) -> IPv4Address:
    """Inverse of be32()."""
    return IPv4Address(raw.to_bytes(4, sys.byteorder))


def port(raw: int) -> int:
    """Inverse of be16()."""
    return int.from_bytes(raw.to_bytes(2, sys.byteorder), "big")


@dataclass(frozen=True)
class Field:
    """One field of a mirrored struct, as laid out by ctypes (= by clang: tests/bpf/test_structs.py)."""

    name: str
    offset: int
    size: int
    scalar: type | None  # the ctypes integer type, or None for an array (pad bytes, MACs, a ring)
    network_order: bool
    padding: bool
    signed: bool = False


def fields(cls: type[ctypes.Structure]) -> list[Field]:
    """The fields of a mirror class, in order, with their offsets and sizes."""
    network = set(getattr(cls, "_network_order_", ()))
    out = []
    for name, ctype, *_bits in cls._fields_:
        described = getattr(cls, name)
        scalar = ctype if issubclass(ctype, ctypes._SimpleCData) else None
        signed = scalar is not None and bool(scalar(-1).value < 0)  # c_int keeps -1, c_uint* wrap it
        out.append(Field(name, described.offset, described.size, scalar, name in network, name == "pad", signed))
    return out


_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def struct_format(cls: type[ctypes.Structure]) -> struct.Struct:
    """A `struct.Struct` for a mirror class, with the ctypes layout (gaps and tail as pad bytes).

    One byte order must cover every multi-byte field: network order ("!") when all of them are
    network order (flow_key: the integers come out as the packet's values), host order ("=") when
    none is; in a struct mixing the two the network-order fields come out as raw bytes ("4s"), for the
    caller to read as an address or a big-endian port. Pad fields are skipped ("x")."""
    layout = fields(cls)
    wide = [f for f in layout if f.size > 1 and not f.padding]
    all_network = bool(wide) and all(f.network_order for f in wide)
    codes, position = [], 0
    for f in layout:
        if f.offset > position:
            codes.append(f"{f.offset - position}x")
        if f.padding:
            codes.append(f"{f.size}x")
        elif f.scalar is None or (f.network_order and not all_network):
            codes.append(f"{f.size}s")
        else:
            code = _STRUCT_CODES[f.size]
            codes.append(code.lower() if f.signed else code)
        position = f.offset + f.size
    if ctypes.sizeof(cls) > position:
        codes.append(f"{ctypes.sizeof(cls) - position}x")
    return struct.Struct(("!" if all_network else "=") + "".join(codes))
