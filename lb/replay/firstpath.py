"""The daemon's first-packet path, without NFQUEUE, maps or sockets: what replay runs for a packet XDP
passed up.

It follows lb/daemon/daemon.py `_first_packet` and `_forward` step for step: read the queued packet
(lb.daemon.firstpacket.read_packet), find its service, reuse an existing flow entry, refuse a
mid-connection packet that has none (as IPVS does without sloppy_tcp) unless the scheduler is a hash,
else place the flow with the daemon's own `Balancer` (lb.daemon.engine, pure) and install it; then
rewrite the packet with the rewrite model and say where it goes (transmitted, handed to the kernel,
dropped). A recording fixes the decisions: `decisions` maps a flow to the real it got, so a replay
rebuilds the flow table the recording had, and the scheduler's own choice is only compared with it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb.config.table import ServiceTable
from lb.daemon.engine import Balancer, NoDestination, Placement
from lb.daemon.firstpacket import read_packet
from lb.model import FlowKey, Forwarding, RealKey
from lb.rewrite import Reason, Result, Verdict, process
from lb.rewrite.fib import Fib
from lb.tables import RealEntry, ServiceEntry, Tables

ETH_LEN = 14
# lb/daemon/daemon.py HASH_SCHEDULERS: a hash re-derives the same real for a mid-flow miss.
HASH_SCHEDULERS = frozenset({"sh", "dh", "mh"})


class Fate(enum.Enum):
    """What happened to a packet the first-packet path was given."""

    SENT = "sent"  # transmitted, rewritten (AF_PACKET in the daemon)
    KERNEL = "kernel"  # accepted back to the kernel (rewritten or not), which forwards it
    DROPPED = "dropped"


@dataclass(frozen=True)
class Handled:
    fate: Fate
    note: str  # the daemon's counter name (scheduled, existing_flow, no_flow_not_syn, …)
    result: Result | None = None  # the model's output when a rewrite was attempted
    installed: FlowKey | None = None  # the flow this packet installed, if any


@dataclass
class FirstPacketPath:
    """One daemon's judgement over one configuration; `tables` is what its maps hold."""

    table: ServiceTable
    fib: Fib
    tx_ports: set[int]
    tunnel_source: IPv4Address | None
    decisions: dict[FlowKey, RealKey] = field(default_factory=dict)
    agreed: int = 0  # first packets where the scheduler picked the recorded real
    disagreed: list[FlowKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.balancer = Balancer()
        self.balancer.sync(self.table)
        self.tables = Tables(tx_ports=set(self.tx_ports), tunnel_source=self.tunnel_source)
        for state in self.balancer.services.values():
            self.tables.services[state.service.key] = ServiceEntry(state.service_id)
            for rstate in state.reals.values():
                real = rstate.real
                self.tables.reals[rstate.real_id] = RealEntry(real.address, real.port, real.forwarding)

    def queued(self, frame: bytes) -> bool:
        """Whether a frame XDP passed reaches NFQUEUE: the rules queue IPv4 TCP/UDP for a service."""
        if len(frame) < ETH_LEN or frame[12:14] != b"\x08\x00":
            return False
        packet = read_packet(frame[ETH_LEN:])
        return packet is not None and self.balancer.service_for(packet.flow) is not None

    def handle(self, frame: bytes, ingress: int) -> Handled:
        packet = read_packet(frame[ETH_LEN:])
        if packet is None:
            return Handled(Fate.DROPPED, "unschedulable")
        flow = packet.flow
        state = self.balancer.service_for(flow)
        if state is None:
            return Handled(Fate.DROPPED, "no_service")
        installed: FlowKey | None = None
        entry = self.tables.flows.get(flow)
        if entry is not None and self.balancer.real_by_id(entry.real_id) is not None:
            placement = self._placement_for(entry.real_id)
            note = "existing_flow"
        elif not packet.opens_flow and state.service.scheduler not in HASH_SCHEDULERS:
            return Handled(Fate.DROPPED, "no_flow_not_syn")
        else:
            try:
                placement = self._place(flow)
            except NoDestination:
                return Handled(Fate.DROPPED, "no_destination")
            self.tables.install_flow(flow, placement.real_id)
            installed, note = flow, "scheduled"
        return self._forward(frame, ingress, flow, placement, note, installed)

    def _place(self, flow: FlowKey) -> Placement:
        chosen = self.balancer.place(flow, 0.0)  # the scheduler's choice moves its state, as live
        wanted = self.decisions.get(flow)
        if wanted is None:
            return chosen
        if chosen.real.key == wanted:
            self.agreed += 1
            return chosen
        self.disagreed.append(flow)
        state = self.balancer.service_for(flow)
        assert state is not None
        rstate = state.reals.get(wanted)
        if rstate is None:
            raise NoDestination(f"the recorded real {wanted} is not in the rules")
        return Placement(state.service, state.service_id, rstate.real, rstate.real_id)

    def _placement_for(self, real_id: int) -> Placement:
        found = self.balancer.real_by_id(real_id)
        assert found is not None
        sstate, rstate = found
        return Placement(sstate.service, sstate.service_id, rstate.real, rstate.real_id)

    def _forward(
        self, frame: bytes, ingress: int, flow: FlowKey, placement: Placement, note: str, installed: FlowKey | None
    ) -> Handled:
        """daemon._forward: the one flow's slice of the tables through the model."""
        one = Tables(tx_ports=set(self.tx_ports), tunnel_source=self.tunnel_source)
        one.services[flow.service_key] = ServiceEntry(placement.service_id)
        real = placement.real
        one.reals[placement.real_id] = RealEntry(real.address, real.port, real.forwarding)
        one.install_flow(flow, placement.real_id)
        result = process(frame, one, self.fib, ingress)
        if result.verdict in (Verdict.TX, Verdict.REDIRECT):
            return Handled(Fate.SENT, note, result, installed)
        if result.reason is Reason.PASS_NO_NEIGH and real.forwarding is not Forwarding.ROUTE:
            return Handled(Fate.KERNEL, note, result, installed)
        if result.reason is Reason.PASS_TTL_EXCEEDED:
            return Handled(Fate.KERNEL, note, result, installed)
        return Handled(Fate.DROPPED, f"dropped_{result.reason.name.lower()}", result, installed)
