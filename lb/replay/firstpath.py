"""The daemon's first-packet path, without NFQUEUE, maps or sockets: what replay runs for a packet XDP
passed up.

The judgement is the daemon's own: `lb.balancer.decide.decide` (reuse a flow, schedule a new one with
the daemon's `Balancer`, or refuse by the stated policy) and `lb.balancer.decide.fate` (where the
rewritten packet goes). What is replay's own: the maps are a `Tables` the datapath is given, the
flow table never fills, and a recording fixes the decisions: `decisions` maps a flow to the real it
got, so a replay rebuilds the flow table the recording had, and the scheduler's own choice (which
still runs, so its state moves as it did live) is only compared with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb.balancer.decide import Decision, Fate, decide, fate, flow_tables
from lb.balancer.engine import Balancer, Placement
from lb.balancer.firstpacket import read_packet
from lb.config.table import ServiceTable
from lb.model import FlowKey, RealKey
from lb.packet import ETH_HLEN, carries_ipv4
from lb.replay.scenario import Topology
from lb.rewrite import Result, process
from lb.rewrite.fib import Fib
from lb.tables import RealEntry, ServiceEntry, Tables, service_flags

RECORDED_TIME = 0  # the clock (ns) the Balancer sees: persistence never times out within a capture


@dataclass(frozen=True)
class Handled:
    """The first-packet path's answer for one packet."""

    fate: Fate
    note: str  # the daemon's counter name (scheduled, existing_flow, no_flow_not_syn, …)
    result: Result | None = None  # the model's output when a rewrite was attempted
    installed: FlowKey | None = None  # the flow this packet installed, if any


def _never_full() -> bool:
    return False  # a replay's tables have no limit; the recordings never met the daemon's


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

    @classmethod
    def for_topology(
        cls, table: ServiceTable, topology: Topology, decisions: dict[FlowKey, RealKey] | None = None
    ) -> FirstPacketPath:
        """The daemon of a balancer with these facts: its tx_ports, tunnel source and routing."""
        tunnel = IPv4Address(topology.tunnel_source) if topology.tunnel_source else None
        return cls(table, topology.fib(), topology.tx_ports, tunnel, dict(decisions or {}))

    def __post_init__(self) -> None:
        self.balancer = Balancer()
        self.balancer.sync(self.table)
        self.tables = Tables(tx_ports=set(self.tx_ports), tunnel_source=self.tunnel_source)
        for state in self.balancer.services.values():
            self.tables.services[state.service.key] = ServiceEntry(state.service_id, service_flags(state.scheduler))
            for rstate in state.reals.values():
                real = rstate.real
                self.tables.reals[rstate.real_id] = RealEntry(real.address, real.port, real.forwarding)

    def queued(self, frame: bytes) -> bool:
        """Whether a frame XDP passed reaches NFQUEUE: the rules queue IPv4 TCP/UDP for a service."""
        if not carries_ipv4(frame):
            return False
        packet = read_packet(frame[ETH_HLEN:])
        return packet is not None and self.balancer.service_for(packet.flow) is not None

    def handle(self, frame: bytes, ingress: int) -> Handled:
        packet = read_packet(frame[ETH_HLEN:])
        flow = packet.flow if packet is not None else None
        entry = self.tables.flows.get(flow) if flow is not None else None
        decision = decide(packet, self.balancer, entry.real_id if entry else None, _never_full, RECORDED_TIME)
        if decision.placement is None:
            return Handled(Fate.DROPPED, decision.note)
        assert flow is not None
        placement = decision.placement
        installed: FlowKey | None = None
        if decision.new_flow:
            recorded = self._recorded(flow, decision)
            if recorded is None:
                return Handled(Fate.DROPPED, "no_destination")
            placement = recorded
            self.tables.install_flow(flow, placement.real_id)
            installed = flow
        result = process(frame, flow_tables(flow, placement, set(self.tx_ports), self.tunnel_source), self.fib, ingress)
        return Handled(fate(result, placement.real.forwarding), decision.note, result, installed)

    def _recorded(self, flow: FlowKey, decision: Decision) -> Placement | None:
        """The real the recording gave the flow (None: it is not in the rules); the scheduler's
        choice only counts as agreeing or not."""
        chosen = decision.placement
        assert chosen is not None
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
            return None
        return Placement(chosen.service, chosen.service_id, rstate.real, rstate.real_id)
