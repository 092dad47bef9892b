"""What the datapath's maps hold, as plain Python values.

A `Tables` describes the contents of every map the XDP program reads (bpf/lb_maps.h): services, reals,
flows, reverse (masquerading) entries, the config slot and the tx_ports devmap. The rewrite model
(lb.rewrite) reads one to predict what XDP does with a packet; lb.datapath.maps writes one into the BPF
maps and reads one back. A test builds a single Tables and hands it to both, so model and kernel are
judged against the same state. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb.model import FlowKey, Forwarding, ServiceKey
from lb.sched.base import Scheduler
from lb.sched.mh import DEFAULT_M
from lb.sched.xdpkind import XdpKind

RING_SIZE = DEFAULT_M  # MH_RING_SIZE in bpf/lb_consts.h: slots of one Maglev ring in hash_rings

# struct service_info.flags (bpf/lb_consts.h): hash the client port too (sh-port, mh-port); drop a
# TCP segment that opens no flow and has none (service_flags()); walk on past an unavailable real
# (sh-fallback, mh-fallback). Who decides the first packets, and from which row, are fields of their
# own (ServiceEntry.sched, .row).
SVC_F_HASH_PORT = 0x2
SVC_F_DROP_MIDFLOW_MISS = 0x4
SVC_F_FALLBACK = 0x8


def service_flags(scheduler: Scheduler) -> int:
    """The flags a service's entry carries whether or not XDP schedules it: SVC_F_DROP_MIDFLOW_MISS
    unless its scheduler re-derives a mid-connection packet's real (`rederives_midflow`: sh, dh, mh).

    Such a packet (TCP without SYN, no flow) would be dropped by the first-packet path anyway
    (lb.balancer.decide, as IPVS without sloppy_tcp), so XDP drops it and an ACK flood never reaches
    NFQUEUE. The bit says "drop", not "pass up", so that an entry written without it (an older
    writer, a test's Tables) only costs a trip through Python, never a connection.
    """
    return 0 if scheduler.rederives_midflow else SVC_F_DROP_MIDFLOW_MISS


class TcpSeen(enum.IntFlag):
    """What XDP saw in a flow's TCP segments (enum lb_tcp_seen in bpf/lb_consts.h)."""

    NONE = 0
    ESTABLISHED = 1  # an ACK without SYN: the handshake got past its first segment
    FIN = 2
    RST = 4


@dataclass(frozen=True)
class ServiceEntry:
    """services value: which service a (VIP, port, proto) is; `service_id` indexes service_counts.

    `sched` says who decides the service's first packets: XDP from row `row` of its kind's map
    (XdpKind.map_name), or the daemon (DAEMON). A persistent service (`persist_timeout` seconds, 0:
    not persistent) keeps a client network (saddr & `persist_mask`, a host-order int) on one real
    through `templates`.
    """

    service_id: int
    flags: int = 0  # struct service_info.flags: service_flags(), SVC_F_HASH_PORT, SVC_F_FALLBACK
    sched: XdpKind = XdpKind.DAEMON
    row: int = 0
    persist_timeout: int = 0
    persist_mask: int = 0

    @property
    def in_xdp(self) -> bool:
        """XDP decides this service's first packets itself."""
        return self.sched is not XdpKind.DAEMON


@dataclass(frozen=True)
class RealSched:
    """real_sched value: what a scheduler in XDP needs of a real beyond its address."""

    weight: int
    available: bool


@dataclass(frozen=True)
class RealEntry:
    """reals value: where a real lives and how its packets get there.

    `port` matters to masquerading only; direct routing and IPIP keep the service port (ipvsadm(8)).
    """

    address: IPv4Address
    port: int
    forwarding: Forwarding


@dataclass(frozen=True)
class FlowEntry:
    """flows value: the decision for one client → VIP 5-tuple.

    `last_seen_ns` (CLOCK_MONOTONIC, from bpf_ktime_get_ns) and `tcp_seen` are written by XDP on every
    packet; what user space writes there is only the starting value.
    """

    real_id: int
    service_id: int
    last_seen_ns: int = 0
    tcp_seen: TcpSeen = TcpSeen.NONE


@dataclass(frozen=True)
class ReverseEntry:
    """reverse value: a masqueraded reply from (real addr:port → client addr:port) leaves as VIP:vport."""

    vip: IPv4Address
    vport: int
    real_id: int
    service_id: int
    last_seen_ns: int = 0
    tcp_seen: TcpSeen = TcpSeen.NONE


@dataclass(frozen=True)
class Traffic:
    """service_counts / real_counts value, summed over CPUs. "in" is client → real, "out" the reverse.

    Bytes are IPv4 total lengths: no Ethernet header, no padding, no IPIP outer header (IPVS counts
    the same way).
    """

    in_packets: int = 0
    in_bytes: int = 0
    out_packets: int = 0
    out_bytes: int = 0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.in_packets + other.in_packets,
            self.in_bytes + other.in_bytes,
            self.out_packets + other.out_packets,
            self.out_bytes + other.out_bytes,
        )


