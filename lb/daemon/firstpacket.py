"""What the first-packet path needs to know about a queued packet, read without I/O.

NFQUEUE hands the daemon the IPv4 packet without its Ethernet header. The rewrite model works on
frames (it is the XDP program's twin), so the daemon wraps the packet in the frame it arrived in:
destination = the ingress interface's MAC, source = the sender's MAC that NFQUEUE reports.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.model import FlowKey, Protocol

ETH_P_IP = 0x0800
TCP_SYN = 0x02
TCP_ACK = 0x10
TCP_RST = 0x04


@dataclass(frozen=True)
class QueuedPacket:
    flow: FlowKey
    tcp_flags: int  # 0 for UDP

    @property
    def is_syn(self) -> bool:
        """A connection attempt: SYN without ACK (a SYN-ACK or plain ACK never opens a flow)."""
        return self.flow.proto is Protocol.TCP and self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN

    @property
    def opens_flow(self) -> bool:
        return self.flow.proto is Protocol.UDP or self.is_syn


def read_packet(l3: bytes) -> QueuedPacket | None:
    """The flow of an IPv4 TCP/UDP packet, or None for anything the balancer does not schedule
    (not IPv4, options-free header too short, fragments, other protocols)."""
    if len(l3) < 20 or l3[0] >> 4 != 4:
        return None
    ihl = (l3[0] & 0x0F) * 4
    proto = l3[9]
    frag = struct.unpack_from("!H", l3, 6)[0]
    if ihl < 20 or frag & 0x3FFF or proto not in (Protocol.TCP, Protocol.UDP):
        return None
    need = ihl + (20 if proto == Protocol.TCP else 8)
    if len(l3) < need:
        return None
    sport, dport = struct.unpack_from("!HH", l3, ihl)
    flags = l3[ihl + 13] if proto == Protocol.TCP else 0
    flow = FlowKey(Protocol(proto), IPv4Address(l3[12:16]), sport, IPv4Address(l3[16:20]), dport)
    return QueuedPacket(flow, flags)


def wrap_in_frame(l3: bytes, dst_mac: bytes, src_mac: bytes) -> bytes:
    """The Ethernet frame the packet arrived in (NFQUEUE strips it; XDP saw it)."""
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + l3


def unwrap_frame(frame: bytes) -> bytes:
    return frame[14:]
