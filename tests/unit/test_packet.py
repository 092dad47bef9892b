"""lb.packet: the header reader agrees with scapy's dissection, and no bytes make it raise."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from lb.model import Protocol
from lb.packet import (
    ETH_HLEN,
    ETH_P_IP,
    IP_MF,
    IPV4_HLEN,
    IpProto,
    TcpFlags,
    carries_ipv4,
    check_offset,
    ipv4_at,
    l4_at,
    tcp_answers,
    tcp_opens,
)

addresses = st.integers(0, 2**32 - 1).map(IPv4Address)
ports = st.integers(0, 65535)
flag_bytes = st.integers(0, 255)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, Ether]:
    """An Ethernet/IPv4 frame with TCP, UDP or ICMP, options and fragment bits drawn too."""
    ip = IP(src=str(draw(addresses)), dst=str(draw(addresses)), ttl=draw(st.integers(0, 255)),
            tos=draw(st.integers(0, 255)), id=draw(st.integers(0, 65535)),
            flags=draw(st.sampled_from(["", "DF", "MF"])), frag=draw(st.sampled_from([0, 0, 0, 185])))
    if draw(st.booleans()):
        ip.options = [IPOption_NOP()] * (4 * draw(st.integers(1, 10)))  # IHL 6 … 15
    kind = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    if kind == "tcp":
        l4 = TCP(sport=draw(ports), dport=draw(ports), flags=draw(flag_bytes),
                 options=[("NOP", None)] * draw(st.integers(0, 8)))
    elif kind == "udp":
        l4 = UDP(sport=draw(ports), dport=draw(ports))
    else:
        l4 = ICMP()
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4 / Raw(draw(st.binary(max_size=40)))
    data = bytes(pkt)
    return data, Ether(data)


@settings(max_examples=300, deadline=None)
@given(frames())
def test_fields_agree_with_scapy(drawn: tuple[bytes, Ether]) -> None:
    data, pkt = drawn
    assert carries_ipv4(data)
    ip = ipv4_at(data, ETH_HLEN)
    sip = pkt[IP]
    assert ip is not None
    assert (ip.ihl, ip.tos, ip.tot_len, ip.ident, ip.ttl, ip.proto) == (
        sip.ihl * 4, sip.tos, sip.len, sip.id, sip.ttl, sip.proto)
    assert (ip.saddr, ip.daddr) == (IPv4Address(sip.src), IPv4Address(sip.dst))
    assert ip.frag_off == (int(sip.flags) << 13) | sip.frag
    assert ip.fragment == (bool(int(sip.flags) & (IP_MF >> 13)) or sip.frag != 0)
    assert ip.l4 == ETH_HLEN + sip.ihl * 4 and ip.end == ETH_HLEN + sip.len
    l4 = l4_at(data, ip, ip.end)
    if TCP in pkt and not ip.fragment:
        assert l4 is not None
        tcp = pkt[TCP]
        assert (l4.sport, l4.dport, l4.hlen, l4.flags) == (tcp.sport, tcp.dport, tcp.dataofs * 4, int(tcp.flags))
        assert int.from_bytes(data[l4.check : l4.check + 2], "big") == tcp.chksum
        assert tcp_opens(l4.flags) == (tcp.flags.S and not tcp.flags.A)
        assert tcp_answers(l4.flags) == bool(tcp.flags.S and tcp.flags.A)
    elif UDP in pkt and not ip.fragment:
        assert l4 is not None
        udp = pkt[UDP]
        assert (l4.sport, l4.dport, l4.hlen, l4.flags) == (udp.sport, udp.dport, 8, 0)
        assert int.from_bytes(data[l4.check : l4.check + 2], "big") == udp.chksum
    elif ip.proto == IpProto.ICMP:
        assert l4 is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 80))
def test_garbage_and_truncated_input_never_raise(data: bytes, at: int) -> None:
    assert isinstance(carries_ipv4(data), bool)
    ip = ipv4_at(data, at)
    if ip is None:
        return
    assert len(data) >= at + IPV4_HLEN and ip.ihl >= IPV4_HLEN
    for end in (ip.end, len(data), 0, 10**6):
        l4 = l4_at(data, ip, end)
        if l4 is not None:
            assert l4.at == ip.l4 and l4.check + 2 <= len(data)


@settings(max_examples=200, deadline=None)
@given(frames(), st.data())
def test_a_truncated_frame_never_raises_or_reads_past_its_end(drawn: tuple[bytes, Ether], data: st.DataObject) -> None:
    frame, _ = drawn
    cut = frame[: data.draw(st.integers(0, len(frame)))]
    ip = ipv4_at(cut, ETH_HLEN) if carries_ipv4(cut) else None
    if ip is not None:
        l4 = l4_at(cut, ip, ip.end)
        assert l4 is None or l4.check + 2 <= len(cut)


def test_what_is_refused() -> None:
    good = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    assert ipv4_at(good) is not None
    assert ipv4_at(good[:19]) is None  # short
    assert ipv4_at(b"\x65" + good[1:]) is None  # version 6
    assert ipv4_at(b"\x44" + good[1:]) is None  # IHL 4
    assert not carries_ipv4(bytes(Ether(type=0x86DD) / Raw(b"\0" * 40)))
    assert not carries_ipv4(bytes(13))
    ip = ipv4_at(good)
    assert ip is not None and l4_at(good, ip, ip.l4 + 7) is None and l4_at(good, ip, ip.l4 + 8) is not None


def test_facts_agree_with_the_other_definitions() -> None:
    assert bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP())[12:14] == ETH_P_IP.to_bytes(2, "big")
    assert IpProto.TCP == Protocol.TCP and IpProto.UDP == Protocol.UDP
    assert check_offset(IpProto.TCP) == 16 and check_offset(IpProto.UDP) == 6 and check_offset(IpProto.ICMP) is None
    assert int(TcpFlags.SYN | TcpFlags.ACK) == int(TCP(flags="SA").flags)
    for name in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"):
        assert TcpFlags[name] == int(TCP(flags=name[0]).flags)  # scapy's letters: F S R P A U E C


@pytest.mark.parametrize("flags, opens", [("S", True), ("SA", False), ("A", False), ("SF", True), ("R", False)])
def test_tcp_opens(flags: str, opens: bool) -> None:
    assert tcp_opens(int(TCP(flags=flags).flags)) is opens
