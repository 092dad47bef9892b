"""Differential property test: random valid TCP/UDP packets against random services, reals and flows;
the XDP program and the rewrite model must emit the same bytes and verdict, and every emitted packet's
checksums must verify when scapy recomputes them."""

from __future__ import annotations

from ipaddress import IPv4Address

import fixtures as F
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from lb.datapath import progrun
from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
from lb.rewrite import Verdict, process
from lb.sched.xdpkind import XdpKind
from lb.tables import RING_SIZE, SVC_F_DROP_MIDFLOW_MISS, SVC_F_HASH_PORT, RealEntry, ServiceEntry, Tables

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]

REAL_ADDRESSES = ["10.1.0.20", "10.1.0.21", "10.2.0.20", "10.2.0.22", "10.4.0.9", "10.2.0.99", "10.6.0.20", "10.99.0.1"]
CLIENTS = ["10.3.0.5", "10.3.7.200", "10.1.0.20", "10.1.0.77", "10.99.0.5"]
VIPS = ["10.0.0.100", "10.0.0.101"]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Tables, bytes, int]:
    proto = draw(st.sampled_from([Protocol.TCP, Protocol.UDP]))
    vip, vport = draw(st.sampled_from(VIPS)), draw(st.sampled_from([80, 53, 443]))
    forwarding = draw(st.sampled_from(list(Forwarding)))
    real_addr = draw(st.sampled_from(REAL_ADDRESSES))
    rport = draw(st.integers(1, 65535)) if forwarding is Forwarding.MASQ else vport
    client, cport = draw(st.sampled_from(CLIENTS)), draw(st.integers(1, 65535))
    tables = Tables(tunnel_source=draw(st.sampled_from([IPv4Address(F.TUNNEL_SOURCE)] * 4 + [None])))
    tables.tx_ports.update(draw(st.sets(st.sampled_from([F.A0, F.B0, F.C0]))))
    real_id = draw(st.integers(0, 63))
    # Sometimes XDP schedules the service itself (Maglev): a ring naming the real, another id or 0
    # everywhere (a one-value ring keeps the example cheap; test_maglev_xdp.py checks the hash).
    hashed = draw(st.sampled_from([False] * 2 + [True]))
    row = draw(st.integers(0, 3))
    flags = SVC_F_HASH_PORT if hashed and draw(st.booleans()) else 0
    # The daemon's drop bit (rr, wlc, …: a TCP segment of no flow that opens none is dropped in XDP);
    # never set for mh by the daemon, but the program must agree with the model on any combination.
    flags |= SVC_F_DROP_MIDFLOW_MISS if draw(st.sampled_from([False, True, True])) else 0
    kind = XdpKind.MH if hashed else XdpKind.DAEMON
    tables.services[ServiceKey(proto, IPv4Address(vip), vport)] = ServiceEntry(
        draw(st.integers(0, 63)), flags, kind, row if hashed else 0)
    if hashed:
        tables.rings[row] = [draw(st.sampled_from([real_id, real_id, 0, 63]))] * RING_SIZE
        tables.hash_budget = draw(st.sampled_from([None, None, None, 0, 1]))
    tables.reals[real_id] = RealEntry(IPv4Address(real_addr), rport, forwarding)
    flow = FlowKey(proto, IPv4Address(client), cport, IPv4Address(vip), vport)
    # mostly the fast path; sometimes a first packet (often, when XDP may schedule it)
    if draw(st.sampled_from([True] * (1 if hashed else 9) + [False])):
        tables.install_flow(flow, real_id)

    ip = IP(src=client, dst=vip, ttl=draw(st.integers(0, 255)), tos=draw(st.integers(0, 255)),
            id=draw(st.integers(0, 65535)), flags=draw(st.sampled_from([0, "DF"])))
    payload = Raw(draw(st.binary(max_size=64)))
    if proto is Protocol.TCP:
        l4 = TCP(sport=cport, dport=vport, flags=draw(st.sampled_from(["S", "A", "PA", "FA", "R", "SA", "S", "SR"])),
                 seq=draw(st.integers(0, 2**32 - 1)), window=draw(st.integers(0, 65535)))
    else:
        l4 = UDP(sport=cport, dport=vport, chksum=draw(st.sampled_from([None, 0])))
    frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / ip / l4 / payload)
    reply = draw(st.sampled_from([True, False])) and forwarding is Forwarding.MASQ and flow in tables.flows
    if reply:  # the real's answer instead
        rip = IP(src=real_addr, dst=client, ttl=ip.ttl, id=ip.id)
        rl4 = (TCP(sport=rport, dport=cport, flags="A") if proto is Protocol.TCP
               else UDP(sport=rport, dport=cport))
        frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / rip / rl4 / payload)
    frame += F.PAD_BYTE * max(0, 60 - len(frame))
    return tables, frame, draw(st.sampled_from([F.A0, F.B0]))


def model_tables_key(frame: bytes) -> FlowKey:
    """The 5-tuple of a client's frame (plain IPv4, TCP or UDP)."""
    pkt = Ether(frame)
    l4 = pkt[TCP] if pkt.haslayer(TCP) else pkt[UDP]
    return FlowKey(Protocol(pkt[IP].proto), IPv4Address(pkt[IP].src), l4.sport, IPv4Address(pkt[IP].dst), l4.dport)


