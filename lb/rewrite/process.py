"""The rewrite model: the exact frame and verdict the XDP program produces for a frame.

`process()` follows bpf/lb_kern.c step for step (parse → flow lookup, else reverse lookup, else service
lookup → rewrite → verdict) over a `Tables` and a `Fib`, and returns the bytes XDP would emit and the
reason it would count. Tests use it as the oracle; the first-packet path uses it as its rewriter (wrap the queued IP
packet in an Ethernet header addressed to the ingress interface, process(), send the output frame on
the egress interface). The policy it encodes is written down in docs/datapath.md.

Like the program, the model writes to the maps in one case only: a first packet of a service XDP
decides itself (lb.rewrite.schedule, schedule_new() in lb_kern.c) creates its flow entries, moves an
rr/wrr cursor, counts the connection and records a persistence template in the `Tables` it is given,
so tests compare the frame, the reason and what changed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import NamedTuple

import lb.rewrite.checksum as checksum
from lb.model import FlowKey, Forwarding, Protocol, ServiceKey, flow_key
from lb.packet import (
    ETH_HLEN,
    IP_CHECK,
    IP_DADDR,
    IP_DF,
    IP_FRAG_OFF,
    IP_SADDR,
    IP_TTL,
    IPV4_HLEN,
    L4_DPORT,
    L4_SPORT,
    TCP_HLEN,
    IpProto,
    TcpFlags,
    carries_ipv4,
    ipv4_at,
    l4_at,
    pack_ipv4,
    tcp_opens,
)
from lb.rewrite.counting import count_gone, count_transition
from lb.rewrite.fib import Fib, FibResult, FibStatus
from lb.rewrite.schedule import schedule_new
from lb.rewrite.verdicts import Reason, Verdict
from lb.tables import (
    SVC_F_DROP_MIDFLOW_MISS,
    FlowEntry,
    RealEntry,
    ServiceEntry,
    Tables,
    TcpSeen,
)

IPIP_TTL = 64
# plain ints: the first-packet path runs this model for every new flow, and an enum member costs more
_FIN, _RST = int(TcpFlags.FIN), int(TcpFlags.RST)
_SYN, _ACK = int(TcpFlags.SYN), int(TcpFlags.ACK)
_TCP, _UDP, _ICMP = int(IpProto.TCP), int(IpProto.UDP), int(IpProto.ICMP)

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_PROTOCOLS = {int(p): p for p in Protocol}
_tuple = tuple.__new__


@dataclass(frozen=True)
class Counted:
    """Which per-service / per-real counters the packet adds to, and by how many bytes."""

    service_id: int
    real_id: int
    outbound: bool  # real → client (masquerading replies)
    ip_bytes: int


@dataclass(frozen=True)
class Result:
    """What XDP does with one frame. `egress_ifindex` is set for TX (the ingress) and REDIRECT."""

    verdict: Verdict
    frame_out: bytes
    reason: Reason
    egress_ifindex: int | None = None
    counted: Counted | None = None
    scheduled: int | None = None  # the real XDP scheduled this first packet to (a hash_conns count)


class _Packet(NamedTuple):
    """Offsets and fields of a frame that passed parsing (plain IPv4, no options, TCP or UDP). A
    tuple, made without NamedTuple's Python-level __new__ (_parse): the first-packet path parses
    every new flow's frame."""

    key: FlowKey
    ttl: int
    tos: int
    tot_len: int
    l4: int  # offset of the L4 header
    check: int  # offset of the L4 checksum
    opens: bool = False  # TCP SYN without ACK: a connection attempt (tcp_opens)
    tcp_flags: int = 0


