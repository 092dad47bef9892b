"""Case 2, forwarding throughput: 64-byte UDP from many source ports, client → balancer → 3 reals.

Each variant gets its own two-arm topology, built once and configured once, so nothing one
variant leaves behind (conntrack entries with NAT bindings, XDP programs, routes) can change what
another measures; the runs are interleaved across them, and within a run the variants take
turns (SLICES), so each sends across the whole run and all see the same machine; a failed run is
kept in its row with the reason. Packets are counted where they arrive:
an XDP_DROP program with a per-CPU counter on every real's interface (the ceiling is counted at
the balancer's ingress, where it drops).

The rig is the same for every variant and as close to a 2-queue NIC as veths get (QUEUES,
PEERS). Every veth is created with 2 RX and 2 TX queues, one per CPU of this machine kind (a veth
has one of each unless created with more). The balancer's peers run NAPI with GRO on, as a NIC
would; a native XDP_REDIRECT into a veth only delivers when the peer has NAPI (GRO or an XDP
program), and GRO keeps the kernel variants' packets out of an XDP program they would not
meet on a kube-proxy node. The generator is
bpf/bench_gen.c run with BPF_PROG_RUN in live-frames mode on the client's veth, from one thread
pinned to each CPU: each frame is written from a template with the next of 1024 source ports and
leaves with XDP_TX, at a cost of tens of ns (an AF_PACKET sendmmsg generator on this VM spent
microseconds per packet and capped every variant near 200 kpps). A veth puts a frame into the
peer's queue of the sending CPU (drivers/net/veth.c, veth_xdp_xmit) and schedules that queue's
NAPI on the same CPU, so each CPU feeds its own queue and runs everything that queue's packets
cause downstream in its own softirq, as RSS with one interrupt per queue would spread a NIC's
traffic. Live frames need a receiver that takes XDP frames: the balancer's XDP program in the XDP
variants, GRO on its eth0 (which gives a veth its NAPI) in the kernel variants.

What the rig cannot remove (issue 7 has the figures): the generator shares each CPU with the
forwarding it feeds, since a 2-CPU machine has no third CPU for it (moving the balancer's NAPI to
the other CPU as a pinned thread made every variant slower: frames then cross CPUs), and every
variant pays the same bridge and real-side veth hops after the balancer. Both are per-packet costs
common to all variants, so they pull every ratio towards 1.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Final

from lb.bench.programs import XDP_DROP, Registry
from lb.bench.results import Row, measured, not_measured

UDP = 17
VPORT = 9000
SPORT_BASE = 10000  # the generator template's source port, the first of FLOWS
FLOWS = 1024  # bench_gen.c's GEN_FLOWS
# frames per BPF_PROG_RUN call (each call sets up a page pool); a turn stops at the first chunk past its time
GEN_CHUNK = 65536
SLICES = 5  # turns per run: every variant sends across the whole run, not in one stretch of it
# The rig, the same for every variant: every veth has this many RX/TX queues (this machine kind
# has 2 CPUs), the balancer's peers run NAPI with GRO on as a NIC would, and one generator thread
# per CPU feeds the queue of its own CPU (the veth picks the receiving queue by sending CPU).
QUEUES = 2
PEERS: Final = "gro"

CEILING = "ceiling (XDP_DROP at ingress)"
IPTABLES = "iptables DNAT (statistic random)"


@dataclass(frozen=True)
class Variant:
    name: str
    setup: Callable[[Any, Registry, int], str]  # (topo, registry, flows) → counter role


def _attach(topo: Any, host: str, ifname: str, fd: int, native: bool) -> None:
    from lb.datapath.testbed.links import NsLinks

    links = NsLinks()
    try:
        mode = links.attach_xdp(topo.host(host).netns, ifname, fd, native=native)
    finally:
        links.close()
    want = "native" if native else "generic"
    if mode != want:
        raise RuntimeError(f"XDP on {host}/{ifname} attached {mode}, not {want}")


def _count_at_reals(topo: Any, registry: Registry) -> None:
    """The counting XDP_DROP on every real, and static bridge entries for their MACs: the reals
    never send, so an unlearned bridge would flood each packet to every real (counted 3 times)."""
    sink = registry.get("sink")
    for real in topo.reals:
        _attach(topo, real.name, "eth0", sink.fd, native=True)
        topo.run("sw", ["bridge", "fdb", "replace", real.iface.mac, "dev", real.iface.peer_ifname,
                        "master", "static"])


def _gro_on_ingress(topo: Any) -> None:
    topo.run("lb", ["ethtool", "-K", "eth0", "gro", "on"])


def _ceiling(topo: Any, registry: Registry, flows: int) -> str:
    _attach(topo, "lb", "eth0", registry.get("drop").fd, native=True)
    return "drop"


def _lbxdp(native: bool) -> Callable[[Any, Registry, int], str]:
    def setup(topo: Any, registry: Registry, flows: int) -> str:
        from ipaddress import IPv4Address as A

        from lb.datapath.testbed import in_netns_call
        from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
        from lb.tables import FlowEntry, RealEntry, ServiceEntry, Tables

        # one object per variant: a devmap entry names the device of the namespace it was
        # written from, so two topologies cannot share one tx_ports
        lbx = registry.get("lbxdp-native" if native else "lbxdp-generic")
        n, client, vip = len(topo.reals), A(topo.client.ip), A(topo.vip)
        tables = Tables(
            services={ServiceKey(Protocol.UDP, vip, VPORT): ServiceEntry(0)},
            reals={i: RealEntry(A(r.ip), VPORT, Forwarding.MASQ) for i, r in enumerate(topo.reals)},
            # flows installed up front, as Katran benches its hit path: no daemon needed
            flows={FlowKey(Protocol.UDP, client, SPORT_BASE + i, vip, VPORT): FlowEntry(i % n, 0)
                   for i in range(flows)},
            tx_ports={topo.lb.iface_named("eth0").ifindex, topo.lb.iface_named("eth1").ifindex},
        )
        in_netns_call(topo.lb.netns, lambda: lbx.maps.write(tables))
        _count_at_reals(topo, registry)
        if not native:
            _gro_on_ingress(topo)  # generic XDP gives the veth no NAPI; the generator's frames need one
        _attach(topo, "lb", "eth0", lbx.fd, native=native)
        return "sink"

    return setup


def _minimal_dnat(topo: Any, registry: Registry, flows: int) -> str:
    dnat = registry.get("dnat")
    eth1 = topo.lb.iface_named("eth1")
    for i in range(flows):
        real = topo.reals[i % len(topo.reals)]
        dnat.add_dnat(topo.client.ip, topo.vip, SPORT_BASE + i, VPORT, UDP, real.ip, VPORT, eth1.ifindex,
                      eth1.mac, real.iface.mac)
    _count_at_reals(topo, registry)
    _attach(topo, "lb", "eth0", dnat.fd, native=True)
    return "sink"


def _iptables(topo: Any, registry: Registry, flows: int) -> str:
    """kube-proxy's iptables mode (lb.bench.kubeproxy)."""
    from lb.bench.kubeproxy import statistic_dnat

    for argv in statistic_dnat(topo.vip, "udp", VPORT, [f"{r.ip}:{VPORT}" for r in topo.reals]):
        topo.run("lb", argv)
    _gro_on_ingress(topo)
    _count_at_reals(topo, registry)
    return "sink"


