from ipaddress import IPv4Address as A

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from lb.balancer.firstpacket import read_packet, unwrap_frame, wrap_in_frame
from lb.model import FlowKey, Protocol


@pytest.mark.parametrize(
    "packet, flow, opens",
    [
        (IP(src="10.1.0.2", dst="10.0.0.100") / TCP(sport=4000, dport=80, flags="S"),
         FlowKey(Protocol.TCP, A("10.1.0.2"), 4000, A("10.0.0.100"), 80), True),
        (IP(src="10.1.0.2", dst="10.0.0.100") / TCP(sport=4000, dport=80, flags="A"),
         FlowKey(Protocol.TCP, A("10.1.0.2"), 4000, A("10.0.0.100"), 80), False),
        (IP(src="10.1.0.2", dst="10.0.0.100") / TCP(sport=4000, dport=80, flags="SA"),
         FlowKey(Protocol.TCP, A("10.1.0.2"), 4000, A("10.0.0.100"), 80), False),
        (IP(src="10.1.0.2", dst="10.0.0.100") / UDP(sport=5000, dport=53),
         FlowKey(Protocol.UDP, A("10.1.0.2"), 5000, A("10.0.0.100"), 53), True),
    ],
)
def test_reads_flow_and_whether_it_opens_one(packet, flow, opens):
    queued = read_packet(bytes(packet))
    assert queued is not None
    assert queued.flow == flow
    assert queued.opens_flow is opens


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(IP(dst="10.0.0.100") / ICMP()),
        bytes(IP(dst="10.0.0.100", flags="MF") / UDP()),
        bytes(IP(dst="10.0.0.100") / TCP())[:30],  # TCP header cut short
        b"\x60" + bytes(39),  # IPv6
    ],
)
def test_unschedulable_packets_are_refused(raw):
    assert read_packet(raw) is None


def test_frame_round_trip():
    l3 = bytes(IP() / UDP())
    frame = wrap_in_frame(l3, b"\x02" * 6, b"\x04" * 6)
    assert frame[12:14] == b"\x08\x00"
    assert unwrap_frame(frame) == l3
