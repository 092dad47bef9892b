"""The packet fixture table (Katran's style): description, scapy input, map contents, expected verdict,
reason and output. tests/bpf/test_lb_kern.py runs every row through the XDP program (BPF_PROG_RUN) and
tests/unit/test_rewrite_fixtures.py through the rewrite model; both must produce the expected bytes.

The lab network the rows assume is described here once: `LAB_FIB` is its model, and tests/bpf/lab.py
builds the same interfaces, routes and neighbours in a namespace. Pure: scapy and lb only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP  # noqa: F401 (used by the expressions)
from scapy.layers.inet6 import IPv6  # noqa: F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: F401
from scapy.packet import Packet, Raw

from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
from lb.replay.compare import side_by_side
from lb.rewrite import Reason, Route, StaticFib, Verdict
from lb.sched.hashing import MH_SEED1, fold, hash_32, mh_hash
from lb.sched.xdpkind import XdpKind
from lb.tables import (
    RING_SIZE,
    SVC_F_DROP_MIDFLOW_MISS,
    SVC_F_FALLBACK,
    SVC_F_HASH_PORT,
    FlowEntry,
    RealEntry,
    RealSched,
    ReverseEntry,
    ServiceEntry,
    Tables,
    TcpSeen,
)

# --- the lab: interfaces of the balancer's namespace, their routes and neighbours -------------------
A0, B0, C0 = 10, 20, 30  # ifindexes; a0 is where clients come in, tx_ports holds a0 and b0, not c0
A0_MAC, B0_MAC, C0_MAC = "02:00:00:00:0a:00", "02:00:00:00:14:00", "02:00:00:00:1e:00"
INTERFACES = (  # name, ifindex, MAC, address/prefix
    ("a0", A0, A0_MAC, "10.1.0.1/24"),
    ("b0", B0, B0_MAC, "10.2.0.1/24"),
    ("c0", C0, C0_MAC, "10.6.0.1/24"),
)
GW_A, GW_B = "10.1.0.254", "10.2.0.254"
GW_A_MAC, GW_B_MAC = "02:00:00:01:00:fe", "02:00:00:02:00:fe"
GATEWAY_ROUTES = (("10.3.0.0/16", GW_A, A0), ("10.4.0.0/16", GW_B, B0))  # clients; far reals
NEIGHBOURS = {  # (ifindex, address) → MAC; 10.1.0.77 and 10.2.0.99 deliberately have none
    (A0, GW_A): GW_A_MAC,
    (A0, "10.1.0.20"): "02:00:00:01:00:14",
    (A0, "10.1.0.21"): "02:00:00:01:00:15",
    (A0, "10.1.0.22"): "02:00:00:01:00:16",
    (B0, GW_B): GW_B_MAC,
    (B0, "10.2.0.20"): "02:00:00:02:00:14",
    (B0, "10.2.0.21"): "02:00:00:02:00:15",
    (B0, "10.2.0.22"): "02:00:00:02:00:16",
    (C0, "10.6.0.20"): "02:00:00:06:00:14",
    (C0, "10.6.0.21"): "02:00:00:06:00:15",
}


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


LAB_FIB = StaticFib(
    routes=tuple(
        Route(IPv4Network(addr, strict=False), index, _mac(mac)) for _, index, mac, addr in INTERFACES
    )
    + tuple(
        Route(IPv4Network(net), index, _mac({i: m for _, i, m, _ in INTERFACES}[index]), IPv4Address(gw))
        for net, gw, index in GATEWAY_ROUTES
    ),
    neighbours={(index, IPv4Address(addr)): _mac(mac) for (index, addr), mac in NEIGHBOURS.items()},
)

# --- services and reals --------------------------------------------------------------------------
VIP_M, VIP_G, VIP_I = "10.0.0.100", "10.0.0.101", "10.0.0.102"  # masquerading, routing, tunnel VIPs
CLIENT = "10.3.0.5"  # behind GW_A
TUNNEL_SOURCE = "10.1.0.1"
MAC = {addr: mac for (_, addr), mac in NEIGHBOURS.items()}

SERVICES = {
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 80): ServiceEntry(1),
    ServiceKey(Protocol.UDP, IPv4Address(VIP_M), 53): ServiceEntry(2),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_G), 80): ServiceEntry(3),
    ServiceKey(Protocol.UDP, IPv4Address(VIP_G), 53): ServiceEntry(4),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_I), 80): ServiceEntry(5),
    ServiceKey(Protocol.UDP, IPv4Address(VIP_I), 53): ServiceEntry(6),
}
_M, _G, _I = Forwarding.MASQ, Forwarding.ROUTE, Forwarding.TUNNEL
REALS = {
    rid: RealEntry(IPv4Address(addr), port, fwd)
    for rid, (addr, port, fwd) in {
        1: ("10.1.0.20", 8080, _M),  # same segment as the ingress: XDP_TX
        2: ("10.1.0.20", 5353, _M),
        3: ("10.2.0.20", 8080, _M),  # behind b0: XDP_REDIRECT
        4: ("10.2.0.20", 5353, _M),
        5: ("10.4.0.20", 80, _M),  # behind GW_B
        6: ("10.2.0.99", 8080, _M),  # no neighbour entry
        7: ("10.99.0.1", 8080, _M),  # no route
        8: ("10.6.0.20", 8080, _M),  # behind c0, which is not in tx_ports
        10: ("10.1.0.21", 80, _G),
        11: ("10.2.0.21", 53, _G),
        12: ("10.2.0.99", 80, _G),
        13: ("10.2.0.21", 80, _G),
        14: ("10.6.0.21", 80, _G),
        20: ("10.1.0.22", 80, _I),
        21: ("10.2.0.22", 53, _I),
        22: ("10.2.0.99", 80, _I),
        23: ("10.2.0.22", 80, _I),
    }.items()
}


# --- services XDP schedules itself (Maglev rings in hash_rings) -------------------------------------
HASH_PORT = 8000  # the VIPs' in-kernel mh services listen here (8053 for UDP, 8001/8002 for mh-port)


def mh_slot(client: str, sport: int = 0) -> int:
    """The ring slot of a client, as MaglevHashing.slot() computes it (sport only with mh-port)."""
    return mh_hash(fold(IPv4Address(client), sport), MH_SEED1) % RING_SIZE


def ring(default: int, **at: int) -> list[int]:
    """A ring naming real `default` in every slot but those given as slot_<n>=real id."""
    out = [default] * RING_SIZE
    for name, real_id in at.items():
        out[int(name.removeprefix("slot_"))] = real_id
    return out


def _port_ring() -> list[int]:
    """Real 3 (REDIRECT) everywhere but the slot of CLIENT:40000 with mh-port, which is real 1 (TX):
    the same SYN lands on real 1 with mh-port and on real 3 without."""
    assert mh_slot(CLIENT, 40000) != mh_slot(CLIENT)
    return ring(3, **{f"slot_{mh_slot(CLIENT, 40000)}": 1})


def mh_service(service_id: int, row: int, port: bool = False) -> ServiceEntry:
    """The entry of a service XDP decides with Maglev from ring `row` (mh-port: `port`)."""
    return ServiceEntry(service_id, SVC_F_HASH_PORT if port else 0, XdpKind.MH, row)


HASHED_SERVICES = {  # service → (entry, its ring)
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), HASH_PORT): (mh_service(7, 0), ring(1)),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_G), HASH_PORT): (mh_service(8, 1), ring(10)),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_I), HASH_PORT): (mh_service(9, 2), ring(23)),
    ServiceKey(Protocol.UDP, IPv4Address(VIP_M), 8053): (mh_service(10, 3), ring(2)),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8001): (mh_service(11, 4, port=True), _port_ring()),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8002): (mh_service(12, 5), _port_ring()),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_G), 8001): (  # CLIENT's own slot empty: Python decides
        mh_service(13, 6), ring(10, **{f"slot_{mh_slot(CLIENT)}": 0})),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_G), 8002): (mh_service(14, 7), ring(9)),  # empty real slot
}


def with_rings(tables: Tables) -> None:
    """A row's setup: the in-kernel mh services and their rings."""
    for key, (entry, real_ids) in HASHED_SERVICES.items():
        tables.services[key] = entry
        tables.rings[entry.row] = real_ids


