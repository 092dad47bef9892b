"""Building the two topologies of DESIGN.md's "Test topology": two-arm and one-arm.

Addresses (x = the run's subnet index, 1..254):

    client subnet 10.x.1.0/24   client 10.x.1.2 (aliases 10.x.1.101…), balancer 10.x.1.1
    real subnet   10.x.2.0/24   balancer 10.x.2.1, real i at 10.x.2.(10+i)
    VIP           10.x.0.100    on no balancer interface; the client routes it (default) via the lb

MACs are derived from addresses (02:00:0a:x:s:h for 10.x.s.h) so captures read easily.
"""

from __future__ import annotations

import atexit
import ipaddress
import re
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import decap
from .hosts import Host, Iface, RealSpec
from .links import NsLinks, base_sysctls, create_netns
from .naming import check_prefix, make_prefix, ns_name, subnet_index
from .nsenter import kill_pids, pids_in_netns
from .procs import run as run_in_ns
from .topology import Topology, XdpPeers

MAX_REALS = 200
MAX_ALIASES = 100
MAX_QUEUES = 16
_REAL_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_RESERVED = {"client", "lb", "sw"}

_live: weakref.WeakSet[Topology] = weakref.WeakSet()


@atexit.register
def _teardown_live() -> None:
    # A test process that exits without closing a topology still leaves nothing behind.
    for topo in list(_live):
        topo.teardown()


def mac_for(address: str) -> str:
    octets = ipaddress.IPv4Address(address).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in octets)