def process(frame: bytes, tables: Tables, fib: Fib, ingress_ifindex: int, now_ns: int = 0) -> Result:
    """The frame XDP emits for `frame` arriving on `ingress_ifindex`, with its verdict and reason.

    A flow XDP schedules itself is created in `tables`, stamped `now_ns` (bpf_ktime_get_ns()'s clock).
    """
    parsed = _parse(frame)
    if isinstance(parsed, Reason):
        return Result(parsed.verdict, frame, parsed)
    flow = tables.flows.get(parsed.key)
    if flow is None:
        if parsed.key in tables.reverse:
            return _reverse(frame, parsed, tables, fib, ingress_ifindex)
        service = tables.services.get(ServiceKey(parsed.key.proto, parsed.key.daddr, parsed.key.dport))
        if service is None:
            return Result(Verdict.PASS, frame, Reason.PASS_NOT_VIP)
        if parsed.key.proto is Protocol.TCP and not parsed.opens and service.flags & SVC_F_DROP_MIDFLOW_MISS:
            # a mid-connection segment of no flow, for a scheduler that cannot re-derive its real:
            # dropped here as the first-packet path would (lb.balancer.decide), not passed up
            return Result(Verdict.DROP, frame, Reason.DROP_NO_FLOW_NOT_SYN)
        return _schedule(frame, parsed, service, tables, fib, ingress_ifindex, now_ns)
    if parsed.opens and flow.tcp_seen & (TcpSeen.FIN | TcpSeen.RST):
        # a client reusing the port of a closed connection: scheduled anew (IPVS conn_reuse_mode=1),
        # by XDP itself for a service it schedules (its closed entries go first), else by Python
        service = tables.services.get(ServiceKey(parsed.key.proto, parsed.key.daddr, parsed.key.dport))
        if service is None or not service.in_xdp:
            return Result(Verdict.PASS, frame, Reason.PASS_FLOW_REUSE)
        tables.remove_flow(parsed.key)  # forget_flow() in lb_kern.c
        count_gone(tables, flow.real_id, flow.tcp_seen)
        return _schedule(frame, parsed, service, tables, fib, ingress_ifindex, now_ns)
    return _forward(frame, parsed, flow, tables, fib, ingress_ifindex)


def _schedule(frame: bytes, parsed: _Packet, service: ServiceEntry, tables: Tables, fib: Fib, ingress_ifindex: int,
              now_ns: int) -> Result:
    """The `schedule:` label of lb_kern.c: XDP schedules the first packet itself or passes it up."""
    if not service.in_xdp or not (parsed.opens or parsed.key.proto is Protocol.UDP):
        return Result(Verdict.PASS, frame, Reason.PASS_FLOW_MISS)
    # What touch_flow() ORs in when the flow's first packet continues as a hit (never ESTABLISHED:
    # an opening segment has no ACK).
    seen = (TcpSeen.FIN if parsed.tcp_flags & _FIN else TcpSeen.NONE) | (
        TcpSeen.RST if parsed.tcp_flags & _RST else TcpSeen.NONE
    )
    scheduled = schedule_new(parsed.key, service, tables, now_ns, seen)
    if isinstance(scheduled, Reason):
        return Result(Verdict.PASS, frame, scheduled)
    result = _forward(frame, parsed, tables.flows[parsed.key], tables, fib, ingress_ifindex)
    return Result(result.verdict, result.frame_out, result.reason, result.egress_ifindex, result.counted, scheduled)


def _forward(frame: bytes, parsed: _Packet, flow: FlowEntry, tables: Tables, fib: Fib, ingress_ifindex: int) -> Result:
    """A client → VIP packet of a flow: the `forward:` label of lb_kern.c."""
    seen = flow.tcp_seen | _seen_bits(parsed.tcp_flags)
    if seen != flow.tcp_seen:  # touch_flow() changed the bits (the model does not store them)
        count_transition(tables, flow.real_id, flow.tcp_seen, TcpSeen(seen))
    real = tables.reals.get(flow.real_id)
    if real is None:
        return Result(Verdict.PASS, frame, Reason.PASS_NO_REAL)
    return _forward_to(frame, parsed, real, flow.service_id, flow.real_id, tables.tx_ports, tables.tunnel_source,
                       fib, ingress_ifindex)


def forward_placed(frame: bytes, real: RealEntry, service_id: int, real_id: int, tx_ports: set[int],
                   tunnel_source: IPv4Address | None, fib: Fib, ingress_ifindex: int) -> Result:
    """process() of a frame whose flow was just sent to `real` (real `real_id` of service `service_id`):
    exactly what process(frame, tables, …) returns when `tables` holds that flow's fresh entry (no FIN
    or RST seen), the real and the service, without building the Tables. The first-packet path
    forwards every packet it placed this way (lb.daemon.firstpath)."""
    parsed = _parse(frame)
    if isinstance(parsed, Reason):
        return Result(parsed.verdict, frame, parsed)
    return _forward_to(frame, parsed, real, service_id, real_id, tx_ports, tunnel_source, fib, ingress_ifindex)


