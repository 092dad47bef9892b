"""A balancer's namespace as facts: read from a live one (`lbxdp record`), rebuilt from them for
BPF_PROG_RUN (`lbxdp replay`, tests/bpf).

What bpf_fib_lookup() answers depends on the interfaces (ifindex, MAC, addresses), the permanent
neighbours, the gateway routes and forwarding; a namespace rebuilt from those facts answers what the
recorded one did. `entered_lab` builds it with the testbed's netlink steps (pyroute2; each balancer
interface is a veth whose peer waits in a second namespace, so it can be up), and moves the calling
thread into it: BPF_PROG_RUN's ingress_ifindex and bpf_fib_lookup resolve in the caller's namespace.
Nothing is sent anywhere: BPF_PROG_RUN without live frames only runs the program on a buffer. Names
come from the testbed's per-run prefix, so a crashed run's namespaces are found by `cleanup_stale`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from pyroute2 import IPRoute, netns
from pyroute2.netlink.rtnl.ndmsg import states as neigh_states

from lb.datapath.testbed.links import NsLinks, base_sysctls, create_netns, remove_netns
from lb.datapath.testbed.naming import make_prefix
from lb.datapath.testbed.nsenter import in_netns_call

RT_TABLE_MAIN = 254


class InterfaceFact(NamedTuple):
    """One of the balancer's interfaces."""

    name: str
    ifindex: int
    mac: str
    cidrs: Sequence[str]


class NeighbourFact(NamedTuple):
    """A permanent neighbour entry of the balancer."""

    ifindex: int
    address: str
    mac: str


class RouteFact(NamedTuple):
    """A route through a gateway (connected routes follow from the addresses)."""

    network: str
    gateway: str
    ifindex: int


class Lab(NamedTuple):
    balancer: str  # the namespace of the balancer's interfaces
    peer: str  # the namespace of their veth peers


@contextmanager
def entered_lab(
    interfaces: Sequence[InterfaceFact], neighbours: Iterable[NeighbourFact], routes: Iterable[RouteFact]
) -> Iterator[Lab]:
    """Build the balancer's namespace from the facts, enter it (this thread), and always undo both."""
    prefix = make_prefix()
    lb_ns, peer_ns = f"{prefix}rlb", f"{prefix}rpeer"
    made: list[str] = []
    links = NsLinks()
    pushed = False
    try:
        for name in (lb_ns, peer_ns):
            create_netns(name)
            made.append(name)
        base_sysctls(lb_ns, {"net.ipv4.conf.all.forwarding": 1})  # bpf_fib_lookup: FWD_DISABLED otherwise
        base_sysctls(peer_ns, {})
        links.up(lb_ns, "lo")
        names = {i.ifindex: i.name for i in interfaces}
        for n, iface in enumerate(interfaces):
            links.veth(lb_ns, iface.name, peer_ns, f"p{n}", mac_a=iface.mac, index_a=iface.ifindex)
            for cidr in iface.cidrs:
                links.address(lb_ns, iface.name, cidr)
            links.up(lb_ns, iface.name)
            links.up(peer_ns, f"p{n}")
        for neigh in neighbours:
            links.neighbour(lb_ns, names[neigh.ifindex], neigh.address, neigh.mac)
        for route in routes:
            links.route(lb_ns, route.network, route.gateway, names[route.ifindex])
        links.close()
        netns.pushns(lb_ns)
        pushed = True
        yield Lab(lb_ns, peer_ns)
    finally:
        links.close()
        if pushed:
            netns.popns()
        for name in made:
            try:
                remove_netns(name)
            except Exception:  # noqa: BLE001 - the other namespace still goes
                pass


def permanent_neighbours(ns: str, ifindexes: Iterable[int]) -> list[NeighbourFact]:
    """The IPv4 permanent neighbour entries on `ifindexes` in namespace `ns`, in the kernel's order."""
    wanted = set(ifindexes)

    def read() -> list[NeighbourFact]:
        with IPRoute() as ipr:
            return [
                NeighbourFact(n["ifindex"], n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR"))
                for n in ipr.get_neighbours(family=socket.AF_INET)
                if n["ifindex"] in wanted and n["state"] & neigh_states["permanent"] and n.get_attr("NDA_LLADDR")
            ]

    return in_netns_call(ns, read)


def gateway_routes(ns: str, ifindexes: Iterable[int]) -> list[RouteFact]:
    """The main table's IPv4 routes through a gateway on `ifindexes` in namespace `ns`."""
    wanted = set(ifindexes)

    def read() -> list[RouteFact]:
        with IPRoute() as ipr:
            routes = ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN)
        found = []
        for r in routes:
            gateway, oif = r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_OIF")
            if gateway and oif in wanted:
                found.append(RouteFact(f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}", gateway, oif))
        return found

    return in_netns_call(ns, read)
