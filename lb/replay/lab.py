"""The kernel side of replay: the XDP program loaded (pin=False) in a namespace rebuilt from a
scenario's topology (lb.datapath.replaylab: same ifindexes, MACs, addresses, permanent neighbours and
gateway routes, forwarding on, so every fib lookup answers what it answered while recording), and
BPF_PROG_RUN as a `Datapath` for lb.replay.engine. Nothing is sent anywhere; everything is removed
on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lb.datapath import progrun
from lb.datapath.loader import Datapath as Loaded, Tunables, load
from lb.datapath.replaylab import InterfaceFact, NeighbourFact, RouteFact, entered_lab
from lb.model import FlowKey
from lb.replay.engine import Outcome
from lb.replay.scenario import Topology
from lb.rewrite import Reason, Verdict
from lb.tables import Tables

REPLAY_TUNABLES = Tunables(max_flows=65536, max_services=256, max_reals=256, max_tx_ports=256)


@contextmanager
def namespace(topology: Topology) -> Iterator[str]:
    """The balancer's namespace built from `topology` and entered by this thread, undone on exit."""
    interfaces = [InterfaceFact(i.name, i.ifindex, i.mac, i.cidrs) for i in topology.interfaces]
    neighbours = [NeighbourFact(n.ifindex, n.address, n.mac) for n in topology.neighbours]
    routes = [RouteFact(r.network, r.gateway, r.ifindex) for r in topology.routes]
    with entered_lab(interfaces, neighbours, routes) as lab:
        yield lab.balancer


@dataclass
class XdpDatapath:
    """The loaded program as a replay datapath: BPF_PROG_RUN per frame, reason from the counters."""

    loaded: Loaded
    topology: Topology

    def run(self, frame: bytes, ingress: int) -> Outcome:
        maps = self.loaded.maps
        before = maps.reason_counts()
        retval, out, _ = progrun.run(self.loaded.prog_fd, frame, ingress_ifindex=ingress)
        after = maps.reason_counts()
        moved = [r for r in Reason if after[r] != before[r]]
        reason = moved[0] if len(moved) == 1 else None
        verdict = Verdict(retval)
        egress: int | None = None
        if verdict is Verdict.TX:
            egress = ingress
        elif verdict is Verdict.REDIRECT:
            egress = self.topology.egress_for(out)
        return Outcome(verdict, out, reason, egress)

    def install(self, tables: Tables, flow: FlowKey) -> None:
        """What the daemon does after scheduling (DatapathMaps.install_flow: reverse entry first)."""
        self.loaded.maps.install_flow(tables, flow)


@contextmanager
def xdp_datapath(topology: Topology, tables: Tables, cflags: tuple[str, ...] = ()) -> Iterator[XdpDatapath]:
    """The program loaded (not pinned, not attached) in a namespace built from `topology`, its maps
    holding `tables`. `cflags` adds compiler flags (tests compile deliberately broken variants)."""
    with namespace(topology):
        loaded = _load(cflags)
        try:
            loaded.maps.write(tables)
            yield XdpDatapath(loaded, topology)
        finally:
            loaded.close()


def _load(cflags: tuple[str, ...]) -> Loaded:
    if not cflags:
        return load(REPLAY_TUNABLES, pin=False)

    class Extra(Tunables):
        def cflags(self) -> list[str]:
            return [*super().cflags(), *cflags]

    base = REPLAY_TUNABLES
    return load(Extra(base.max_flows, base.max_services, base.max_reals, base.max_tx_ports), pin=False)