def _real_specs(reals: int | Sequence[RealSpec | str]) -> tuple[RealSpec, ...]:
    if isinstance(reals, int):
        specs = tuple(RealSpec(f"r{i}") for i in range(1, reals + 1))
    else:
        specs = tuple(r if isinstance(r, RealSpec) else RealSpec(r) for r in reals)
    if not 1 <= len(specs) <= MAX_REALS:
        raise ValueError(f"a topology has 1..{MAX_REALS} reals, got {len(specs)}")
    names = [s.name for s in specs]
    for name in names:
        if not _REAL_NAME.match(name) or name in _RESERVED:
            raise ValueError(f"real name must be [a-z][a-z0-9]{{0,9}} and not client/lb/sw: {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"real names repeat: {names}")
    return specs


@dataclass(frozen=True)
class _Plan:
    kind: str
    prefix: str
    net: int
    vip: str
    specs: tuple[RealSpec, ...]
    aliases: tuple[str, ...]
    xdp_peers: XdpPeers
    static_neighbours: bool
    tx_checksum: bool
    queues: int

    def a(self, subnet: int, host: int) -> str:
        return f"10.{self.net}.{subnet}.{host}"

    @property
    def client_ip(self) -> str:
        return self.a(1, 2)

    @property
    def lb_client_ip(self) -> str:
        return self.a(1, 1)

    @property
    def lb_real_ip(self) -> str:
        return self.a(2, 1)

    def real_ip(self, i: int) -> str:
        return self.a(2, 10 + i)


def _plan(kind: str, reals: int | Sequence[RealSpec | str], vip: str | None, net: int | None,
          prefix: str | None, xdp_peers: str, client_aliases: int,
          static_neighbours: bool, tx_checksum: bool, queues: int = 1) -> _Plan:
    prefix = check_prefix(prefix) if prefix else make_prefix()
    x = subnet_index(prefix) if net is None else net
    if not 1 <= x <= 254:
        raise ValueError(f"net (the second octet) must be in 1..254, got {x}")
    if xdp_peers not in ("off", "gro", "pass"):
        raise ValueError(f"xdp_peers must be off, gro or pass, not {xdp_peers!r}")
    if not 0 <= client_aliases <= MAX_ALIASES:
        raise ValueError(f"client_aliases must be in 0..{MAX_ALIASES}, got {client_aliases}")
    if not 1 <= queues <= MAX_QUEUES:
        raise ValueError(f"queues must be in 1..{MAX_QUEUES}, got {queues}")
    the_vip = vip or f"10.{x}.0.100"
    address = ipaddress.IPv4Address(the_vip)
    if address not in ipaddress.IPv4Network("10.0.0.0/8"):
        raise ValueError(f"the VIP must be in 10.0.0.0/8 (NETWORK RULES), got {the_vip}")
    for subnet in (f"10.{x}.1.0/24", f"10.{x}.2.0/24"):
        if address in ipaddress.IPv4Network(subnet):
            raise ValueError(f"the VIP {the_vip} must not be inside {subnet}")
    aliases = tuple(f"10.{x}.1.{100 + j}" for j in range(1, client_aliases + 1))
    return _Plan(kind, prefix, x, the_vip, _real_specs(reals), aliases,
                 xdp_peers, static_neighbours, tx_checksum, queues)  # type: ignore[arg-type]


def two_arm(reals: int | Sequence[RealSpec | str] = 3, *, vip: str | None = None,
            net: int | None = None, prefix: str | None = None, xdp_peers: XdpPeers = "off",
            client_aliases: int = 0, static_neighbours: bool = True,
            tx_checksum: bool = False, queues: int = 1) -> Topology:
    """client —veth— lb(eth0) ; lb(eth1) —veth— bridge in sw —veths— reals.

    `queues`: RX/TX queues of every veth (1, the kernel's default; 2 is what a 2-queue NIC
    would give each CPU of this machine kind). Use as a context manager:
    `with two_arm(3) as topo: ...`.
    """
    return _build(_plan("two_arm", reals, vip, net, prefix, xdp_peers, client_aliases,
                        static_neighbours, tx_checksum, queues))


def one_arm(reals: int | Sequence[RealSpec | str] = 3, *, vip: str | None = None,
            net: int | None = None, prefix: str | None = None, xdp_peers: XdpPeers = "off",
            client_aliases: int = 0, static_neighbours: bool = True,
            tx_checksum: bool = False, queues: int = 1) -> Topology:
    """client, lb(eth0, addresses in both subnets) and reals on one bridge in sw."""
    return _build(_plan("one_arm", reals, vip, net, prefix, xdp_peers, client_aliases,
                        static_neighbours, tx_checksum, queues))


def _build(plan: _Plan) -> Topology:
    workdir = Path(tempfile.mkdtemp(prefix=plan.prefix))
    created: list[str] = []
    links = NsLinks()
    try:
        topo = _build_in(plan, workdir, created, links)
    except BaseException:
        links.close()
        for name in reversed(created):
            try:
                kill_pids(pids_in_netns(name), 0.5)
            finally:
                try:
                    from .links import remove_netns

                    remove_netns(name)
                except Exception:  # noqa: BLE001 - best effort after a failed build: the first error is the one raised
                    pass
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    links.close()
    _live.add(topo)
    return topo


def _build_in(plan: _Plan, workdir: Path, created: list[str], links: NsLinks) -> Topology:
    p = plan
    names = ["client", "lb", "sw", *[s.name for s in p.specs]]
    ns = {h: ns_name(p.prefix, h) for h in names}

    for host in names:
        create_netns(ns[host])
        created.append(ns[host])
        extra: dict[str, str | int] = {}
        if host == "lb":
            # rp_filter off: replies of DR/IPIP reals come from the VIP, which the lb has no
            # route back to; a strict reverse-path check would drop them.
            extra = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0,
                     "net.ipv4.conf.default.rp_filter": 0}
        spec = next((s for s in p.specs if s.name == host), None)
        if spec is not None and spec.dr:
            # ipvsadm(8) direct routing: the real holds the VIP but must neither answer ARP for
            # it (arp_ignore=1: only for addresses on the asking interface) nor use it as ARP
            # source (arp_announce=2), or it would steal the VIP from the balancer.
            extra.update({"net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2})
        if spec is not None and spec.ipip:
            extra.update({"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0})
        base_sysctls(ns[host], extra)
        links.up(ns[host], "lo")

    lb_ifnames: list[str]
    links.bridge(ns["sw"], "br0")
    mac_client, mac_lb_c = mac_for(p.client_ip), mac_for(p.lb_client_ip)
    mac_lb_r = mac_for(p.lb_real_ip)
    peers: dict[tuple[str, str], tuple[str, str]] = {}

    def veth(a: str, ifa: str, b: str, ifb: str, mac_a: str | None, mac_b: str | None) -> None:
        links.veth(ns[a], ifa, ns[b], ifb, mac_a, mac_b, queues=p.queues)
        peers[(a, ifa)] = (b, ifb)
        peers[(b, ifb)] = (a, ifa)
        if b == "sw":
            links.enslave(ns["sw"], ifb, "br0")

    if p.kind == "two_arm":
        veth("client", "eth0", "lb", "eth0", mac_client, mac_lb_c)
        veth("lb", "eth1", "sw", "p-lb", mac_lb_r, None)
        lb_ifnames = ["eth0", "eth1"]
        lb_cidrs: dict[str, tuple[str, ...]] = {"eth0": (f"{p.lb_client_ip}/24",), "eth1": (f"{p.lb_real_ip}/24",)}
    else:
        veth("client", "eth0", "sw", "p-client", mac_client, None)
        veth("lb", "eth0", "sw", "p-lb", mac_lb_c, None)
        lb_ifnames = ["eth0"]
        lb_cidrs = {"eth0": (f"{p.lb_client_ip}/24", f"{p.lb_real_ip}/24")}
    for i, spec in enumerate(p.specs, start=1):
        veth(spec.name, "eth0", "sw", f"p-{spec.name}", mac_for(p.real_ip(i)), None)

    cidrs: dict[tuple[str, str], tuple[str, ...]] = {
        ("client", "eth0"): (f"{p.client_ip}/24", *[f"{a}/24" for a in p.aliases]),
        **{("lb", name): c for name, c in lb_cidrs.items()},
        **{(s.name, "eth0"): (f"{p.real_ip(i)}/24",) for i, s in enumerate(p.specs, start=1)},
    }
    for (host, ifname), addrs in cidrs.items():
        for cidr in addrs:
            links.address(ns[host], ifname, cidr)
    for (host, ifname) in peers:
        links.up(ns[host], ifname)
    links.up(ns["sw"], "br0")

    links.route(ns["client"], "default", p.lb_client_ip)
    for spec in p.specs:
        links.route(ns[spec.name], "default", p.lb_real_ip)
        if spec.dr or spec.ipip:
            links.address(ns[spec.name], "lo", f"{p.vip}/32")

    # Veth GRO is off by default on this kernel; say so explicitly so a kernel that differs does
    # not silently change what tests measure. TX checksum offload goes off too (unless asked
    # for): a veth otherwise hands on packets whose L4 checksum holds only the pseudo-header sum
    # (CHECKSUM_PARTIAL), a native-mode XDP program that forwards them (XDP_TX/REDIRECT turns the
    # skb into a bare frame) sends them out with that checksum, and the receiver drops them.
    # Peers of the balancer may get GRO or an XDP_PASS program: native XDP_TX/XDP_REDIRECT into a
    # veth only delivers when the peer runs NAPI (docs/testbed.md has what was measured).
    lb_peers = [peers[("lb", name)] for name in lb_ifnames]
    for (host, ifname) in peers:
        gro = p.xdp_peers == "gro" and (host, ifname) in lb_peers
        _offloads(ns[host], ifname, gro=gro, tx_csum=p.tx_checksum)
    if p.xdp_peers == "pass":
        for host, ifname in lb_peers:
            links.attach_xdp(ns[host], ifname, decap.pass_prog_fd(), native=True)

    decap_addrs: list[str] = []
    xdp_modes: dict[str, str] = {}
    for i, spec in enumerate(p.specs, start=1):
        if spec.ipip:
            decap.add_local(p.real_ip(i))
            decap_addrs.append(p.real_ip(i))
            xdp_modes[spec.name] = links.attach_xdp(ns[spec.name], "eth0", decap.decap_prog_fd())

    if p.static_neighbours:
        # one-arm: the balancer's single interface (and MAC) holds both of its addresses
        lb_real_mac = mac_lb_r if p.kind == "two_arm" else mac_lb_c
        _neighbours(p, ns, links, lb_ifnames, {p.lb_client_ip: mac_lb_c, p.lb_real_ip: lb_real_mac})

    def iface(host: str, ifname: str) -> Iface:
        index, mac = links.info(ns[host], ifname)
        peer_host, peer_if = peers[(host, ifname)]
        return Iface(ifname, index, mac, cidrs.get((host, ifname), ()), peer_host, peer_if)

    hosts: dict[str, Host] = {
        "client": Host("client", ns["client"], "client", (iface("client", "eth0"),), p.lb_client_ip),
        "lb": Host("lb", ns["lb"], "lb", tuple(iface("lb", n) for n in lb_ifnames)),
        "sw": Host("sw", ns["sw"], "switch",
                   tuple(iface("sw", ifb) for (h, ifb) in peers if h == "sw")),
    }
    for spec in p.specs:
        hosts[spec.name] = Host(spec.name, ns[spec.name], "real", (iface(spec.name, "eth0"),),
                                p.lb_real_ip, spec.dr, spec.ipip, xdp_modes.get(spec.name))
    topo = Topology(
        kind=p.kind,  # type: ignore[arg-type]
        prefix=p.prefix, net=p.net, vip=p.vip,
        client_subnet=f"10.{p.net}.1.0/24", real_subnet=f"10.{p.net}.2.0/24",
        hosts=hosts, lb_ifaces=hosts["lb"].ifaces, xdp_peers=p.xdp_peers, workdir=workdir,
        client_aliases=p.aliases, tx_checksum=p.tx_checksum,
    )
    topo._decap_addrs.extend(decap_addrs)
    return topo


def _offloads(netns: str, ifname: str, gro: bool, tx_csum: bool) -> None:
    def onoff(flag: bool) -> str:
        return "on" if flag else "off"

    run_in_ns(netns, ["ethtool", "-K", ifname, "gro", onoff(gro), "tx", onoff(tx_csum)],
              timeout=5.0)


def _neighbours(p: _Plan, ns: dict[str, str], links: NsLinks, lb_ifnames: list[str],
                lb_macs: dict[str, str]) -> None:
    """Permanent ARP entries between the balancer and its neighbours.

    The XDP program takes MACs from bpf_fib_lookup, which answers NO_NEIGH until ARP has run;
    permanent entries make the first packet of a test take the same path as the thousandth, and
    keep ARP out of captures.
    """
    def add(host: str, ifname: str, dst: str, mac: str) -> None:
        links.neighbour(ns[host], ifname, dst, mac)

    client_side = lb_ifnames[0]
    real_side = lb_ifnames[-1]
    for address in (p.client_ip, *p.aliases):
        add("lb", client_side, address, mac_for(p.client_ip))  # aliases share the client's NIC
    for i, spec in enumerate(p.specs, start=1):
        add("lb", real_side, p.real_ip(i), mac_for(p.real_ip(i)))
        add(spec.name, "eth0", p.lb_real_ip, lb_macs[p.lb_real_ip])
    add("client", "eth0", p.lb_client_ip, lb_macs[p.lb_client_ip])
