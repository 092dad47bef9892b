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

from lb.packet import ETH_HLEN, IpProto, IPv4, carries_ipv4, check_offset, ipv4_at, l4_at
from lb.rewrite.checksum import fold


class Csum(enum.Enum):
    """The state of one checksum field."""

    GOOD = "good"
    BAD = "bad"
    NONE = "none"  # UDP checksum 0: not computed (RFC 768)
    UNKNOWN = "unknown"  # not checkable: truncated capture, fragment, not TCP/UDP


def _whole_ipv4_at(frame: bytes, at: int) -> IPv4 | None:
    """The IPv4 header at `at` when it is complete and self-consistent (its options captured, tot_len
    covering it); tot_len may run past a capture cut short by its snaplen."""
    ip = ipv4_at(frame, at)
    if ip is None or ip.tot_len < ip.ihl or len(frame) < ip.l4:
        return None
    return ip


def ipv4(frame: bytes) -> IPv4 | None:
    """The IPv4 packet of a plain Ethernet frame (no VLAN tag), or None."""
    return _whole_ipv4_at(frame, ETH_HLEN) if carries_ipv4(frame) else None


def innermost(frame: bytes) -> IPv4 | None:
    """The packet an IPIP frame carries, else the frame's own IPv4 packet."""
    outer = ipv4(frame)
    if outer is not None and outer.proto == IpProto.IPIP and not outer.fragment:
        inner = _whole_ipv4_at(frame, outer.l4)
        if inner is not None:
            return inner
    return outer


def ports(frame: bytes, ip: IPv4) -> tuple[int, int] | None:
    """(sport, dport) of a TCP/UDP packet whose L4 header was captured, else None."""
    l4 = None if ip.fragment else l4_at(frame, ip, ip.end)
    return (l4.sport, l4.dport) if l4 is not None else None


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
    l4 = frame[ip.l4 : min(ip.end, len(frame))]
    check = None if ip.fragment else check_offset(ip.proto)
    body = l4 if check is None else l4[4:check] + l4[check + 2 :]  # without the ports and the checksum
    return ("ip", ip.ident.to_bytes(2, "big"), ip.proto, ip.tot_len, hashlib.blake2b(body, digest_size=12).digest())


def _sum16(data: bytes) -> int:
    """The one's complement sum of 16-bit words, an odd last byte padded with zero (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    return fold(sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)))


def ip_checksum(frame: bytes, ip: IPv4) -> Csum:
    """RFC 791: the header's one's complement sum, check field included, is 0xffff."""
    if len(frame) < ip.at + ip.ihl:
        return Csum.UNKNOWN
    return Csum.GOOD if _sum16(frame[ip.at : ip.at + ip.ihl]) == 0xFFFF else Csum.BAD


def l4_checksum(frame: bytes, ip: IPv4) -> Csum:
    """TCP/UDP checksum over the pseudo-header and the segment (up to tot_len, never padding)."""
    l4 = None if ip.fragment or len(frame) < ip.end else l4_at(frame, ip, ip.end)
    if l4 is None:
        return Csum.UNKNOWN
    segment = frame[ip.l4 : ip.end]
    if ip.proto == IpProto.UDP and frame[l4.check : l4.check + 2] == b"\0\0":
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
