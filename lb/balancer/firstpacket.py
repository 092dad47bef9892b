"""What the first-packet path needs to know about a queued packet, read without I/O.

NFQUEUE hands the daemon the IPv4 packet without its Ethernet header. The rewrite model works on
frames (it is the XDP program's twin), so the daemon wraps the packet in the frame it arrived in:
destination = the ingress interface's MAC, source = the sender's MAC that NFQUEUE reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from lb.model import FlowKey, Protocol, flow_key
from lb.packet import ETH_HLEN, ETH_P_IP_BYTES, ipv4_at, l4_at, tcp_opens

_PROTOCOLS = {int(p): p for p in Protocol}  # l4_at() found TCP or UDP: both are here


@dataclass(frozen=True)
class QueuedPacket:
    flow: FlowKey
    tcp_flags: int  # 0 for UDP

    @property
    def is_syn(self) -> bool:
        """A connection attempt: SYN without ACK (a SYN-ACK or plain ACK never opens a flow)."""
        return self.flow.proto is Protocol.TCP and tcp_opens(self.tcp_flags)

    @property
    def opens_flow(self) -> bool:
        return self.flow.proto is Protocol.UDP or self.is_syn


def read_packet(l3: bytes) -> QueuedPacket | None:
    """The flow of an IPv4 TCP/UDP packet, or None for anything the balancer does not schedule
    (not IPv4, options-free header too short, fragments, other protocols)."""
    ip = ipv4_at(l3)
    if ip is None or ip.fragment:
        return None
    l4 = l4_at(l3, ip, len(l3))  # the kernel checked tot_len before NFQUEUE: only the copy's length counts
    if l4 is None:
        return None
    return QueuedPacket(flow_key(_PROTOCOLS[ip.proto], ip.saddr, l4.sport, ip.daddr, l4.dport), l4.flags)


def wrap_in_frame(l3: bytes, dst_mac: bytes, src_mac: bytes) -> bytes:
    """The Ethernet frame the packet arrived in (NFQUEUE strips it; XDP saw it)."""
    return dst_mac + src_mac + ETH_P_IP_BYTES + l3


def unwrap_frame(frame: bytes) -> bytes:
    return frame[ETH_HLEN:]
