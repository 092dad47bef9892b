"""Netlink steps that build a topology, with pyroute2 (no `ip` output is parsed anywhere).

Links are created inside the namespaces, never in the root namespace: a veth is made in one
namespace with its peer placed directly in the other (IFLA_NET_NS_FD in the peer's message), so
the root namespace never holds even a transient interface of ours.
"""

from __future__ import annotations

import ipaddress

from pyroute2 import IPRoute, netns
from pyroute2.netlink.rtnl.ndmsg import states as neigh_states

from .nsenter import write_sysctls

# XDP attach flags (include/uapi/linux/if_link.h).
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


def create_netns(name: str) -> None:
    netns.create(name)


def remove_netns(name: str) -> None:
    netns.remove(name)


def base_sysctls(name: str, extra: dict[str, str | int]) -> None:
    """Quiet, predictable defaults, applied before any interface exists so new ones inherit them.

    IPv6 is off: router solicitations, DAD and MLD reports would otherwise appear on every veth
    and pollute captures and counters. Redirects are off both ways: in one-arm the balancer
    forwards out of the interface a packet came in on, which is exactly when Linux sends ICMP
    redirects (net/ipv4/route.c, ip_rt_send_redirect), and a host that obeyed one would bypass
    the balancer.
    """
    settings: dict[str, str | int] = {
        "net.ipv6.conf.all.disable_ipv6": 1,
        "net.ipv6.conf.default.disable_ipv6": 1,
        "net.ipv4.conf.all.accept_redirects": 0,
        "net.ipv4.conf.default.accept_redirects": 0,
        "net.ipv4.conf.all.send_redirects": 0,
        "net.ipv4.conf.default.send_redirects": 0,
    }
    settings.update(extra)
    write_sysctls(name, settings)


class NsLinks:
    """One open rtnetlink socket per namespace for the duration of a build."""

    def __init__(self) -> None:
        self._ipr: dict[str, IPRoute] = {}

    def ipr(self, ns: str) -> IPRoute:
        if ns not in self._ipr:
            self._ipr[ns] = IPRoute(netns=ns, flags=0)
        return self._ipr[ns]

    def close(self) -> None:
        for ipr in self._ipr.values():
            try:
                ipr.close()
            except Exception:  # noqa: BLE001 - closing at teardown: one socket's error must not keep the others open
                pass
        self._ipr.clear()

    def index(self, ns: str, ifname: str) -> int:
        found = self.ipr(ns).link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"no interface {ifname} in {ns}")
        return int(found[0])

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str,
             mac_a: str | None = None, mac_b: str | None = None, index_a: int | None = None,
             queues: int = 1) -> None:
        """A veth pair; `index_a` fixes the ifindex of the `ns_a` end (a replay lab rebuilds the
        recorded ones, which bpf_fib_lookup answers with). `queues` > 1 gives both ends that many
        RX and TX queues (IFLA_NUM_RX/TX_QUEUES, as `ip link add … numrxqueues N`); a veth has one
        of each unless created with more (drivers/net/veth.c)."""
        peer: dict[str, object] = {"ifname": if_b, "net_ns_fd": ns_b}
        if queues > 1:
            peer.update(num_rx_queues=queues, num_tx_queues=queues)
        if mac_b:
            peer["address"] = mac_b
        args: dict[str, object] = {"ifname": if_a, "kind": "veth", "peer": peer}
        if mac_a:
            args["address"] = mac_a
        if index_a:
            args["index"] = index_a
        if queues > 1:
            args.update(num_rx_queues=queues, num_tx_queues=queues)
        self.ipr(ns_a).link("add", **args)

    def bridge(self, ns: str, name: str) -> None:
        # STP off and no forwarding delay: ports forward the moment they come up.
        self.ipr(ns).link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)

    def enslave(self, ns: str, ifname: str, bridge: str) -> None:
        self.ipr(ns).link("set", index=self.index(ns, ifname), master=self.index(ns, bridge))

    def up(self, ns: str, ifname: str) -> None:
        self.ipr(ns).link("set", index=self.index(ns, ifname), state="up")

    def address(self, ns: str, ifname: str, cidr: str) -> None:
        iface = ipaddress.IPv4Interface(cidr)
        self.ipr(ns).addr("add", index=self.index(ns, ifname), address=str(iface.ip),
                          prefixlen=iface.network.prefixlen)

    def route(self, ns: str, dst: str, gateway: str, ifname: str | None = None) -> None:
        extra = {"oif": self.index(ns, ifname)} if ifname else {}
        self.ipr(ns).route("add", dst=dst, gateway=gateway, **extra)

    def neighbour(self, ns: str, ifname: str, dst: str, mac: str) -> None:
        """A permanent ARP entry: bpf_fib_lookup answers NO_NEIGH until ARP has run, so a fixed
        entry makes the first packet take the same path as the thousandth."""
        self.ipr(ns).neigh("add", dst=dst, lladdr=mac, ifindex=self.index(ns, ifname),
                           state=neigh_states["permanent"])

    def info(self, ns: str, ifname: str) -> tuple[int, str]:
        """(ifindex, MAC) of an interface."""
        link = self.ipr(ns).get_links(self.index(ns, ifname))[0]
        return int(link["index"]), str(link.get_attr("IFLA_ADDRESS"))

    def attach_xdp(self, ns: str, ifname: str, prog_fd: int, native: bool = True) -> str:
        """Attach a loaded XDP program by fd; native (driver) mode, else generic. Returns the mode.

        Attached over netlink, the program outlives this process's fd and goes away with the
        interface, i.e. when the namespace is deleted.
        """
        index = self.index(ns, ifname)
        modes = [("native", XDP_FLAGS_DRV_MODE), ("generic", XDP_FLAGS_SKB_MODE)]
        if not native:
            modes = modes[1:]
        last: Exception | None = None
        for label, flags in modes:
            try:
                self.ipr(ns).link("set", index=index, xdp={
                    "attrs": [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)]})
                return label
            except Exception as exc:  # noqa: BLE001 - pyroute2 raises NetlinkError; try the next mode
                last = exc
        raise RuntimeError(f"cannot attach XDP to {ifname} in {ns}: {last}")