def _forward_to(frame: bytes, parsed: _Packet, real: RealEntry, service_id: int, real_id: int, tx_ports: set[int],
                tunnel_source: IPv4Address | None, fib: Fib, ingress_ifindex: int) -> Result:
    counted = Counted(service_id, real_id, False, parsed.tot_len)
    if real.forwarding is Forwarding.MASQ:
        return _masq_forward(frame, parsed, real, fib, ingress_ifindex, tx_ports, counted)
    if real.forwarding is Forwarding.ROUTE:
        return _route(frame, parsed, real, fib, ingress_ifindex, tx_ports, counted)
    return _tunnel(frame, parsed, real, tunnel_source, fib, ingress_ifindex, tx_ports, counted)


def _seen_bits(tcp_flags: int) -> int:
    """tcp_seen_bits() in lb_parse.h: the TcpSeen bits a segment carries (none for UDP)."""
    established = TcpSeen.ESTABLISHED if tcp_flags & _ACK and not tcp_flags & _SYN else 0
    return established | (TcpSeen.FIN if tcp_flags & _FIN else 0) | (TcpSeen.RST if tcp_flags & _RST else 0)


def _parse(frame: bytes) -> _Packet | Reason:
    """parse_ethhdr / parse_iphdr / parse_tcphdr / parse_udphdr and the policy checks between them."""
    if not carries_ipv4(frame):
        return Reason.PASS_NOT_IPV4
    ip = ipv4_at(frame, ETH_HLEN)
    # parse_iphdr(): tot_len shorter than the header or past the frame lies about its length
    if ip is None or ip.tot_len < ip.ihl or ip.end > len(frame):
        return Reason.DROP_BAD_IPV4
    if ip.ihl != IPV4_HLEN:
        return Reason.PASS_IP_OPTIONS
    if ip.fragment:
        return Reason.PASS_FRAGMENT
    proto = ip.proto
    if proto != _TCP and proto != _UDP:
        return Reason.PASS_ICMP if proto == _ICMP else Reason.PASS_OTHER_L4
    end = ip.end
    l4 = l4_at(frame, ip, end)
    # parse_tcphdr(): the data offset must cover the fixed header and end within the packet
    if l4 is None or (proto == _TCP and (l4.hlen < TCP_HLEN or l4.at + l4.hlen > end)):
        return Reason.PASS_BAD_L4
    key = flow_key(_PROTOCOLS[proto], ip.saddr, l4.sport, ip.daddr, l4.dport)
    return _tuple(_Packet, (key, ip.ttl, ip.tos, ip.tot_len, l4.at, l4.check, proto == _TCP and tcp_opens(l4.flags),
                            l4.flags))


def _next_hop(result: FibResult, tot_len: int, ingress: int, tx_ports: set[int], outbound: bool) -> tuple[str, Reason]:
    """next_hop() in lb_kern.c, with the MTU check bpf_fib_lookup() makes before the neighbour's."""
    status = result.status
    if status in (FibStatus.SUCCESS, FibStatus.NO_NEIGH) and tot_len > result.mtu:
        status = FibStatus.FRAG_NEEDED
    if status is FibStatus.SUCCESS:
        if result.ifindex == ingress:
            return "tx", Reason.TX_REVERSE if outbound else Reason.TX_FORWARD
        if result.ifindex in tx_ports:
            return "redirect", Reason.REDIRECT_REVERSE if outbound else Reason.REDIRECT_FORWARD
        return "kernel", Reason.PASS_NOT_TX_PORT
    if status is FibStatus.NO_NEIGH:
        return "kernel", Reason.PASS_NO_NEIGH
    if status is FibStatus.FRAG_NEEDED:
        return "none", Reason.PASS_FRAG_NEEDED
    return "none", Reason.PASS_NO_ROUTE


def _masq_forward(
    frame: bytes, p: _Packet, real: RealEntry, fib: Fib, ingress: int, tx_ports: set[int], counted: Counted
) -> Result:
    if p.ttl <= 1:
        return Result(Verdict.PASS, frame, Reason.PASS_TTL_EXCEEDED)
    found = fib(real.address, ingress)
    hop, reason = _next_hop(found, p.tot_len, ingress, tx_ports, outbound=False)
    if hop == "none":
        return Result(Verdict.PASS, frame, reason)
    out = bytearray(frame)
    _nat(out, p, ETH_HLEN + IP_DADDR, p.l4 + L4_DPORT, real.address, real.port, dec_ttl=hop != "kernel")
    return _emit(out, hop, reason, found, ingress, counted)