def _checksums_verify(frame: bytes) -> None:
    """Scapy recomputes every checksum of the emitted packet; they must equal what was emitted."""
    pkt = Ether(frame)
    for layer in (IP, TCP, UDP):
        current = pkt
        while current is not None and current.haslayer(layer):
            hdr = current[layer]
            if layer is UDP and hdr.chksum == 0:
                break  # RFC 768: no checksum
            emitted = hdr.chksum
            fresh = hdr.copy()
            del fresh.chksum
            if layer is IP:
                recomputed = IP(bytes(fresh)).chksum
            else:
                under = hdr.underlayer.copy()
                under.remove_payload()
                rebuilt = IP(bytes(under / fresh))
                recomputed = rebuilt[layer].chksum
            assert emitted == recomputed, f"{layer.__name__} checksum {emitted:#06x} != {recomputed:#06x}"
            current = hdr.payload if layer is IP else None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario())
def test_xdp_equals_model(datapath, case: tuple[Tables, bytes, int]) -> None:
    tables, frame, ingress = case
    datapath.maps.write(tables)
    retval, out, _ = progrun.run(datapath.prog_fd, frame, ingress_ifindex=ingress)
    model_tables = tables.copy()
    model = process(frame, model_tables, F.LAB_FIB, ingress)
    event(model.reason.name)
    if model.scheduled is not None:
        event("scheduled in XDP")
    # the entries XDP created (Maglev in XDP) are the model's; TCP bits only for a created flow (a hit
    # stamps bits the model does not track)
    flows, reverse = datapath.maps.read_flows()
    assert {k: (e.real_id, e.service_id) for k, e in flows.items()} == {
        k: (e.real_id, e.service_id) for k, e in model_tables.flows.items()}
    assert reverse.keys() == model_tables.reverse.keys()
    assert datapath.maps.read().hash_budget == model_tables.hash_budget
    if model.scheduled is not None:
        assert flows[model_tables_key(frame)].tcp_seen == model_tables.flows[model_tables_key(frame)].tcp_seen
    assert out == model.frame_out, F.describe_mismatch(model.frame_out, out)
    assert Verdict(retval) is model.verdict
    if model.verdict in (Verdict.TX, Verdict.REDIRECT) or out != frame:
        _checksums_verify(out)


@st.composite
def flowless(draw: st.DrawFn) -> tuple[Tables, bytes]:
    """A TCP segment with any of the 256 flag bytes that misses the flow table, to a service with or
    without the drop bit (and sometimes scheduled in XDP): where the program's `opens` and the
    model's must agree bit for bit, and the drop bit decides between DROP and the first-packet path."""
    hashed = draw(st.booleans())
    flags = SVC_F_HASH_PORT if hashed and draw(st.booleans()) else 0
    flags |= SVC_F_DROP_MIDFLOW_MISS if draw(st.booleans()) else 0
    tables = Tables(tx_ports={F.A0, F.B0})
    tables.services[ServiceKey(Protocol.TCP, IPv4Address(VIPS[0]), 80)] = ServiceEntry(
        1, flags, XdpKind.MH if hashed else XdpKind.DAEMON)
    tables.reals[1] = RealEntry(IPv4Address("10.1.0.20"), 8080, Forwarding.MASQ)
    if hashed:
        tables.rings[0] = [draw(st.sampled_from([0, 1]))] * RING_SIZE
    client, cport = draw(st.sampled_from(CLIENTS)), draw(st.integers(1, 65535))
    if draw(st.integers(0, 9)) == 0:  # a flow of another client port: a miss all the same
        tables.install_flow(FlowKey(Protocol.TCP, IPv4Address(client), cport ^ 1, IPv4Address(VIPS[0]), 80), 1)
    l4 = TCP(sport=cport, dport=80, flags=draw(st.integers(0, 255)), seq=draw(st.integers(0, 2**32 - 1)))
    frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=client, dst=VIPS[0]) / l4 / Raw(b"x"))
    return tables, frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flowless())
def test_flowless_segments_xdp_equals_model(datapath, case: tuple[Tables, bytes]) -> None:
    tables, frame = case
    datapath.maps.write(tables)
    datapath.maps.reset_counters()
    retval, out, _ = progrun.run(datapath.prog_fd, frame, ingress_ifindex=F.A0)
    model = process(frame, tables.copy(), F.LAB_FIB, F.A0)
    event(model.reason.name)
    assert Verdict(retval) is model.verdict and out == model.frame_out, model.reason
    counts = datapath.maps.reason_counts()
    assert counts[model.reason] == 1 and sum(counts.values()) == 1, {r.name: n for r, n in counts.items() if n}


def test_checksum_check_catches_a_wrong_checksum() -> None:
    good = bytes(Ether() / IP(src="10.3.0.5", dst="10.1.0.20") / TCP(sport=1, dport=2) / Raw(b"abc"))
    _checksums_verify(good)
    for offset in (24, 50):  # IP checksum, TCP checksum
        bad = bytearray(good)
        bad[offset] ^= 0x01
        with pytest.raises(AssertionError):
            _checksums_verify(bytes(bad))
