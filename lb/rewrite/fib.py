"""The next-hop decision XDP gets from bpf_fib_lookup(), as a value and as a static model.

`Fib` is what the rewrite model calls where the program calls bpf_fib_lookup(): given the address to
reach and the ingress ifindex, the route's status, egress ifindex, MACs and MTU. `StaticFib` is a
pure longest-prefix table with a neighbour table, enough to mirror a test namespace exactly.

The program caches successful answers per (destination, ingress) for up to a second (docs/datapath.md,
"Next-hop cache"); a `Fib` depends on exactly those two, so the model needs no cache of its own as long
as the network does not change under a cached answer. DatapathMaps.write() flushes the cache, so every
test row starts from fresh lookups.
Statuses are the kernel's BPF_FIB_LKUP_RET_* (include/uapi/linux/bpf.h).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network


class FibStatus(enum.IntEnum):
    """BPF_FIB_LKUP_RET_*."""

    SUCCESS = 0
    BLACKHOLE = 1
    UNREACHABLE = 2
    PROHIBIT = 3
    NOT_FWDED = 4  # no route, or a local / broadcast destination
    FWD_DISABLED = 5  # net.ipv4.conf.<ingress>.forwarding is 0
    UNSUPP_LWT = 6
    NO_NEIGH = 7
    FRAG_NEEDED = 8


@dataclass(frozen=True)
class FibResult:
    """What bpf_fib_lookup() fills in. MACs are meaningful only on SUCCESS; `mtu` is the route's MTU,
    which the kernel compares with tot_len before looking at the neighbour."""

    status: FibStatus
    ifindex: int = 0
    smac: bytes = b"\0" * 6
    dmac: bytes = b"\0" * 6
    mtu: int = 1500


Fib = Callable[[IPv4Address, int], FibResult]


@dataclass(frozen=True)
class Route:
    """A connected route (gateway None) or one via a gateway, out of `ifindex` whose MAC is `smac`."""

    network: IPv4Network
    ifindex: int
    smac: bytes
    gateway: IPv4Address | None = None
    mtu: int = 1500


@dataclass(frozen=True)
class StaticFib:
    """A routing table and a neighbour table (ifindex, address) → MAC; longest prefix wins.

    Forwarding is taken as enabled on every interface (the datapath needs it: bpf_fib_lookup answers
    FWD_DISABLED otherwise).
    """

    routes: tuple[Route, ...]
    neighbours: Mapping[tuple[int, IPv4Address], bytes] = field(default_factory=dict)

    def __call__(self, dst: IPv4Address, ingress_ifindex: int) -> FibResult:
        matching = [r for r in self.routes if dst in r.network]
        if not matching:
            return FibResult(FibStatus.NOT_FWDED)
        route = max(matching, key=lambda r: r.network.prefixlen)
        hop = route.gateway or dst
        dmac = self.neighbours.get((route.ifindex, hop))
        if dmac is None:
            return FibResult(FibStatus.NO_NEIGH, route.ifindex, mtu=route.mtu)
        return FibResult(FibStatus.SUCCESS, route.ifindex, route.smac, dmac, route.mtu)
