"""The kernel side of replay: a namespace rebuilt from a scenario's topology, the XDP program loaded in
it (pin=False), and BPF_PROG_RUN as a `Datapath` for lb.replay.engine.

Like tests/bpf/lab.py: interfaces get the recorded ifindexes and MACs, the recorded addresses, the
permanent neighbours and gateway routes, forwarding on; the calling thread enters the namespace
(bpf_fib_lookup() and BPF_PROG_RUN's ingress_ifindex resolve in the caller's namespace), so every fib
lookup answers what it answered while recording. Nothing is sent anywhere: BPF_PROG_RUN without
live frames only runs the program on a buffer. Names come from the testbed's per-run prefix, so a
crashed run's namespaces are found by `cleanup_stale`; everything is removed on exit.

This module and lb.replay.record are the only parts of lb.replay that touch the kernel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import netns

from lb.datapath import progrun
from lb.datapath.loader import Datapath as Loaded
from lb.datapath.loader import Tunables, load
from lb.datapath.testbed.naming import make_prefix
from lb.model import FlowKey
from lb.replay.engine import Outcome
from lb.replay.scenario import Topology
from lb.rewrite import Reason, Verdict
from lb.tables import Tables

REPLAY_TUNABLES = Tunables(max_flows=65536, max_services=256, max_reals=256, max_tx_ports=256)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def namespace(topology: Topology) -> Iterator[str]:
    """Build the balancer's namespace from `topology`, enter it (this thread), and always undo both."""
    prefix = make_prefix()
    lb_ns, peer_ns = f"{prefix}rlb", f"{prefix}rpeer"
    made: list[str] = []
    pushed = False
    try:
        for name in (lb_ns, peer_ns):
            _ip("netns", "add", name)
            made.append(name)
        _ip("-n", lb_ns, "link", "set", "lo", "up")
        names = {}
        for n, iface in enumerate(topology.interfaces):
            names[iface.ifindex] = iface.name
            _ip("-n", lb_ns, "link", "add", iface.name, "index", str(iface.ifindex), "address", iface.mac,
                "type", "veth", "peer", "name", f"p{n}", "netns", peer_ns)
            for cidr in iface.cidrs:
                _ip("-n", lb_ns, "addr", "add", cidr, "dev", iface.name)
            _ip("-n", lb_ns, "link", "set", iface.name, "up")
            _ip("-n", peer_ns, "link", "set", f"p{n}", "up")
        for neigh in topology.neighbours:
            _ip("-n", lb_ns, "neigh", "replace", neigh.address, "lladdr", neigh.mac, "dev", names[neigh.ifindex],
                "nud", "permanent")
        for route in topology.routes:
            _ip("-n", lb_ns, "route", "replace", route.network, "via", route.gateway, "dev", names[route.ifindex])
        subprocess.run(["ip", "netns", "exec", lb_ns, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"],
                       check=True, capture_output=True, timeout=10)
        netns.pushns(lb_ns)
        pushed = True
        yield lb_ns
    finally:
        if pushed:
            netns.popns()
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


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
        egress = ingress if verdict is Verdict.TX else self.topology.egress_for(out) if verdict is Verdict.REDIRECT else None
        return Outcome(verdict, out, reason, egress)

    def install(self, tables: Tables, flow: FlowKey) -> None:
        """What the daemon does after scheduling (DatapathMaps.install_flow: reverse entry first)."""
        self.loaded.maps.install_flow(tables, flow)


@contextmanager
def xdp_datapath(topology: Topology, tables: Tables, cflags: tuple[str, ...] = ()) -> Iterator[XdpDatapath]:
    """The program loaded (not pinned, not attached) in a namespace built from `topology`, its maps
    holding `tables`. `cflags` adds -D flags (tests compile deliberately broken variants)."""
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
