"""The lab namespace of fixtures.py, built for real by lb.datapath.replaylab (as replay builds a
recorded balancer's): interfaces with fixed ifindexes and MACs, routes, permanent neighbours,
forwarding on. `lab()` switches this thread into it (bpf_fib_lookup and BPF_PROG_RUN's
ingress_ifindex resolve in the caller's namespace) and always tears it down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import fixtures as F

from lb.datapath.replaylab import InterfaceFact, Lab, NeighbourFact, RouteFact, entered_lab


@contextmanager
def lab() -> Iterator[Lab]:
    interfaces = [InterfaceFact(name, index, mac, (address,)) for name, index, mac, address in F.INTERFACES]
    neighbours = [NeighbourFact(index, address, mac) for (index, address), mac in F.NEIGHBOURS.items()]
    routes = [RouteFact(network, gateway, index) for network, gateway, index in F.GATEWAY_ROUTES]
    with entered_lab(interfaces, neighbours, routes) as names:
        yield names
