"""ctypes mirror of the structs shared with the XDP program.

MUST STAY IN SYNC with bpf/lb_structs.h (and the enums of bpf/lb_consts.h): tests/bpf/test_structs.py
compares every size and field offset here with the classes bcc generated from the header. Address and
port fields hold network byte order, as the packet does; `be32()`/`be16()` convert.
"""

from __future__ import annotations

import ctypes
import sys
from ipaddress import IPv4Address


class ServiceKeyC(ctypes.Structure):
    """struct service_key"""

    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8)]


class ServiceInfoC(ctypes.Structure):
    """struct service_info"""

    _fields_ = [("service_id", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class RealInfoC(ctypes.Structure):
    """struct real_info"""

    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("forwarding", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class FlowKeyC(ctypes.Structure):
    """struct flow_key"""

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

    _fields_ = [("tunnel_saddr", ctypes.c_uint32), ("hop_epoch", ctypes.c_uint32)]


class NextHopC(ctypes.Structure):
    """struct next_hop (a cached bpf_fib_lookup() answer; real_hops and client_hops, per CPU)"""

    _fields_ = [
        ("expires", ctypes.c_uint64),
        ("daddr", ctypes.c_uint32),
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
}

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