def _nftables(topo: Any, registry: Registry, flows: int) -> str:
    mapping = ", ".join(f"{i} : {r.ip}" for i, r in enumerate(topo.reals))
    script = (f"table ip lbbench {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n"
              f"  ip daddr {topo.vip} udp dport {VPORT} dnat to numgen random mod {len(topo.reals)}"
              f" map {{ {mapping} }}\n }}\n}}\n")
    topo.run("lb", ["nft", "-f", "-"], input=script)
    _gro_on_ingress(topo)
    _count_at_reals(topo, registry)
    return "sink"


def _routing(topo: Any, registry: Registry, flows: int) -> str:
    """No NAT: the VIP routed over equal-cost next hops (the reals), hashed on the 5-tuple."""
    from lb.datapath.testbed import write_sysctls

    write_sysctls(topo.lb.netns, {"net.ipv4.fib_multipath_hash_policy": 1})
    hops: list[str] = []
    for real in topo.reals:
        hops += ["nexthop", "via", real.ip]
    topo.run("lb", ["ip", "route", "add", f"{topo.vip}/32", *hops])
    _gro_on_ingress(topo)
    _count_at_reals(topo, registry)
    return "sink"


VARIANTS: tuple[Variant, ...] = (
    Variant(CEILING, _ceiling),
    Variant("lbxdp native", _lbxdp(native=True)),
    Variant("lbxdp generic", _lbxdp(native=False)),
    Variant("minimal XDP DNAT native", _minimal_dnat),
    Variant(IPTABLES, _iptables),
    Variant("nftables numgen DNAT", _nftables),
    Variant("plain routing", _routing),
)


QUICK_SKIPS = frozenset({"lbxdp generic", "nftables numgen DNAT", "plain routing"})  # not in a target