# --- services XDP decides from bucket_tables (sh, dh) and mh-fallback's walk ------------------------
BUCKET_PORT = 8100  # VIP_M: 8100 sh, 8101 sh-port, 8102 sh-fallback, 8103 sh; VIP_G: 8100 dh; 8104 mh-fallback


def bucket_of(addr: str, port: int = 0) -> int:
    """The bucket of an address (and port), as BucketScheduler hashes it: hash_32(fold, 8)."""
    return hash_32(fold(IPv4Address(addr), port), 8)


def sh_walk(ihash: int, i: int) -> int:
    """Bucket i of sh-fallback's walk from bucket ihash (ip_vs_sh_get_fallback())."""
    return ((ihash + i) % 256 + ihash) % 256


def mh_probe_slot(client: str, i: int) -> int:
    """Slot of probe i of mh-fallback's walk for a client (no mh-port)."""
    v = fold(IPv4Address(client))
    return mh_hash((v + (mh_slot(client) + i) % RING_SIZE) & 0xFFFFFFFF, MH_SEED1) % RING_SIZE


def buckets(default: int, **at: int) -> list[int]:
    """A bucket table naming real `default` everywhere but the buckets given as b<n>=real id."""
    out = [default] * 256
    for name, real_id in at.items():
        out[int(name.removeprefix("b"))] = real_id
    return out


_WALKED = sh_walk(bucket_of(CLIENT), 3)  # real 2 (unavailable) everywhere but here: real 1
assert bucket_of(CLIENT) != _WALKED and bucket_of(CLIENT, 40000) not in (bucket_of(CLIENT), bucket_of(CLIENT, 40001))
_PROBED = mh_probe_slot(CLIENT, 2)
assert _PROBED not in (mh_slot(CLIENT), mh_probe_slot(CLIENT, 0), mh_probe_slot(CLIENT, 1))
BUCKET_SERVICES = {  # service → (entry, its bucket table or ring)
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8100): (
        ServiceEntry(15, 0, XdpKind.SH, 0), buckets(3, **{f"b{bucket_of(CLIENT)}": 1})),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8101): (
        ServiceEntry(16, SVC_F_HASH_PORT, XdpKind.SH, 1), buckets(3, **{f"b{bucket_of(CLIENT, 40000)}": 1})),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8102): (
        ServiceEntry(17, SVC_F_FALLBACK, XdpKind.SH, 2), buckets(2, **{f"b{_WALKED}": 1})),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8103): (ServiceEntry(18, 0, XdpKind.SH, 2), []),  # 8102's table
    ServiceKey(Protocol.TCP, IPv4Address(VIP_G), 8100): (
        ServiceEntry(19, 0, XdpKind.DH, 3), buckets(13, **{f"b{bucket_of(VIP_G)}": 10})),
    ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 8104): (
        ServiceEntry(20, SVC_F_FALLBACK, XdpKind.MH, 8), ring(2, **{f"slot_{_PROBED}": 1})),
}


def with_buckets(tables: Tables) -> None:
    """A row's setup: the sh, dh and mh-fallback services, their rows, and real_sched: every real
    available but real 2."""
    for key, (entry, real_ids) in BUCKET_SERVICES.items():
        tables.services[key] = entry
        if entry.sched is XdpKind.MH:
            tables.rings[entry.row] = real_ids
        elif real_ids:
            tables.buckets[entry.row] = real_ids
    tables.real_sched = {rid: RealSched(1, rid != 2) for rid in REALS}


def tables_with(*flows: tuple[FlowKey, int], tunnel: bool = True) -> Tables:
    """The lab's services and reals, tx_ports {a0, b0}, and `flows` installed (with reverse entries)."""
    tables = Tables(dict(SERVICES), dict(REALS), tunnel_source=IPv4Address(TUNNEL_SOURCE) if tunnel else None)
    tables.tx_ports.update({A0, B0})
    for flow, real_id in flows:
        tables.install_flow(flow, real_id)
    return tables


def flow(proto: str, vip: str, port: int, client: str = CLIENT, sport: int = 40000) -> FlowKey:
    return FlowKey(Protocol[proto], IPv4Address(client), sport, IPv4Address(vip), port)


