"""Packet layout: the Ethernet, IPv4, TCP and UDP facts every reader of frames shares, and one reader.

The rewrite model (lb.rewrite.process), the first-packet path (lb.balancer.firstpacket) and replay
(lb.replay.frames) all read the same headers; this module is where their layout is written down, once,
as bpf/lb_parse.h writes it for the XDP program. The reader states what the bytes say and refuses only
what cannot be read at all (too short, not version 4, an IHL under 5); how strict to be beyond that is
each caller's policy, since the three differ on purpose: the model mirrors the program's checks (which
mirror ip_rcv_core()), NFQUEUE hands over packets the kernel has already checked, and a capture may be
cut short by its snaplen. Pure: no sockets, no scapy.
"""

from __future__ import annotations

import enum
import struct
from ipaddress import IPv4Address
from typing import NamedTuple

from lb.model import Protocol

ETH_HLEN = 14  # destination MAC, source MAC, EtherType (struct ethhdr)
ETH_P_IP = 0x0800  # EtherType of IPv4 (linux/if_ether.h)
IPV4_HLEN = 20  # an IPv4 header without options (struct iphdr); IHL counts 32-bit words from here
TCP_HLEN = 20  # a TCP header without options (struct tcphdr)
UDP_HLEN = 8  # struct udphdr
IP_DF = 0x4000  # frag_off: don't fragment
IP_MF = 0x2000  # frag_off: more fragments
IP_OFFSET = 0x1FFF  # frag_off: the fragment's offset, in 8-byte units
IP_FRAG_OFF = 6  # offsets of the IPv4 header's fields a rewrite touches: flags and fragment offset,
IP_TTL = 8  # the TTL (and after it the protocol: one 16-bit word for checksum updates),
IP_CHECK = 10  # the header checksum,
IP_SADDR = 12  # the source address
IP_DADDR = 16  # and the destination address
L4_SPORT = 0  # offsets of the ports in a TCP or UDP header
L4_DPORT = 2
TCP_CHECK = 16  # offset of the checksum in the TCP header
UDP_CHECK = 6  # offset of the checksum in the UDP header
TCP_FLAGS = 13  # offset of the flag byte (FIN … CWR) in the TCP header

ETH_P_IP_BYTES = ETH_P_IP.to_bytes(2, "big")  # as it stands in a frame (network order)


class IpProto(enum.IntEnum):
    """IP protocol numbers (IANA) a frame reader meets. TCP and UDP are lb.model.Protocol's numbers,
    the protocols a service can have; the others only pass through or wrap (IPIP)."""

    ICMP = 1
    IPIP = 4
    TCP = Protocol.TCP.value
    UDP = Protocol.UDP.value


