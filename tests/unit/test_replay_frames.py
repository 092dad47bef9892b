"""lb.replay.frames: identity survives every rewrite, checksums judged exactly (good, bad, none, unknown)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
from lb.replay.frames import Csum, checksums, identity
from lb.rewrite import Route, StaticFib, Verdict, process
from lb.tables import RealEntry, ServiceEntry, Tables

MAC_IN, MAC_REAL = bytes.fromhex("020000000a00"), bytes.fromhex("020000000a14")
FIB = StaticFib((Route(IPv4Network("10.1.0.0/24"), 10, MAC_IN),), {(10, IPv4Address("10.1.0.20")): MAC_REAL})


def frame(l4: object, payload: bytes = b"hello") -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:0a:00")
                 / IP(src="10.3.0.5", dst="10.0.0.100", id=4242) / l4 / Raw(payload))


@pytest.mark.parametrize("forwarding", list(Forwarding))
@pytest.mark.parametrize("proto", [Protocol.TCP, Protocol.UDP])
def test_identity_survives_the_rewrite(forwarding: Forwarding, proto: Protocol) -> None:
    l4 = TCP(sport=40000, dport=80, flags="PA", seq=7) if proto is Protocol.TCP else UDP(sport=40000, dport=80)
    data = frame(l4)
    tables = Tables(tunnel_source=IPv4Address("10.1.0.1"), tx_ports={10})
    tables.services[ServiceKey(proto, IPv4Address("10.0.0.100"), 80)] = ServiceEntry(1)
    tables.reals[1] = RealEntry(IPv4Address("10.1.0.20"), 8080 if forwarding is Forwarding.MASQ else 80, forwarding)
    tables.install_flow(FlowKey(proto, IPv4Address("10.3.0.5"), 40000, IPv4Address("10.0.0.100"), 80), 1)
    result = process(data, tables, FIB, 10)
    assert result.verdict is Verdict.TX and result.frame_out != data
    assert identity(result.frame_out) == identity(data)
    sums = checksums(result.frame_out)
    assert sums is not None and not sums.bad


def test_identity_tells_packets_apart() -> None:
    assert identity(frame(TCP(seq=1))) != identity(frame(TCP(seq=2)))
    assert identity(frame(TCP(), b"a")) != identity(frame(TCP(), b"b"))


def test_checksum_states() -> None:
    good = frame(TCP(sport=1, dport=80))
    assert checksums(good) is not None and checksums(good).bad == []  # type: ignore[union-attr]
    bad_l4 = bytearray(good)
    bad_l4[14 + 20 + 16] ^= 0xFF
    assert checksums(bytes(bad_l4)).bad == ["L4"]  # type: ignore[union-attr]
    bad_ip = bytearray(good)
    bad_ip[14 + 10] ^= 0xFF
    assert checksums(bytes(bad_ip)).bad == ["IPv4"]  # type: ignore[union-attr]
    no_sum = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2, chksum=0) / Raw(b"x"))
    assert checksums(no_sum).l4 is Csum.NONE  # type: ignore[union-attr]
    assert checksums(good[:40]).l4 is Csum.UNKNOWN  # type: ignore[union-attr] # captured short
    assert checksums(bytes(Ether(type=0x86DD) / Raw(b"\0" * 40))) is None


def test_padding_is_not_summed() -> None:
    padded = frame(UDP(sport=1, dport=2), b"") + b"\xaa" * 20
    assert checksums(padded).bad == []  # type: ignore[union-attr]
