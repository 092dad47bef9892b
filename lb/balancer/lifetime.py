"""How long a flow lives, by what XDP saw of it: IPVS-like timeouts and connection counting.

XDP stamps each flow with the time it last saw a packet and with the TCP events it saw (the
handshake completing, a FIN, a RST). From those the daemon derives a phase, the phase gives a
timeout (ipvsadm --set tcp tcpfin udp, IPVS's defaults from ip_vs_proto_tcp.c tcp_timeouts[]), and
the phase decides whether the flow counts as an active or an inactive connection for lc/wlc/sed/nq
(IPVS counts ESTABLISHED as active, every other state as inactive).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lb.model import Protocol

# Flag bits XDP sets in a flow's state; bpf/lb_structs.h holds the same values.
FLOW_F_ESTABLISHED = 0x1  # the client sent a packet without SYN: the handshake completed
FLOW_F_FIN = 0x2
FLOW_F_RST = 0x4
# The bits a real's replies (the reverse entry of a masqueraded flow) add to its flow's: a FIN or RST
# from either side closes it, but only the client's ACK completes the handshake. A real answers a
# second SYN with another sequence number (a SYN flood with colliding spoofed tuples) with a bare
# ACK; counting that as ESTABLISHED made a never-completed flow an active connection.
REPLY_BITS = FLOW_F_FIN | FLOW_F_RST


class Phase(enum.Enum):
    SYN = "SYN_RECV"  # only SYNs seen so far
    ESTABLISHED = "ESTABLISHED"
    CLOSING = "FIN_WAIT"
    CLOSED = "CLOSE"
    UDP = "UDP"

    @property
    def active(self) -> bool:
        return self is Phase.ESTABLISHED


@dataclass(frozen=True)
class Timeouts:
    """Seconds a flow may stay idle in each phase before the daemon expires it.

    `tcp`, `tcpfin` and `udp` are ipvsadm's --set triple (defaults 900 120 300 as in IPVS); `syn`
    and `close` follow IPVS's SYN_RECV (60 s) and CLOSE (10 s).
    """

    tcp: int = 900
    tcpfin: int = 120
    udp: int = 300
    syn: int = 60
    close: int = 10

    def for_phase(self, phase: Phase) -> int:
        return {
            Phase.SYN: self.syn,
            Phase.ESTABLISHED: self.tcp,
            Phase.CLOSING: self.tcpfin,
            Phase.CLOSED: self.close,
            Phase.UDP: self.udp,
        }[phase]

    def with_set(self, tcp: int, tcpfin: int, udp: int) -> Timeouts:
        """ipvsadm --set: a zero leaves that timeout unchanged."""
        return Timeouts(tcp or self.tcp, tcpfin or self.tcpfin, udp or self.udp, self.syn, self.close)


def phase_of(proto: Protocol, flags: int) -> Phase:
    if proto is Protocol.UDP:
        return Phase.UDP
    if flags & FLOW_F_RST:
        return Phase.CLOSED
    if flags & FLOW_F_FIN:
        return Phase.CLOSING
    if flags & FLOW_F_ESTABLISHED:
        return Phase.ESTABLISHED
    return Phase.SYN


def is_expired(proto: Protocol, flags: int, idle_seconds: float, timeouts: Timeouts) -> bool:
    return idle_seconds > timeouts.for_phase(phase_of(proto, flags))
