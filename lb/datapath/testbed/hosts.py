"""The hosts of a testbed topology as values: a namespace each, its interfaces and addresses, and
how a real is built. No operations here: lb.datapath.testbed.topology runs things on hosts, and
servers.py, clients.py and build.py take them as arguments without needing the Topology.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Role = Literal["client", "lb", "switch", "real"]


@dataclass(frozen=True)
class Iface:
    """One interface inside a host's namespace."""

    name: str  # e.g. "eth0"; names repeat across namespaces, never in the root namespace
    ifindex: int  # in its own namespace
    mac: str
    cidrs: tuple[str, ...]  # "10.7.1.2/24", primary first; empty for bridge ports
    peer_host: str  # the host at the other end of the veth ("sw" for a bridge port)
    peer_ifname: str

    @property
    def ip(self) -> str:
        """The primary address, without prefix length."""
        if not self.cidrs:
            raise ValueError(f"{self.name} has no address")
        return str(ipaddress.IPv4Interface(self.cidrs[0]).ip)

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(str(ipaddress.IPv4Interface(c).ip) for c in self.cidrs)


@dataclass(frozen=True)
class RealSpec:
    """How to build one real server. `dr`: VIP on lo with arp_ignore=1/arp_announce=2 (ipvsadm
    -g). `ipip`: VIP on lo, rp_filter off and the XDP IPIP decapsulator on eth0 (ipvsadm -i)."""

    name: str
    dr: bool = False
    ipip: bool = False


@dataclass(frozen=True)
class Host:
    name: str  # logical name: "client", "lb", "sw", "r1", "r2", ...
    netns: str  # the namespace, "<prefix><name>"
    role: Role
    ifaces: tuple[Iface, ...]
    gateway: str | None = None  # default route, if any
    dr: bool = False
    ipip: bool = False
    xdp: str | None = None  # "native"/"generic" when the IPIP decapsulator is attached

    @property
    def iface(self) -> Iface:
        return self.ifaces[0]

    @property
    def ip(self) -> str:
        return self.iface.ip

    def iface_named(self, name: str) -> Iface:
        for iface in self.ifaces:
            if iface.name == name:
                return iface
        raise KeyError(f"{self.name} has no interface {name}")


HostRef = Host | str