class TcpFlags(enum.IntFlag):
    """The TCP flag byte (RFC 9293 §3.1, RFC 3168 for ECE/CWR)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# The first-packet path reads every new flow's headers here, so the hot path uses plain ints (an
# IntFlag operand turns every `&` into an enum construction; a member lookup costs more than a
# global's) and builds the result tuples without NamedTuple's Python-level __new__.
_SYN = int(TcpFlags.SYN)
_SYN_ACK = int(TcpFlags.SYN | TcpFlags.ACK)
_TCP, _UDP = int(IpProto.TCP), int(IpProto.UDP)
_MF_OFFSET = IP_MF | IP_OFFSET
_L4_CHECK = {_TCP: TCP_CHECK, _UDP: UDP_CHECK}
_tuple = tuple.__new__
# Packed address → IPv4Address: building one costs more than reading the rest of a header, and a
# balancer sees the same few VIPs and, in a burst, the same clients again and again. Bounded: a scan
# from many sources only refills it.
_ADDRESSES: dict[bytes, IPv4Address] = {}
_ADDRESSES_MAX = 4096


def _address(packed: bytes) -> IPv4Address:
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.clear()
    address = _ADDRESSES[packed] = IPv4Address(packed)
    return address
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, tot_len, id, frag_off, ttl, proto, check, saddr, daddr
_PORTS = struct.Struct("!HH")


def tcp_opens(flags: int) -> bool:
    """A connection attempt: SYN without ACK (a SYN-ACK answers one; tcp_opens() in bpf/lb_parse.h)."""
    return flags & _SYN_ACK == _SYN


def tcp_answers(flags: int) -> bool:
    """A SYN-ACK: the answer to a connection attempt."""
    return flags & _SYN_ACK == _SYN_ACK


def carries_ipv4(frame: bytes) -> bool:
    """An Ethernet frame whose EtherType is IPv4 (no VLAN tag: the balancer passes tagged frames)."""
    return len(frame) >= ETH_HLEN and frame[12:14] == ETH_P_IP_BYTES


class IPv4(NamedTuple):
    """The fixed IPv4 header found at offset `at` of a buffer (a frame, a bare packet, an IPIP payload)."""

    at: int  # offset of the header
    ihl: int  # header length in bytes (the IHL field × 4)
    tos: int
    tot_len: int  # as the header states it: the caller decides whether the buffer holds that much
    ident: int
    frag_off: int  # the flags and fragment-offset word (IP_DF, IP_MF, IP_OFFSET)
    ttl: int
    proto: int  # an IpProto value, or any other number
    saddr: IPv4Address
    daddr: IPv4Address
    l4: int  # offset of what the header carries (the L4 header, or the inner header of IPIP): at + ihl
    end: int  # offset where the packet ends by its tot_len (Ethernet padding may follow): at + tot_len
    fragment: bool  # MF set or an offset: the L4 header may be in another packet


def ipv4_at(buf: bytes, at: int = 0) -> IPv4 | None:
    """The IPv4 header at `at`, or None when there is none to read: fewer than 20 bytes, a version
    other than 4, or an IHL under 5. Options, tot_len and fragments are left to the caller."""
    if len(buf) < at + IPV4_HLEN:
        return None
    ver_ihl, tos, tot_len, ident, frag_off, ttl, proto, _, saddr, daddr = _IPV4.unpack_from(buf, at)
    if ver_ihl >> 4 != 4 or ver_ihl & 0x0F < 5:
        return None
    ihl = (ver_ihl & 0x0F) * 4
    src = _ADDRESSES.get(saddr) or _address(saddr)
    dst = _ADDRESSES.get(daddr) or _address(daddr)
    return _tuple(IPv4, (at, ihl, tos, tot_len, ident, frag_off, ttl, proto, src, dst, at + ihl, at + tot_len,
                         frag_off & _MF_OFFSET != 0))


def pack_ipv4(tos: int, tot_len: int, frag_off: int, ttl: int, proto: int, saddr: bytes, daddr: bytes) -> bytearray:
    """An IPv4 header without options, its id and checksum 0 (the caller sums it: RFC 791)."""
    return bytearray(_IPV4.pack(0x45, tos, tot_len, 0, frag_off, ttl, proto, 0, saddr, daddr))


class L4(NamedTuple):
    """The fixed part of a TCP or UDP header."""

    at: int  # offset of the header
    proto: int  # IpProto.TCP or IpProto.UDP
    sport: int
    dport: int
    hlen: int  # TCP: the data offset × 4, as the header states it (check it against TCP_HLEN); UDP: 8
    check: int  # offset of the checksum field
    flags: int  # TCP: the flag byte (TcpFlags bits); UDP: 0


def l4_at(buf: bytes, ip: IPv4, end: int) -> L4 | None:
    """The TCP or UDP header `ip` carries, or None when it carries neither or its fixed part does not
    end by `end` (the caller's bound: the packet's end, the buffer's, or the lesser of the two).
    Fragments are the caller's to refuse: only a first fragment has an L4 header."""
    at = ip.l4
    proto = ip.proto
    if proto == _TCP:
        if at + TCP_HLEN > end or at + TCP_HLEN > len(buf):
            return None
        sport, dport = _PORTS.unpack_from(buf, at)
        return _tuple(L4, (at, proto, sport, dport, (buf[at + 12] >> 4) * 4, at + TCP_CHECK, buf[at + TCP_FLAGS]))
    if proto == _UDP:
        if at + UDP_HLEN > end or at + UDP_HLEN > len(buf):
            return None
        sport, dport = _PORTS.unpack_from(buf, at)
        return _tuple(L4, (at, proto, sport, dport, UDP_HLEN, at + UDP_CHECK, 0))
    return None


def check_offset(proto: int) -> int | None:
    """Where the checksum sits in a `proto` header (TCP 16, UDP 6); None for other protocols."""
    return _L4_CHECK.get(proto)
