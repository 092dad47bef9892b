"""Facts about the balancer's interfaces that decide how XDP is attached to them.

Native XDP on a veth transmits (XDP_TX) or redirects into the peer only when the peer runs an XDP
program of its own (or, for redirects, has GRO on); otherwise the frames are dropped silently
(measured on this kernel, docs/testbed.md). The peer may live in another namespace where the daemon
cannot see it, so `auto` attaches generic XDP to veths, which always delivers, and native XDP to
everything else (falling back to generic when the driver has no XDP support).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute


@dataclass(frozen=True)
class LinkFacts:
    ifname: str
    ifindex: int
    kind: str  # "veth", "bridge", … ; "" for a physical NIC
    mac: bytes
    mtu: int
    xdp_attached: bool


def link_facts(ifname: str) -> LinkFacts | None:
    """None when there is no such interface in this network namespace."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        link = ipr.link("get", index=found[0])[0]
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    xdp = link.get_attr("IFLA_XDP")
    attached = bool(xdp is not None and xdp.get_attr("IFLA_XDP_ATTACHED"))
    mac = bytes.fromhex((link.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00").replace(":", ""))
    return LinkFacts(ifname, found[0], kind or "", mac, int(link.get_attr("IFLA_MTU") or 1500), attached)


def auto_prefers_generic(facts: LinkFacts) -> bool:
    return facts.kind == "veth"
