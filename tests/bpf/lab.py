"""The lab namespace of fixtures.py, built for real: interfaces with fixed ifindexes and MACs, routes,
permanent neighbours, forwarding on. `lab()` switches this thread into it (bpf_fib_lookup and
BPF_PROG_RUN's ingress_ifindex resolve in the caller's namespace) and always tears it down."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import netns

import fixtures as F


@dataclass(frozen=True)
class Lab:
    balancer: str  # namespace of the balancer's interfaces (a0, b0, c0)
    peer: str  # namespace of their veth peers


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def lab() -> Iterator[Lab]:
    prefix = f"lbt{os.getpid()}{uuid.uuid4().hex[:6]}"
    names = Lab(f"{prefix}-lb", f"{prefix}-peer")
    pushed = False
    try:
        ip("netns", "add", names.balancer)
        ip("netns", "add", names.peer)
        ip("-n", names.balancer, "link", "set", "lo", "up")
        for name, index, mac, address in F.INTERFACES:
            peer = name[0] + "1"
            ip("-n", names.balancer, "link", "add", name, "index", str(index), "address", mac,
               "type", "veth", "peer", "name", peer, "netns", names.peer)
            ip("-n", names.balancer, "addr", "add", address, "dev", name)
            ip("-n", names.balancer, "link", "set", name, "up")
            ip("-n", names.peer, "link", "set", peer, "up")
        ifname = {index: name for name, index, _, _ in F.INTERFACES}
        for (index, address), mac in F.NEIGHBOURS.items():
            ip("-n", names.balancer, "neigh", "replace", address, "lladdr", mac, "dev", ifname[index], "nud", "permanent")
        for network, gateway, index in F.GATEWAY_ROUTES:
            ip("-n", names.balancer, "route", "add", network, "via", gateway, "dev", ifname[index])
        subprocess.run(["ip", "netns", "exec", names.balancer, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"],
                       check=True, capture_output=True, timeout=10)
        netns.pushns(names.balancer)
        pushed = True
        yield names
    finally:
        if pushed:
            netns.popns()
        for ns in (names.balancer, names.peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
