"""What replay needs to know about one Ethernet frame, read without scapy: its IPv4/L4 layout, an
identity that survives the balancer's rewrite, and whether its checksums hold.

Scapy dissects for the humans (lb.replay.compare); this module is the fast, exact path every packet
of a capture takes. Checksums are RFC 1071 sums over the raw bytes; the L4 sum covers the RFC 793 /
RFC 768 pseudo-header. Only what lies within the IPv4 total length counts (Ethernet padding never
does), and a frame that was captured short (snaplen) is "unknown", not "wrong".
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.rewrite.checksum import fold

ETH_LEN = 14
ETH_P_IP = 0x0800
PROTO_TCP, PROTO_UDP, PROTO_IPIP = 6, 17, 4


class Csum(enum.Enum):
    """The state of one checksum field."""

    GOOD = "good"
    BAD = "bad"
    NONE = "none"  # UDP checksum 0: not computed (RFC 768)
    UNKNOWN = "unknown"  # not checkable: truncated capture, fragment, not TCP/UDP


@dataclass(frozen=True)
class IPv4View:
    """Offsets of an IPv4 packet inside a frame (or inside an outer IPv4 packet, for IPIP)."""

    at: int  # offset of the IPv4 header
    ihl: int  # header length in bytes
    tot_len: int
    proto: int
    saddr: IPv4Address
    daddr: IPv4Address
    frag: bool  # MF set or an offset: the L4 header may be elsewhere

    @property
    def l4(self) -> int:
        return self.at + self.ihl

    @property
    def end(self) -> int:
        return self.at + self.tot_len


def ipv4_at(frame: bytes, at: int) -> IPv4View | None:
    """The IPv4 header at `at`, or None when it is not a complete, self-consistent one."""
    if len(frame) < at + 20 or frame[at] >> 4 != 4:
        return None
    ihl = (frame[at] & 0x0F) * 4
    tot_len = int.from_bytes(frame[at + 2 : at + 4], "big")
    if ihl < 20 or tot_len < ihl or len(frame) < at + ihl:
        return None
    frag = int.from_bytes(frame[at + 6 : at + 8], "big") & 0x3FFF != 0
    return IPv4View(at, ihl, tot_len, frame[at + 9], IPv4Address(frame[at + 12 : at + 16]),
                    IPv4Address(frame[at + 16 : at + 20]), frag)


def ipv4(frame: bytes) -> IPv4View | None:
    """The IPv4 packet of a plain Ethernet frame (no VLAN tag), or None."""
    if len(frame) < ETH_LEN or int.from_bytes(frame[12:14], "big") != ETH_P_IP:
        return None
    return ipv4_at(frame, ETH_LEN)


def innermost(frame: bytes) -> IPv4View | None:
    """The packet an IPIP frame carries, else the frame's own IPv4 packet."""
    outer = ipv4(frame)
    if outer is not None and outer.proto == PROTO_IPIP and not outer.frag:
        inner = ipv4_at(frame, outer.l4)
        if inner is not None:
            return inner
    return outer


def ports(frame: bytes, ip: IPv4View) -> tuple[int, int] | None:
    """(sport, dport) of a TCP/UDP packet whose ports were captured, else None."""
    if ip.proto not in (PROTO_TCP, PROTO_UDP) or ip.frag or len(frame) < ip.l4 + 4 or ip.l4 + 4 > ip.end:
        return None
    return int.from_bytes(frame[ip.l4 : ip.l4 + 2], "big"), int.from_bytes(frame[ip.l4 + 2 : ip.l4 + 4], "big")


def identity(frame: bytes) -> tuple[object, ...]:
    """A key equal for a packet before and after any of the balancer's rewrites.

    Masquerading changes one address, one port, the TTL and checksums; direct routing the MACs;
    IPIP adds an outer header. None of them touches the IP id, the protocol, the total length, or
    the L4 bytes other than ports and checksum (sequence numbers, TCP options with their
    timestamps, payload), so those identify a packet across the balancer. Anything that is not
    IPv4 is identified by its bytes after the MACs.
    """
    ip = innermost(frame)
    if ip is None:
        return ("raw", hashlib.blake2b(frame[12:], digest_size=12).digest())
    ident = frame[ip.at + 4 : ip.at + 6]
    l4 = frame[ip.l4 : min(ip.end, len(frame))]
    if ip.proto == PROTO_TCP and not ip.frag:
        body = l4[4:16] + l4[18:]
    elif ip.proto == PROTO_UDP and not ip.frag:
        body = l4[4:6] + l4[8:]
    else:
        body = l4
    return ("ip", ident, ip.proto, ip.tot_len, hashlib.blake2b(body, digest_size=12).digest())


def _sum16(data: bytes) -> int:
    """The one's complement sum of 16-bit words, an odd last byte padded with zero (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    return fold(sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)))


def ip_checksum(frame: bytes, ip: IPv4View) -> Csum:
    """RFC 791: the header's one's complement sum, check field included, is 0xffff."""
    if len(frame) < ip.at + ip.ihl:
        return Csum.UNKNOWN
    return Csum.GOOD if _sum16(frame[ip.at : ip.at + ip.ihl]) == 0xFFFF else Csum.BAD


def l4_checksum(frame: bytes, ip: IPv4View) -> Csum:
    """TCP/UDP checksum over the pseudo-header and the segment (up to tot_len, never padding)."""
    if ip.proto not in (PROTO_TCP, PROTO_UDP) or ip.frag or len(frame) < ip.end:
        return Csum.UNKNOWN
    segment = frame[ip.l4 : ip.end]
    need = 20 if ip.proto == PROTO_TCP else 8
    if len(segment) < need:
        return Csum.UNKNOWN
    check_at = 16 if ip.proto == PROTO_TCP else 6
    if ip.proto == PROTO_UDP and segment[check_at : check_at + 2] == b"\0\0":
        return Csum.NONE
    pseudo = frame[ip.at + 12 : ip.at + 20] + bytes([0, ip.proto]) + len(segment).to_bytes(2, "big")
    return Csum.GOOD if _sum16(pseudo + segment) == 0xFFFF else Csum.BAD


@dataclass(frozen=True)
class Checksums:
    """Every checksum of a frame: outer IP, and for IPIP the inner IP; the L4 of the innermost."""

    ip: Csum
    inner_ip: Csum | None
    l4: Csum

    @property
    def bad(self) -> list[str]:
        """Names of the checksums that are wrong."""
        named = [("IPv4", self.ip), ("inner IPv4", self.inner_ip), ("L4", self.l4)]
        return [name for name, state in named if state is Csum.BAD]


def checksums(frame: bytes) -> Checksums | None:
    """The checksums of an IPv4 frame, or None for anything else."""
    outer = ipv4(frame)
    if outer is None:
        return None
    inner = innermost(frame)
    assert inner is not None
    inner_ip = ip_checksum(frame, inner) if inner.at != outer.at else None
    return Checksums(ip_checksum(frame, outer), inner_ip, l4_checksum(frame, inner))