@dataclass
class Tables:
    """The contents of the datapath maps.

    `reverse` keys are 5-tuples as the real's reply carries them (saddr = real, daddr = client); they
    reuse FlowKey as a plain 5-tuple. `tx_ports` holds the ifindexes XDP may redirect to (the devmap);
    `tunnel_source` is the outer source address of IPIP packets (None: IPIP reals are left to the kernel).
    The scheduler maps, by row (a service's entry names its kind and row): `rings`, the Maglev rings
    of hash_rings (RING_SIZE real ids each, 0 meaning "the daemon decides"); `seqs` and `cursors`,
    rr/wrr cycles and their positions; `buckets`, sh/dh's 256 buckets; `walks`, the reals a
    least-connection walk visits. `real_sched` and `conns` hold each real's weight and availability
    and its (active, inactive) connections; `templates` maps (service id, client network) to
    (expires_ns, real id). `hash_budget` is how many flows XDP may still create itself (the daemon
    grants room after each sweep); the model counts it down, the maps give each CPU that many.
    """

    services: dict[ServiceKey, ServiceEntry] = field(default_factory=dict)
    reals: dict[int, RealEntry] = field(default_factory=dict)
    flows: dict[FlowKey, FlowEntry] = field(default_factory=dict)
    reverse: dict[FlowKey, ReverseEntry] = field(default_factory=dict)
    tunnel_source: IPv4Address | None = None
    tx_ports: set[int] = field(default_factory=set)
    rings: dict[int, list[int]] = field(default_factory=dict)
    hash_budget: int | None = None  # flows XDP may still create (hash_budget); None: no limit
    seqs: dict[int, list[int]] = field(default_factory=dict)
    cursors: dict[int, int] = field(default_factory=dict)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    walks: dict[int, list[int]] = field(default_factory=dict)
    real_sched: dict[int, RealSched] = field(default_factory=dict)
    conns: dict[int, tuple[int, int]] = field(default_factory=dict)
    templates: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def copy(self) -> Tables:
        """A copy whose dicts can change (the model creates flows, moves cursors, counts connections
        and records templates as XDP would) without touching this one; the rows are shared (nothing
        writes to them but user space)."""
        return Tables(
            dict(self.services), dict(self.reals), dict(self.flows), dict(self.reverse), self.tunnel_source,
            set(self.tx_ports), dict(self.rings), self.hash_budget, dict(self.seqs), dict(self.cursors),
            dict(self.buckets), dict(self.walks), dict(self.real_sched), dict(self.conns), dict(self.templates),
        )

    def install_flow(self, flow: FlowKey, real_id: int, stamp_ns: int = 0) -> None:
        """Send `flow` to real `real_id`: the forward entry, and for masquerading the reverse entry,
        both last seen at `stamp_ns` (bpf_ktime_get_ns()'s clock; 0: never).

        This is what the first-packet path does after scheduling; the service must exist and the
        real slot be filled, or LookupError says which is missing.
        """
        service = self.services.get(flow.service_key)
        if service is None:
            raise LookupError(f"no service {flow.service_key} for flow {_flow_text(flow)}")
        real = self.reals.get(real_id)
        if real is None:
            raise LookupError(f"no real with id {real_id} for flow {_flow_text(flow)}")
        self.flows[flow] = FlowEntry(real_id, service.service_id, stamp_ns)
        if real.forwarding is Forwarding.MASQ:
            self.reverse[reverse_key(flow, real)] = ReverseEntry(
                flow.daddr, flow.dport, real_id, service.service_id, stamp_ns
            )

    def remove_flow(self, flow: FlowKey) -> None:
        """Forget `flow` and, if it was masqueraded, its reverse entry. A missing flow is no error."""
        entry = self.flows.pop(flow, None)
        if entry is None:
            return
        real = self.reals.get(entry.real_id)
        if real is not None and real.forwarding is Forwarding.MASQ:
            self.reverse.pop(reverse_key(flow, real), None)


def reverse_key(flow: FlowKey, real: RealEntry) -> FlowKey:
    """The 5-tuple of the real's replies to `flow` under masquerading: real addr:port → client."""
    return FlowKey(flow.proto, real.address, real.port, flow.saddr, flow.sport)


def _flow_text(flow: FlowKey) -> str:
    return f"{flow.proto.label} {flow.saddr}:{flow.sport} -> {flow.daddr}:{flow.dport}"
