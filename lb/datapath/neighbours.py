"""Next hop, egress interface and MACs for the first-packet path: bpf_fib_lookup's answer, from netlink.

XDP asks the kernel's FIB and neighbour table with bpf_fib_lookup; the daemon must reach the same
answer for the first packet, so it asks the same tables through rtnetlink (pyroute2). When the
neighbour is not resolved it asks the kernel to resolve it (NTF_USE, as `ip neigh ... use` does),
so the next flow's packets find it ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from pyroute2 import IPRoute

NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERMANENT
NTF_USE = 0x01


@dataclass(frozen=True)
class NextHop:
    ifindex: int
    smac: bytes
    dmac: bytes | None  # None: the neighbour is not resolved (bpf_fib_lookup's NO_NEIGH)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class NeighbourResolver:
    """Route + neighbour lookups in the current network namespace."""

    def __init__(self) -> None:
        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def lookup(self, dst: IPv4Address) -> NextHop | None:
        """The next hop to `dst`, or None when there is no route."""
        try:
            routes = self._ipr.route("get", dst=str(dst))
        except Exception:  # noqa: BLE001 - pyroute2 raises NetlinkError for "no route"
            return None
        if not routes:
            return None
        route = routes[0]
        if route.get("type", 1) != 1:  # only unicast routes forward (not local, blackhole, …)
            return None
        ifindex = route.get_attr("RTA_OIF")
        gateway = route.get_attr("RTA_GATEWAY")
        nexthop = gateway or str(dst)
        link = self._ipr.link("get", index=ifindex)[0]
        smac = _mac(link.get_attr("IFLA_ADDRESS"))
        dmac = None
        for neigh in self._ipr.neigh("dump", ifindex=ifindex, dst=nexthop):
            lladdr = neigh.get_attr("NDA_LLADDR")
            if lladdr and neigh["state"] & NUD_VALID:
                dmac = _mac(lladdr)
                break
        return NextHop(ifindex, smac, dmac)

    def source_for(self, dst: IPv4Address) -> IPv4Address | None:
        """The address this host would send from to reach `dst` (the route's preferred source)."""
        try:
            routes = self._ipr.route("get", dst=str(dst))
        except Exception:  # noqa: BLE001 - no route
            return None
        src = routes[0].get_attr("RTA_PREFSRC") if routes else None
        return IPv4Address(src) if src else None

    def resolve(self, dst: IPv4Address) -> None:
        """Ask the kernel to resolve the neighbour for `dst` (ARP) without sending it a packet."""
        hop = self.lookup(dst)
        if hop is None or hop.dmac is not None:
            return
        routes = self._ipr.route("get", dst=str(dst))
        nexthop = routes[0].get_attr("RTA_GATEWAY") or str(dst)
        try:
            self._ipr.neigh("replace", dst=nexthop, ifindex=hop.ifindex, flags=NTF_USE)
        except Exception:  # noqa: BLE001 - best effort: the client's retransmission will retry
            pass
