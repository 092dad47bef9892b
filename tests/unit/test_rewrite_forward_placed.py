"""forward_placed(), the first-packet path's rewriter, is process() over flow_tables() of the
placement, without the Tables: the same frame, verdict, reason, egress and counters for every
frame of the shared fixture table and for generated ones, to reals of every forwarding method."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bpf"))  # the shared fixture table

import fixtures as F

from lb.balancer.decide import flow_tables
from lb.balancer.engine import Placement
from lb.balancer.firstpacket import read_packet, unwrap_frame
from lb.model import Forwarding, RealServer, Service
from lb.packet import carries_ipv4
from lb.rewrite import Result, forward_placed, process
from lb.tables import RealEntry

TX_PORTS = {F.A0, F.B0}
TUNNEL = IPv4Address(F.TUNNEL_SOURCE)
# Reals of the lab by what they exercise: TX, REDIRECT, no neighbour, no route, not a tx port
# (masquerading); the same for routing and the tunnel.
REAL_IDS = (1, 3, 5, 6, 7, 8, 10, 12, 13, 14, 20, 22, 23)


def _both(frame: bytes, real_id: int, ingress: int, tunnel: IPv4Address | None) -> tuple[Result, Result] | None:
    """(process() over flow_tables(), forward_placed()) for `frame` placed on lab real `real_id`;
    None for a frame the first-packet path never places (read_packet finds no flow in it)."""
    queued = read_packet(unwrap_frame(frame)) if carries_ipv4(frame) else None
    if queued is None:
        return None
    entry = F.REALS[real_id]
    flow = queued.flow
    service = Service(flow.service_key, "rr")
    port = entry.port if entry.forwarding is Forwarding.MASQ else flow.dport
    placement = Placement(service, 9, RealServer(entry.address, port, entry.forwarding), real_id)
    expected = process(frame, flow_tables(flow, placement, TX_PORTS, tunnel, 1234), F.LAB_FIB, ingress)
    real = RealEntry(entry.address, port, entry.forwarding)
    return expected, forward_placed(frame, real, 9, real_id, TX_PORTS, tunnel, F.LAB_FIB, ingress)


@pytest.mark.parametrize("tunnel", [TUNNEL, None], ids=["tunnel source", "no tunnel source"])
@pytest.mark.parametrize("real_id", REAL_IDS)
def test_every_fixture_frame_comes_out_as_process_makes_it(real_id: int, tunnel: IPv4Address | None) -> None:
    compared = 0
    for row in F.ROWS:
        pair = _both(row.input_frame(), real_id, row.ingress, tunnel)
        if pair is not None:
            assert pair[0] == pair[1], row.name
            compared += 1
    assert compared >= 30  # most rows carry a flow: the comparison is not vacuous


@settings(max_examples=300, deadline=None)
@given(
    udp=st.booleans(),
    ttl=st.integers(0, 255),
    flags=st.integers(0, 255),
    sport=st.integers(1, 65535),
    payload=st.integers(0, 1500),
    check=st.integers(0, 0xFFFF),
    real_id=st.sampled_from(REAL_IDS),
    ingress=st.sampled_from(sorted(TX_PORTS)),
)
def test_generated_frames_come_out_as_process_makes_them(udp: bool, ttl: int, flags: int, sport: int,
                                                         payload: int, check: int, real_id: int,
                                                         ingress: int) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    l4 = UDP(sport=sport, dport=53, chksum=check) if udp else TCP(sport=sport, dport=80, flags=flags,
                                                                  chksum=check)
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src=F.CLIENT, dst=F.VIP_M, ttl=ttl) / l4 / (b"x" * payload))
    pair = _both(frame, real_id, ingress, TUNNEL)
    assert pair is not None
    assert pair[0] == pair[1]