def _reverse(frame: bytes, p: _Packet, tables: Tables, fib: Fib, ingress: int) -> Result:
    rev = tables.reverse[p.key]
    if p.ttl <= 1:
        return Result(Verdict.PASS, frame, Reason.PASS_TTL_EXCEEDED)
    found = fib(p.key.daddr, ingress)
    hop, reason = _next_hop(found, p.tot_len, ingress, tables.tx_ports, outbound=True)
    if hop == "none":
        return Result(Verdict.PASS, frame, reason)
    out = bytearray(frame)
    _nat(out, p, ETH_HLEN + IP_SADDR, p.l4 + L4_SPORT, rev.vip, rev.vport, dec_ttl=hop != "kernel")
    counted = Counted(rev.service_id, rev.real_id, True, p.tot_len)
    return _emit(out, hop, reason, found, ingress, counted)


def _route(
    frame: bytes, p: _Packet, real: RealEntry, fib: Fib, ingress: int, tx_ports: set[int], counted: Counted
) -> Result:
    found = fib(real.address, ingress)
    hop, reason = _next_hop(found, p.tot_len, ingress, tx_ports, outbound=False)
    if hop in ("none", "kernel"):
        return Result(Verdict.PASS, frame, reason)  # unmodified: the first-packet path forwards it
    return _emit(bytearray(frame), hop, reason, found, ingress, counted)


def _tunnel(
    frame: bytes,
    p: _Packet,
    real: RealEntry,
    source: IPv4Address | None,
    fib: Fib,
    ingress: int,
    tx_ports: set[int],
    counted: Counted,
) -> Result:
    if source is None or int(source) == 0:
        return Result(Verdict.PASS, frame, Reason.PASS_NO_TUNNEL_SRC)
    found = fib(real.address, ingress)
    hop, reason = _next_hop(found, p.tot_len + IPV4_HLEN, ingress, tx_ports, outbound=False)
    if hop == "none":
        return Result(Verdict.PASS, frame, reason)
    (frag_off,) = _U16.unpack_from(frame, ETH_HLEN + IP_FRAG_OFF)
    outer = pack_ipv4(p.tos, p.tot_len + IPV4_HLEN, frag_off & IP_DF, IPIP_TTL, IpProto.IPIP, source.packed,
                      real.address.packed)
    _U16.pack_into(outer, IP_CHECK, checksum.ipv4_header_checksum(bytes(outer)))
    out = bytearray(frame[:ETH_HLEN]) + outer + frame[ETH_HLEN:]
    return _emit(out, hop, reason, found, ingress, counted)


def _nat(out: bytearray, p: _Packet, addr_at: int, port_at: int, addr: IPv4Address, port: int, dec_ttl: bool) -> None:
    """nat_rewrite() in lb_rewrite.h: address, port, TTL, and both checksums by RFC 1624."""
    ttl, check = ETH_HLEN + IP_TTL, ETH_HLEN + IP_CHECK
    (old_addr,) = _U32.unpack_from(out, addr_at)
    (old_port,) = _U16.unpack_from(out, port_at)
    (old_word,) = _U16.unpack_from(out, ttl)  # TTL and protocol: the 16-bit word the checksum covers
    new_addr = int(addr)
    out[ttl] -= int(dec_ttl)
    _U32.pack_into(out, addr_at, new_addr)
    _U16.pack_into(out, port_at, port)
    (new_word,) = _U16.unpack_from(out, ttl)
    (ip_check,) = _U16.unpack_from(out, check)
    _U16.pack_into(out, check, checksum.replace_4_2(ip_check, old_addr, new_addr, old_word, new_word))
    (l4_check,) = _U16.unpack_from(out, p.check)
    is_udp = p.key.proto is Protocol.UDP
    if is_udp and l4_check == 0:
        return  # RFC 768: no checksum stays no checksum
    l4_check = checksum.replace_4_2(l4_check, old_addr, new_addr, old_port, port)
    if is_udp and l4_check == 0:
        l4_check = 0xFFFF
    _U16.pack_into(out, p.check, l4_check)


def _emit(out: bytearray, hop: str, reason: Reason, found: FibResult, ingress: int, counted: Counted) -> Result:
    """The verdict step: hand a rewritten packet to the kernel as it is, or set MACs and transmit."""
    if hop == "kernel":
        return Result(Verdict.PASS, bytes(out), reason, counted=counted)
    out[0:6] = found.dmac
    out[6:12] = found.smac
    if hop == "tx":
        return Result(Verdict.TX, bytes(out), reason, ingress, counted)
    return Result(Verdict.REDIRECT, bytes(out), reason, found.ifindex, counted)