def seen(key: FlowKey, bits: TcpSeen) -> Callable[[Tables], None]:
    """A row's setup: the flow `key` has already seen the TCP events `bits` (as XDP stamps them)."""

    def stamp(tables: Tables) -> None:
        entry = tables.flows[key]
        tables.flows[key] = FlowEntry(entry.real_id, entry.service_id, entry.last_seen_ns, bits)

    return stamp


def drop_midflow(*keys: FlowKey) -> Callable[[Tables], None]:
    """A row's setup: the services of `keys` carry SVC_F_DROP_MIDFLOW_MISS, as the daemon writes them
    for a scheduler that cannot re-derive a mid-connection packet's real (rr, wlc, …; not sh, dh, mh)."""

    def mark(tables: Tables) -> None:
        for key in keys:
            entry = tables.services[key.service_key]
            tables.services[key.service_key] = ServiceEntry(entry.service_id, entry.flags | SVC_F_DROP_MIDFLOW_MISS)

    return mark


# --- helpers the scapy expressions use -----------------------------------------------------------
PAD_BYTE = b"\xaa"  # not zero: padding counted into a checksum would show


def padded(pkt: Packet | bytes, count: int) -> bytes:
    """Ethernet padding after the IP packet (tot_len excludes it)."""
    return bytes(pkt) + PAD_BYTE * count


def patch(pkt: Packet | bytes, offset: int, data: bytes) -> bytes:
    """Overwrite bytes of a built frame: for headers that lie, which scapy would otherwise fix."""
    raw = bytearray(bytes(pkt))
    raw[offset : offset + len(data)] = data
    return bytes(raw)


def _zero_sum_payload() -> bytes:
    """A 2-byte UDP payload for which the masqueraded output's checksum computes to 0 (sent as 0xffff)."""
    probe = IP(src=CLIENT, dst="10.1.0.20", ttl=63) / UDP(sport=40000, dport=5353) / Raw(b"\0\0")
    return IP(bytes(probe))[UDP].chksum.to_bytes(2, "big")


ZERO_SUM_PAYLOAD = _zero_sum_payload()
IN_A = f"Ether(src='{GW_A_MAC}', dst='{A0_MAC}')"  # a client's frame arriving on a0


def _namespace() -> dict[str, object]:
    names = dict(globals())
    names.update(MAC=MAC)
    return names


# --- the rows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    name: str
    packet: str  # scapy expression of the input frame
    verdict: Verdict
    reason: Reason
    expected: str | None = None  # scapy expression of the output frame; None: unchanged
    tables: Tables = field(default_factory=tables_with)
    ingress: int = A0
    egress: int | None = None  # REDIRECT target (TX implies the ingress)

    def input_frame(self) -> bytes:
        return bytes(eval(self.packet, _namespace()))  # noqa: S307 (our own table)

    def expected_frame(self) -> bytes:
        return self.input_frame() if self.expected is None else bytes(eval(self.expected, _namespace()))  # noqa: S307

    def expected_egress(self) -> int | None:
        if self.verdict is Verdict.TX:
            return self.ingress
        return self.egress


def _row(name: str, packet: str, verdict: Verdict, reason: Reason, expected: str | None = None, *,
         flows: tuple[tuple[FlowKey, int], ...] = (), tunnel: bool = True, ingress: int = A0,
         egress: int | None = None, setup: Callable[[Tables], None] | None = None, hashed: bool = False) -> Row:
    tables = tables_with(tunnel=tunnel)
    if hashed:
        with_rings(tables)
    for key, real_id in flows:
        tables.install_flow(key, real_id)
    if setup:
        setup(tables)
    return Row(name, packet, verdict, reason, expected, tables, ingress, egress)


V, R = Verdict, Reason
TCP_M = flow("TCP", VIP_M, 80)
UDP_M = flow("UDP", VIP_M, 53)
TCP_G = flow("TCP", VIP_G, 80)
UDP_G = flow("UDP", VIP_G, 53)
TCP_I = flow("TCP", VIP_I, 80)
UDP_I = flow("UDP", VIP_I, 53)
TO_REAL1 = "Ether(src=A0_MAC, dst=MAC['10.1.0.20'])"
TO_REAL3 = "Ether(src=B0_MAC, dst=MAC['10.2.0.20'])"
TO_CLIENT = "Ether(src=A0_MAC, dst=GW_A_MAC)"
TCP_IN = f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/TCP(sport=40000, dport=80, flags='A', seq=1000, ack=2000)/Raw(b'hello')"
UDP_IN = f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/UDP(sport=40000, dport=53)/Raw(b'query')"
TCP_SYN = f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/TCP(sport=40000, dport=80, flags='S', seq=7000)"
SYN_TO_REAL1 = f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)"
REPLY1 = "Ether(src=MAC['10.1.0.20'], dst=A0_MAC)/IP(src='10.1.0.20', dst=CLIENT, ttl=64)"
HASH_SYN = f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/TCP(sport=40000, dport={HASH_PORT}, flags='S', seq=7000)"
HASH_TCP_M = flow("TCP", VIP_M, HASH_PORT)
BUCKET_SYN = f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/TCP(sport=40000, dport={BUCKET_PORT}, flags='S', seq=7000)"
BUCKET_TO_REAL1 = f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)"