def run(registry: Registry, runs: int, seconds: float, tick: Callable[[str], None],
        quick: bool = False) -> list[Row]:
    """With `quick`, the variants no target needs are left out and frames go in smaller chunks."""
    from lb.datapath.testbed import two_arm

    chunk = GEN_CHUNK // 8 if quick else GEN_CHUNK
    variants = [v for v in VARIANTS if not (quick and v.name in QUICK_SKIPS)]

    unit = "pps"
    try:
        gen = registry.get("gen")
    except RuntimeError as exc:
        return [not_measured("forwarding", v.name, unit, str(exc)) for v in VARIANTS]
    with ExitStack() as stack:
        ready: dict[str, tuple[Any, str]] = {}
        errors: dict[str, str] = {}
        for v in variants:
            tick(f"forwarding: building {v.name}")
            try:
                topo = stack.enter_context(two_arm(reals=3, xdp_peers=PEERS, queues=QUEUES))
                ready[v.name] = (topo, v.setup(topo, registry, FLOWS))
            except Exception as exc:  # noqa: BLE001 (one variant's failure is a row, not a crash)
                errors[v.name] = _first_line(exc)
        samples: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
        sent: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
        failed: dict[str, list[str]] = {v.name: [] for v in VARIANTS}
        for i in range(runs):  # interleaved: run 1 of every variant, then run 2, …
            totals = {name: [0, 0, 0.0] for name in ready}  # arrived, sent, seconds
            for part in range(SLICES):  # … and within a run the variants take turns
                for v in variants:
                    if v.name not in totals:
                        continue
                    tick(f"forwarding: run {i + 1}/{runs}, slice {part + 1}/{SLICES}: {v.name}")
                    topo, role = ready[v.name]
                    try:
                        got = _one_run(topo, registry.get(role), gen, seconds / SLICES, chunk)
                    except Exception as exc:  # noqa: BLE001 (a failed run is kept in the row)
                        failed[v.name].append(f"run {i + 1}: {_first_line(exc)}")
                        del totals[v.name]
                        continue
                    totals[v.name] = [a + b for a, b in zip(totals[v.name], got)]
            for name, (arrived, frames, elapsed) in totals.items():
                samples[name].append(arrived / elapsed)
                sent[name].append(frames / elapsed)
    rows = []
    for v in VARIANTS:
        if quick and v.name in QUICK_SKIPS:
            rows.append(not_measured("forwarding", v.name, unit, "left out of --quick (full run only)"))
            continue
        if not samples[v.name]:
            why = errors.get(v.name) or (failed[v.name][0] if failed[v.name] else "no run finished")
            rows.append(not_measured("forwarding", v.name, unit, why, failed=failed[v.name]))
            continue
        offered = statistics.median(sent[v.name])
        where = "dropped at the balancer's ingress" if v.name == CEILING else "counted at the reals"
        rows.append(measured("forwarding", v.name, unit, samples[v.name], failed=failed[v.name],
                             check=f"{where}; generator offered {offered / 1e6:.2f} Mpps"))
    return rows


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def _one_run(topo: Any, counter: Any, gen: Any, seconds: float, chunk: int) -> tuple[int, int, float]:
    """(packets that arrived, packets the generators sent, seconds they sent for) over one bounded
    turn: one generator thread pinned to each CPU, started together, timed from the first start
    to the last stop."""
    from lb.bench.fastpath import _udp
    from lb.datapath.progrun import BPF_F_TEST_XDP_LIVE_FRAMES, run as prog_run
    from lb.datapath.testbed import in_netns_call

    client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
    packet = _udp(client.mac, lb0.mac, topo.client.ip, topo.vip, SPORT_BASE, VPORT)
    template = gen.bpf["gen_template"]
    leaf = template.Leaf()
    ctypes.memmove(ctypes.addressof(leaf), packet, len(packet))
    template[template.Key(0)] = leaf

    cpus = sorted(os.sched_getaffinity(0))
    together = threading.Barrier(len(cpus), timeout=30)
    spans: dict[int, tuple[int, float, float]] = {}  # cpu → (frames, start, stop)

    def send(cpu: int) -> None:
        # the live frames of a BPF_PROG_RUN call enter the peer's queue of the calling CPU
        # (drivers/net/veth.c, veth_xdp_xmit), whose NAPI then runs as that CPU's softirq
        os.sched_setaffinity(0, {cpu})
        together.wait()
        frames, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            prog_run(gen.fd, packet, ingress_ifindex=client.ifindex, repeat=chunk,
                     flags=BPF_F_TEST_XDP_LIVE_FRAMES)
            frames += chunk
        spans[cpu] = (frames, start, time.monotonic())

    errors: list[BaseException] = []

    def thread(cpu: int) -> None:
        try:
            in_netns_call(topo.client.netns, lambda: send(cpu), timeout=seconds + 30)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
            together.abort()

    before = counter.verdicts(XDP_DROP)
    threads = [threading.Thread(target=thread, args=(cpu,), daemon=True) for cpu in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    if errors:
        raise errors[0]
    if len(spans) != len(cpus):
        raise RuntimeError(f"{len(cpus) - len(spans)} generator thread(s) did not finish")
    time.sleep(0.05)  # the last frames drain through the receivers' softirqs
    frames = sum(f for f, _, _ in spans.values())
    elapsed = max(e for _, _, e in spans.values()) - min(b for _, b, _ in spans.values())
    return counter.verdicts(XDP_DROP) - before, frames, elapsed