ROWS: tuple[Row, ...] = (
    # masquerading, client → real
    _row("masq tcp: DNAT + port map, real on the ingress segment", TCP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),)),
    _row("masq udp: DNAT + port map, TX", UDP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(b'query')",
         flows=((UDP_M, 2),)),
    _row("masq tcp: real behind b0 → REDIRECT", TCP_IN, V.REDIRECT, R.REDIRECT_FORWARD,
         f"{TO_REAL3}/IP(src=CLIENT, dst='10.2.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 3),), egress=B0),
    _row("masq udp: real behind b0 → REDIRECT", UDP_IN, V.REDIRECT, R.REDIRECT_FORWARD,
         f"{TO_REAL3}/IP(src=CLIENT, dst='10.2.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(b'query')",
         flows=((UDP_M, 4),), egress=B0),
    _row("masq tcp: real behind a gateway, port kept", TCP_IN, V.REDIRECT, R.REDIRECT_FORWARD,
         "Ether(src=B0_MAC, dst=GW_B_MAC)/IP(src=CLIENT, dst='10.4.0.20', ttl=63)/TCP(sport=40000, dport=80, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 5),), egress=B0),
    _row("masq tcp: a flow outlives its service's entry (IPVS: connection before service)", TCP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),), setup=lambda t: t.services.pop(ServiceKey(Protocol.TCP, IPv4Address(VIP_M), 80))),
    _row("masq tcp: TTL 1 left to the kernel", TCP_IN.replace("ttl=64", "ttl=1"), V.PASS, R.PASS_TTL_EXCEEDED,
         flows=((TCP_M, 1),)),
    _row("masq tcp: TTL 0 left to the kernel", TCP_IN.replace("ttl=64", "ttl=0"), V.PASS, R.PASS_TTL_EXCEEDED,
         flows=((TCP_M, 1),)),
    _row("masq tcp: TTL 2 becomes 1", TCP_IN.replace("ttl=64", "ttl=2"), V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=1)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),)),
    _row("masq tcp: neighbour unresolved → DNAT, TTL and MACs kept, PASS", TCP_IN, V.PASS, R.PASS_NO_NEIGH,
         f"{IN_A}/IP(src=CLIENT, dst='10.2.0.99', ttl=64)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 6),)),
    _row("masq tcp: no route to the real → PASS unchanged", TCP_IN, V.PASS, R.PASS_NO_ROUTE, flows=((TCP_M, 7),)),
    _row("masq tcp: egress not in tx_ports → DNAT, PASS", TCP_IN, V.PASS, R.PASS_NOT_TX_PORT,
         f"{IN_A}/IP(src=CLIENT, dst='10.6.0.20', ttl=64)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 8),)),
    _row("masq udp: checksum 0 stays 0", UDP_IN.replace("dport=53)", "dport=53, chksum=0)"), V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353, chksum=0)/Raw(b'query')",
         flows=((UDP_M, 2),)),
    _row("masq udp: a computed 0 is sent as 0xffff",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/UDP(sport=40000, dport=53)/Raw(ZERO_SUM_PAYLOAD)", V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(ZERO_SUM_PAYLOAD)",
         flows=((UDP_M, 2),)),
    _row("masq udp: Ethernet padding kept, not summed",
         f"padded({IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/UDP(sport=40000, dport=53)/Raw(b'x'), 17)", V.TX, R.TX_FORWARD,
         f"padded({TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(b'x'), 17)",
         flows=((UDP_M, 2),)),
    _row("masq tcp: Ethernet padding kept, not summed",
         f"padded({IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/TCP(sport=40000, dport=80, flags='A'), 6)", V.TX, R.TX_FORWARD,
         f"padded({TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A'), 6)",
         flows=((TCP_M, 1),)),
    _row("masq tcp: SYN with options",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80, flags='S', options=[('MSS', 1460), ('SAckOK', b''), ('Timestamp', (1, 0)), ('NOP', None), ('WScale', 7)])",
         V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', options=[('MSS', 1460), ('SAckOK', b''), ('Timestamp', (1, 0)), ('NOP', None), ('WScale', 7)])",
         flows=((TCP_M, 1),)),
    _row("masq tcp: FIN", TCP_IN.replace("flags='A'", "flags='FA'"), V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='FA', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),)),
    _row("masq tcp: TOS and DF kept", TCP_IN.replace("ttl=64", "ttl=64, tos=0x28, flags='DF', id=777"), V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63, tos=0x28, flags='DF', id=777)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),)),
    _row("masq tcp: larger than the egress MTU → PASS unchanged",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80, flags='A')/Raw(b'x' * 1500)", V.PASS, R.PASS_FRAG_NEEDED,
         flows=((TCP_M, 1),)),
    # masquerading, real → client
    _row("masq reverse tcp: SNAT back to VIP:80, TX", f"{REPLY1}/TCP(sport=8080, dport=40000, flags='SA')", V.TX, R.TX_REVERSE,
         f"{TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/TCP(sport=80, dport=40000, flags='SA')", flows=((TCP_M, 1),)),
    _row("masq reverse udp: SNAT back to VIP:53, TX", f"{REPLY1}/UDP(sport=5353, dport=40000)/Raw(b'answer')", V.TX, R.TX_REVERSE,
         f"{TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/UDP(sport=53, dport=40000)/Raw(b'answer')", flows=((UDP_M, 2),)),
    _row("masq reverse tcp: from b0 to the client on a0 → REDIRECT",
         "Ether(src=MAC['10.2.0.20'], dst=B0_MAC)/IP(src='10.2.0.20', dst=CLIENT, ttl=64)/TCP(sport=8080, dport=40000, flags='A')/Raw(b'data')",
         V.REDIRECT, R.REDIRECT_REVERSE,
         f"{TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/TCP(sport=80, dport=40000, flags='A')/Raw(b'data')",
         flows=((TCP_M, 3),), ingress=B0, egress=A0),
    _row("masq reverse tcp: TTL 1 left to the kernel", f"{REPLY1.replace('ttl=64', 'ttl=1')}/TCP(sport=8080, dport=40000, flags='A')",
         V.PASS, R.PASS_TTL_EXCEEDED, flows=((TCP_M, 1),)),
    _row("masq reverse tcp: client neighbour unresolved → SNAT, PASS",
         "Ether(src=MAC['10.1.0.20'], dst=A0_MAC)/IP(src='10.1.0.20', dst='10.1.0.77', ttl=64)/TCP(sport=8080, dport=40000, flags='A')",
         V.PASS, R.PASS_NO_NEIGH,
         "Ether(src=MAC['10.1.0.20'], dst=A0_MAC)/IP(src=VIP_M, dst='10.1.0.77', ttl=64)/TCP(sport=80, dport=40000, flags='A')",
         flows=((flow("TCP", VIP_M, 80, client="10.1.0.77"), 1),)),
    _row("masq reverse tcp: no route to the client → PASS unchanged",
         "Ether(src=MAC['10.1.0.20'], dst=A0_MAC)/IP(src='10.1.0.20', dst='10.99.0.5', ttl=64)/TCP(sport=8080, dport=40000, flags='A')",
         V.PASS, R.PASS_NO_ROUTE, flows=((flow("TCP", VIP_M, 80, client="10.99.0.5"), 1),)),
    _row("masq reverse udp: checksum 0 stays 0", f"{REPLY1}/UDP(sport=5353, dport=40000, chksum=0)/Raw(b'answer')", V.TX, R.TX_REVERSE,
         f"{TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/UDP(sport=53, dport=40000, chksum=0)/Raw(b'answer')", flows=((UDP_M, 2),)),
    _row("masq reverse tcp: padding kept", f"padded({REPLY1}/TCP(sport=8080, dport=40000, flags='A'), 6)", V.TX, R.TX_REVERSE,
         f"padded({TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/TCP(sport=80, dport=40000, flags='A'), 6)", flows=((TCP_M, 1),)),
    # direct routing: only the MACs change
    _row("route tcp: MACs only, TX",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='A')/Raw(b'hello')", V.TX, R.TX_FORWARD,
         "Ether(src=A0_MAC, dst=MAC['10.1.0.21'])/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='A')/Raw(b'hello')",
         flows=((TCP_G, 10),)),
    _row("route udp: MACs only, REDIRECT",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G)/UDP(sport=40000, dport=53)/Raw(b'query')", V.REDIRECT, R.REDIRECT_FORWARD,
         "Ether(src=B0_MAC, dst=MAC['10.2.0.21'])/IP(src=CLIENT, dst=VIP_G)/UDP(sport=40000, dport=53)/Raw(b'query')",
         flows=((UDP_G, 11),), egress=B0),
    _row("route tcp: MACs only, REDIRECT",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='PA')/Raw(b'hello')", V.REDIRECT, R.REDIRECT_FORWARD,
         "Ether(src=B0_MAC, dst=MAC['10.2.0.21'])/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='PA')/Raw(b'hello')",
         flows=((TCP_G, 13),), egress=B0),
    _row("route tcp: neighbour unresolved → PASS unchanged (first-packet path)",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='A')", V.PASS, R.PASS_NO_NEIGH, flows=((TCP_G, 12),)),
    _row("route tcp: TTL 1 is not ours to decrement",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G, ttl=1)/TCP(sport=40000, dport=80, flags='A')", V.TX, R.TX_FORWARD,
         "Ether(src=A0_MAC, dst=MAC['10.1.0.21'])/IP(src=CLIENT, dst=VIP_G, ttl=1)/TCP(sport=40000, dport=80, flags='A')",
         flows=((TCP_G, 10),)),
    _row("route udp: padding kept",
         f"padded({IN_A}/IP(src=CLIENT, dst=VIP_G)/UDP(sport=40000, dport=53)/Raw(b'q'), 17)", V.REDIRECT, R.REDIRECT_FORWARD,
         "padded(Ether(src=B0_MAC, dst=MAC['10.2.0.21'])/IP(src=CLIENT, dst=VIP_G)/UDP(sport=40000, dport=53)/Raw(b'q'), 17)",
         flows=((UDP_G, 11),), egress=B0),
    _row("route tcp: egress not in tx_ports → PASS unchanged",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_G)/TCP(sport=40000, dport=80, flags='A')", V.PASS, R.PASS_NOT_TX_PORT, flows=((TCP_G, 14),)),
    # IPIP
    _row("tunnel tcp: outer header to the real, TX",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')/Raw(b'hello')", V.TX, R.TX_FORWARD,
         "Ether(src=A0_MAC, dst=MAC['10.1.0.22'])/IP(src=TUNNEL_SOURCE, dst='10.1.0.22', ttl=64, id=0)/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')/Raw(b'hello')",
         flows=((TCP_I, 20),)),
    _row("tunnel udp: TOS and DF copied to the outer header, REDIRECT",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I, tos=0xb8, flags='DF')/UDP(sport=40000, dport=53)/Raw(b'query')", V.REDIRECT, R.REDIRECT_FORWARD,
         "Ether(src=B0_MAC, dst=MAC['10.2.0.22'])/IP(src=TUNNEL_SOURCE, dst='10.2.0.22', ttl=64, id=0, tos=0xb8, flags='DF')/IP(src=CLIENT, dst=VIP_I, tos=0xb8, flags='DF')/UDP(sport=40000, dport=53)/Raw(b'query')",
         flows=((UDP_I, 21),), egress=B0),
    _row("tunnel tcp: neighbour unresolved → encapsulated, MACs kept, PASS",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')", V.PASS, R.PASS_NO_NEIGH,
         f"{IN_A}/IP(src=TUNNEL_SOURCE, dst='10.2.0.99', ttl=64, id=0)/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')",
         flows=((TCP_I, 22),)),
    _row("tunnel tcp: no tunnel source configured → PASS unchanged",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')", V.PASS, R.PASS_NO_TUNNEL_SRC,
         flows=((TCP_I, 20),), tunnel=False),
    _row("tunnel tcp: padding kept after the inner packet",
         f"padded({IN_A}/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A'), 6)", V.REDIRECT, R.REDIRECT_FORWARD,
         "padded(Ether(src=B0_MAC, dst=MAC['10.2.0.22'])/IP(src=TUNNEL_SOURCE, dst='10.2.0.22', ttl=64, id=0)/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A'), 6)",
         flows=((TCP_I, 23),), egress=B0),
    _row("tunnel tcp: outer packet larger than the MTU → PASS unchanged",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I)/TCP(sport=40000, dport=80, flags='A')/Raw(b'x' * 1450)", V.PASS, R.PASS_FRAG_NEEDED,
         flows=((TCP_I, 20),)),
    _row("tunnel tcp: inner TTL 1 untouched",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_I, ttl=1)/TCP(sport=40000, dport=80, flags='A')", V.TX, R.TX_FORWARD,
         "Ether(src=A0_MAC, dst=MAC['10.1.0.22'])/IP(src=TUNNEL_SOURCE, dst='10.1.0.22', ttl=64, id=0)/IP(src=CLIENT, dst=VIP_I, ttl=1)/TCP(sport=40000, dport=80, flags='A')",
         flows=((TCP_I, 20),)),
    # not ours: passed untouched
    _row("ARP for a VIP", "Ether(src=GW_A_MAC, dst='ff:ff:ff:ff:ff:ff')/ARP(psrc=GW_A, pdst=VIP_M)", V.PASS, R.PASS_NOT_IPV4),
    _row("IPv6", "Ether(src=GW_A_MAC, dst=A0_MAC)/IPv6(src='fd00::1', dst='fd00::2')/TCP(sport=40000, dport=80)", V.PASS, R.PASS_NOT_IPV4),
    _row("VLAN-tagged packet to a VIP with a flow", "Ether(src=GW_A_MAC, dst=A0_MAC)/Dot1Q(vlan=5)/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80)",
         V.PASS, R.PASS_NOT_IPV4, flows=((TCP_M, 1),)),
    _row("IPIP to a VIP", f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80)", V.PASS, R.PASS_OTHER_L4,
         flows=((TCP_M, 1),)),
    _row("ICMP echo to a VIP", f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/ICMP()", V.PASS, R.PASS_ICMP),
    _row("TCP to an address that is no VIP", f"{IN_A}/IP(src=CLIENT, dst='10.1.0.50')/TCP(sport=40000, dport=80)", V.PASS, R.PASS_NOT_VIP),
    _row("TCP to a VIP on a port with no service", f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=81)", V.PASS, R.PASS_NOT_VIP,
         flows=((TCP_M, 1),)),
    _row("first packet of a flow → PASS to NFQUEUE", TCP_IN, V.PASS, R.PASS_FLOW_MISS),
    # a TCP segment of no flow that opens none: dropped in XDP for a service whose scheduler cannot
    # re-derive its real (the daemon sets SVC_F_DROP_MIDFLOW_MISS for rr, wlc, …), up for sh/dh/mh
    _row("rr service: ACK of no flow → DROP in XDP (an ACK flood never reaches NFQUEUE)", TCP_IN, V.DROP,
         R.DROP_NO_FLOW_NOT_SYN, setup=drop_midflow(TCP_M)),
    _row("sh/dh/mh service (no drop bit): ACK of no flow → PASS, Python re-derives the real", TCP_IN, V.PASS,
         R.PASS_FLOW_MISS),
    _row("rr service: SYN of no flow → PASS to NFQUEUE (a first packet)", TCP_SYN, V.PASS, R.PASS_FLOW_MISS,
         setup=drop_midflow(TCP_M)),
    _row("rr service: SYN+RST of no flow opens one (SYN without ACK) → PASS", TCP_SYN.replace("'S'", "'SR'"), V.PASS,
         R.PASS_FLOW_MISS, setup=drop_midflow(TCP_M)),
    _row("rr service: RST of no flow → DROP (as IPVS)", TCP_IN.replace("flags='A'", "flags='R'"), V.DROP,
         R.DROP_NO_FLOW_NOT_SYN, setup=drop_midflow(TCP_M)),
    _row("rr service: RST+ACK of no flow → DROP", TCP_IN.replace("flags='A'", "flags='RA'"), V.DROP,
         R.DROP_NO_FLOW_NOT_SYN, setup=drop_midflow(TCP_M)),
    _row("rr service: SYN-ACK of no flow opens none → DROP", TCP_SYN.replace("'S'", "'SA'"), V.DROP,
         R.DROP_NO_FLOW_NOT_SYN, setup=drop_midflow(TCP_M)),
    _row("rr service: FIN+ACK of no flow → DROP", TCP_IN.replace("flags='A'", "flags='FA'"), V.DROP,
         R.DROP_NO_FLOW_NOT_SYN, setup=drop_midflow(TCP_M)),
    _row("rr routed service: ACK of no flow → DROP", TCP_IN.replace("VIP_M", "VIP_G"), V.DROP, R.DROP_NO_FLOW_NOT_SYN,
         setup=drop_midflow(TCP_G)),
    _row("the drop bit is TCP's: UDP of no flow → PASS to NFQUEUE", UDP_IN, V.PASS, R.PASS_FLOW_MISS,
         setup=drop_midflow(UDP_M)),
    _row("rr service: ACK of a flow → forwarded as ever", TCP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),), setup=drop_midflow(TCP_M)),
    _row("rr service: SYN on a flow that saw FIN → PASS, scheduled anew", TCP_SYN, V.PASS, R.PASS_FLOW_REUSE,
         flows=((TCP_M, 1),), setup=lambda t: (seen(TCP_M, TcpSeen.FIN)(t), drop_midflow(TCP_M)(t))),
    _row("rr service: masqueraded reply of a flow → SNAT, TX (the reverse entry comes first)",
         f"{REPLY1}/TCP(sport=8080, dport=40000, flags='A')", V.TX, R.TX_REVERSE,
         f"{TO_CLIENT}/IP(src=VIP_M, dst=CLIENT, ttl=63)/TCP(sport=80, dport=40000, flags='A')",
         flows=((TCP_M, 1),), setup=drop_midflow(TCP_M)),
    # a SYN reusing a closed connection's 5-tuple is a new connection (IPVS conn_reuse_mode=1)
    _row("SYN on a flow that saw FIN → PASS, scheduled anew", TCP_SYN, V.PASS, R.PASS_FLOW_REUSE,
         flows=((TCP_M, 1),), setup=seen(TCP_M, TcpSeen.ESTABLISHED | TcpSeen.FIN)),
    _row("SYN on a flow that saw RST → PASS, scheduled anew", TCP_SYN, V.PASS, R.PASS_FLOW_REUSE,
         flows=((TCP_M, 1),), setup=seen(TCP_M, TcpSeen.RST)),
    _row("SYN on a routed flow that saw FIN → PASS", TCP_SYN.replace("VIP_M", "VIP_G"), V.PASS, R.PASS_FLOW_REUSE,
         flows=((TCP_G, 10),), setup=seen(TCP_G, TcpSeen.FIN)),
    _row("SYN on a live flow (retransmission) → same real", TCP_SYN, V.TX, R.TX_FORWARD, SYN_TO_REAL1,
         flows=((TCP_M, 1),), setup=seen(TCP_M, TcpSeen.ESTABLISHED)),
    _row("ACK on a flow that saw FIN → same real", TCP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='A', seq=1000, ack=2000)/Raw(b'hello')",
         flows=((TCP_M, 1),), setup=seen(TCP_M, TcpSeen.ESTABLISHED | TcpSeen.FIN)),
    _row("SYN-ACK on a flow that saw RST is no new connection → same real", TCP_SYN.replace("'S'", "'SA'"), V.TX,
         R.TX_FORWARD, SYN_TO_REAL1.replace("'S'", "'SA'"), flows=((TCP_M, 1),), setup=seen(TCP_M, TcpSeen.RST)),
    _row("UDP on a flow stamped FIN (never by XDP) → same real", UDP_IN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(b'query')",
         flows=((UDP_M, 2),), setup=seen(UDP_M, TcpSeen.FIN)),
    _row("flow to an empty real slot", TCP_IN, V.PASS, R.PASS_NO_REAL,
         setup=lambda t: t.flows.__setitem__(TCP_M, FlowEntry(9, 1))),
    # Maglev in XDP: a first packet of an in-kernel mh service creates its flow and goes on as a hit
    _row("mh in XDP: masq SYN creates flow + reverse entry, DNAT, TX", HASH_SYN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True),
    _row("mh in XDP: routed SYN creates the flow, MACs only, TX", HASH_SYN.replace("VIP_M", "VIP_G"), V.TX, R.TX_FORWARD,
         f"Ether(src=A0_MAC, dst=MAC['10.1.0.21'])/IP(src=CLIENT, dst=VIP_G, ttl=64)/TCP(sport=40000, dport={HASH_PORT}, flags='S', seq=7000)",
         hashed=True),
    _row("mh in XDP: IPIP SYN creates the flow, encapsulated, REDIRECT", HASH_SYN.replace("VIP_M", "VIP_I"), V.REDIRECT,
         R.REDIRECT_FORWARD,
         f"Ether(src=B0_MAC, dst=MAC['10.2.0.22'])/IP(src=TUNNEL_SOURCE, dst='10.2.0.22', ttl=64, id=0)/IP(src=CLIENT, dst=VIP_I, ttl=64)/TCP(sport=40000, dport={HASH_PORT}, flags='S', seq=7000)",
         hashed=True, egress=B0),
    _row("mh in XDP: UDP first datagram creates the flow, DNAT, TX",
         f"{IN_A}/IP(src=CLIENT, dst=VIP_M, ttl=64)/UDP(sport=40000, dport=8053)/Raw(b'query')", V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/UDP(sport=40000, dport=5353)/Raw(b'query')", hashed=True),
    _row("mh in XDP: mh-port hashes the client port (slot → real 1, TX)", HASH_SYN.replace(f"dport={HASH_PORT}", "dport=8001"),
         V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True),
    _row("mh in XDP: the same ring without mh-port (slot → real 3, REDIRECT)",
         HASH_SYN.replace(f"dport={HASH_PORT}", "dport=8002"), V.REDIRECT, R.REDIRECT_FORWARD,
         f"{TO_REAL3}/IP(src=CLIENT, dst='10.2.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True, egress=B0),
    _row("mh in XDP: a segment without SYN opens no flow → PASS to NFQUEUE",
         HASH_SYN.replace("flags='S'", "flags='A'"), V.PASS, R.PASS_FLOW_MISS, hashed=True),
    _row("mh in XDP with the drop bit (set by hand): a segment without SYN → DROP",
         HASH_SYN.replace("flags='S'", "flags='A'"), V.DROP, R.DROP_NO_FLOW_NOT_SYN, hashed=True,
         setup=drop_midflow(HASH_TCP_M)),
    _row("mh in XDP: a SYN-ACK opens no flow → PASS to NFQUEUE",
         HASH_SYN.replace("flags='S'", "flags='SA'"), V.PASS, R.PASS_FLOW_MISS, hashed=True),
    _row("mh in XDP: the client's slot is 0 → PASS, Python decides",
         HASH_SYN.replace("VIP_M", "VIP_G").replace(f"dport={HASH_PORT}", "dport=8001"), V.PASS, R.PASS_HASH_EMPTY,
         hashed=True),
    _row("mh in XDP: the slot names an empty real → PASS, Python decides",
         HASH_SYN.replace("VIP_M", "VIP_G").replace(f"dport={HASH_PORT}", "dport=8002"), V.PASS, R.PASS_HASH_EMPTY,
         hashed=True),
    _row("mh in XDP: a reverse entry for the 5-tuple exists → PASS, not overwritten", HASH_SYN, V.PASS, R.PASS_FLOW_MISS,
         hashed=True, setup=lambda t: t.reverse.__setitem__(
             FlowKey(Protocol.TCP, IPv4Address("10.1.0.20"), 8080, IPv4Address(CLIENT), 40000),
             ReverseEntry(IPv4Address(VIP_M), 80, 1, 1))),
    _row("mh in XDP: the service's bit cleared (table pressure) → PASS to NFQUEUE", HASH_SYN, V.PASS, R.PASS_FLOW_MISS,
         hashed=True, setup=lambda t: t.services.__setitem__(
             ServiceKey(Protocol.TCP, IPv4Address(VIP_M), HASH_PORT), ServiceEntry(7, 0))),
    _row("mh in XDP: the flow budget the daemon granted is spent → PASS to NFQUEUE", HASH_SYN, V.PASS,
         R.PASS_HASH_BUDGET, hashed=True, setup=lambda t: setattr(t, "hash_budget", 0)),
    _row("mh in XDP: the last flow of the budget is created", HASH_SYN, V.TX, R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True, setup=lambda t: setattr(t, "hash_budget", 1)),
    _row("mh in XDP: an existing flow is a plain hit", HASH_SYN, V.REDIRECT, R.REDIRECT_FORWARD,
         f"{TO_REAL3}/IP(src=CLIENT, dst='10.2.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True, egress=B0, flows=((HASH_TCP_M, 3),)),
    # a SYN reusing a closed connection's 5-tuple: XDP removes the old entries and schedules anew
    _row("mh in XDP: SYN on a flow that saw FIN → old entries go, rescheduled from the ring, TX", HASH_SYN, V.TX,
         R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True, flows=((HASH_TCP_M, 3),), setup=seen(HASH_TCP_M, TcpSeen.ESTABLISHED | TcpSeen.FIN)),
    _row("mh in XDP: SYN on a flow that saw RST, same real: its reverse entry is made anew", HASH_SYN, V.TX,
         R.TX_FORWARD,
         f"{TO_REAL1}/IP(src=CLIENT, dst='10.1.0.20', ttl=63)/TCP(sport=40000, dport=8080, flags='S', seq=7000)",
         hashed=True, flows=((HASH_TCP_M, 1),), setup=seen(HASH_TCP_M, TcpSeen.RST)),
    _row("mh in XDP: SYN reusing a closed flow whose slot is 0 → old entries go, PASS, Python decides",
         HASH_SYN.replace("VIP_M", "VIP_G").replace(f"dport={HASH_PORT}", "dport=8001"), V.PASS, R.PASS_HASH_EMPTY,
         hashed=True, flows=((flow("TCP", VIP_G, 8001), 10),),
         setup=seen(flow("TCP", VIP_G, 8001), TcpSeen.ESTABLISHED | TcpSeen.FIN)),
    _row("mh in XDP: SYN reusing a closed flow, budget spent → PASS (old entries gone)", HASH_SYN, V.PASS,
         R.PASS_HASH_BUDGET, hashed=True, flows=((HASH_TCP_M, 1),),
         setup=lambda t: (seen(HASH_TCP_M, TcpSeen.FIN)(t), setattr(t, "hash_budget", 0))),
    # sh, dh in XDP from bucket_tables, and mh-fallback's walk: availability from real_sched
    _row("sh in XDP: the client's bucket names real 1 → flow created, DNAT, TX", BUCKET_SYN, V.TX, R.TX_FORWARD,
         BUCKET_TO_REAL1, setup=with_buckets),
    _row("sh in XDP: sh-port hashes the client port (its bucket → real 1, TX)",
         BUCKET_SYN.replace("dport=8100", "dport=8101"), V.TX, R.TX_FORWARD, BUCKET_TO_REAL1, setup=with_buckets),
    _row("sh in XDP: sh-port, another client port → another bucket (real 3, REDIRECT)",
         BUCKET_SYN.replace("dport=8100", "dport=8101").replace("sport=40000", "sport=40001"), V.REDIRECT,
         R.REDIRECT_FORWARD, BUCKET_TO_REAL1.replace("sport=40000", "sport=40001").replace(TO_REAL1, TO_REAL3)
         .replace("10.1.0.20", "10.2.0.20"), setup=with_buckets, egress=B0),
    _row("sh-fallback in XDP: the client's real is unavailable → the kernel's walk finds real 1, TX",
         BUCKET_SYN.replace("dport=8100", "dport=8102"), V.TX, R.TX_FORWARD, BUCKET_TO_REAL1, setup=with_buckets),
    _row("sh in XDP without sh-fallback: the client's real is unavailable → PASS, the daemon decides",
         BUCKET_SYN.replace("dport=8100", "dport=8103"), V.PASS, R.PASS_HASH_EMPTY, setup=with_buckets),
    _row("dh in XDP: the VIP's bucket names real 10 → routed, MACs only, TX",
         BUCKET_SYN.replace("VIP_M", "VIP_G"), V.TX, R.TX_FORWARD,
         "Ether(src=A0_MAC, dst=MAC['10.1.0.21'])/IP(src=CLIENT, dst=VIP_G, ttl=64)/TCP(sport=40000, dport=8100, flags='S', seq=7000)",
         setup=with_buckets),
    _row("mh-fallback in XDP: the client's slot's real is unavailable → the walk's third probe, real 1, TX",
         BUCKET_SYN.replace("dport=8100", "dport=8104"), V.TX, R.TX_FORWARD, BUCKET_TO_REAL1, setup=with_buckets),
    # malformed IPv4: dropped (ip_rcv_core drops these too)
    _row("ihl 4", f"patch({TCP_IN}, 14, b'\\x44')", V.DROP, R.DROP_BAD_IPV4, flows=((TCP_M, 1),)),
    _row("ihl*4 past the frame", f"patch({IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80), 14, b'\\x4f\\x00\\x00\\x3c')",
         V.DROP, R.DROP_BAD_IPV4, flows=((TCP_M, 1),)),
    _row("tot_len below ihl*4", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, len=16)/TCP(sport=40000, dport=80)", V.DROP, R.DROP_BAD_IPV4,
         flows=((TCP_M, 1),)),
    _row("tot_len past the frame", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, len=200)/TCP(sport=40000, dport=80)", V.DROP, R.DROP_BAD_IPV4,
         flows=((TCP_M, 1),)),
    _row("IPv4 header cut short", f"bytes({TCP_IN})[:26]", V.DROP, R.DROP_BAD_IPV4),
    _row("version 6 in an IPv4 EtherType", f"patch({TCP_IN}, 14, b'\\x65')", V.DROP, R.DROP_BAD_IPV4, flows=((TCP_M, 1),)),
    # valid but not for the fast path: passed untouched
    _row("IPv4 options to a VIP", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, options=[IPOption_NOP()] * 4)/TCP(sport=40000, dport=80, flags='A')",
         V.PASS, R.PASS_IP_OPTIONS, flows=((TCP_M, 1),)),
    _row("first fragment (MF) to a VIP", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, flags='MF')/TCP(sport=40000, dport=80, flags='A')",
         V.PASS, R.PASS_FRAGMENT, flows=((TCP_M, 1),)),
    _row("later fragment (offset) to a VIP", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, frag=10, proto=6)/Raw(b'x' * 24)",
         V.PASS, R.PASS_FRAGMENT, flows=((TCP_M, 1),)),
    # malformed L4: passed untouched (the kernel drops them on delivery, a router forwards them)
    _row("TCP doff 4", f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80, dataofs=4)", V.PASS, R.PASS_BAD_L4,
         flows=((TCP_M, 1),)),
    _row("TCP doff*4 past the packet", f"{IN_A}/IP(src=CLIENT, dst=VIP_M)/TCP(sport=40000, dport=80, dataofs=15)/Raw(b'abcde')",
         V.PASS, R.PASS_BAD_L4, flows=((TCP_M, 1),)),
    _row("TCP header cut short", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, proto=6)/Raw(b'\\x9c\\x40\\x00\\x50' + b'\\x00' * 6)",
         V.PASS, R.PASS_BAD_L4, flows=((TCP_M, 1),)),
    _row("TCP header running into Ethernet padding",
         f"padded({IN_A}/IP(src=CLIENT, dst=VIP_M, proto=6)/Raw(b'\\x9c\\x40\\x00\\x50' + b'\\x00' * 6), 16)",
         V.PASS, R.PASS_BAD_L4, flows=((TCP_M, 1),)),
    _row("UDP header cut short", f"{IN_A}/IP(src=CLIENT, dst=VIP_M, proto=17)/Raw(b'\\x9c\\x40\\x00\\x35')",
         V.PASS, R.PASS_BAD_L4, flows=((UDP_M, 2),)),
)


def describe_mismatch(expected: bytes, got: bytes) -> str:
    """Both frames dissected field by field, side by side (scapy's show2), differing lines marked."""
    return side_by_side(expected, got)
