"""Case 3, new flows per second through the NFQUEUE first-packet path of the live daemon, and
decided inside XDP for each kind of built-in scheduler.

Every frame bpf/bench_syn.c sends is the SYN of a flow never seen before (source ports 1024…65023
on each of the client's 8 addresses, so 512000 distinct flows before any repeats), sent from the
client's namespace at a paced rate with BPF_PROG_RUN in live-frames mode. XDP misses, the
`LBXDP` mangle rule queues the SYN, the daemon schedules it, installs the flow and forwards it;
nginx on the real answers SYN-ACK (through XDP's reverse entry) and the client's kernel, which
has no such socket, resets it. What counts is those resets (the client namespace's Tcp OutRsts,
read from the bench process: flows scheduled, forwarded and answered), polled every 20 ms until
all have come or none came for 2 s; the daemon's own `scheduled` counter, the flows in the table
and NFQUEUE's drop counters are the check. (Polling the daemon instead would load it: a status
request reads the whole flow table.) The service, VIP:80 rr, has thresholds on its reals that no
run reaches, which keep it in the daemon (lb.bench.live).

Offered: a burst of a fixed number of SYNs (fewer than the queue holds, so none is dropped for
want of room) at a rate above the target (issue 7: ≥ 25k new flows/s), in 10 ms slices; the
figure is the answered flows divided by the time from the first SYN to the last answer.

"lbxdp NFQUEUE (plugin rr)": the same bursts against a masquerading service on VIP:82 whose
scheduler is a plugin round robin written in Python (examples/plugin_scheduler/pyrr.py, loaded
through LBXDP_SCHEDULERS, lb.bench.live): XDP cannot run a plugin, so every first packet is
decided by the daemon, whatever the datapath decides for built-in schedulers.

"lbxdp in-kernel KIND" rows, one per service of lb.bench.live.XDP_SERVICES (mh, rr, wlc, sh,
rr -p, udp rr; issue 13): the same bursts against a masquerading service of that scheduler, which
XDP decides itself (the daemon writes the scheduler's state into maps); no first packet goes to
the daemon, so the burst is larger and offered at MH_OFFERED. The check is where `lbxdp status
--json` says the service's first packets are decided, the flows XDP created (`xdp_scheduled`) and
the first-packet path's packets (`first_path_packets`), which must stay 0: a kind XDP does not
decide yet shows NFQUEUE's figure and says so.

New UDP flows: the generator's template is a UDP datagram (checksum 0, "none" in RFC 768, so
changing the port needs no checksum work), one datagram per new source port. Nothing listens on
the reals' port, so each real's kernel counts every datagram that arrived in its Udp NoPorts,
read from the bench process: one way, client → balancer → real (an echo server in Python would
be the bottleneck of both rows, and its replies would be a flow hit for lbxdp anyway). The reals'
port-unreachable errors are rate-limited by their kernels (1000/s).

Baselines, the same bursts at MH_OFFERED: "iptables DNAT" (case 4's kube-proxy chain, VIP:8081 →
reals:8080), "iptables DNAT (udp)" (the same chain for UDP, VIP:8053 → reals:5354, counted as the
UDP rows are) and "routed to one real, no NAT" (r1:8080): what the rig itself allows when no
balancer does any work. The variants take turns within each run (interleaved, as every case).
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lb.bench.live import (
    IPTABLES_PORT,
    OTHER_PORT,
    PLUGIN_PORT,
    UDP_IPTABLES_PORT,
    UDP_OTHER_PORT,
    XDP_SERVICES,
    XdpService,
    ensure_iptables,
    ensure_plugin_service,
    ensure_service,
    first_packets_decided,
)
from lb.bench.programs import Registry
from lb.bench.results import Row, measured, not_measured
from lb.bench.syn import SPORT_BASE, await_answers, paced_send, syn_frame, udp_frame

NAME, UNIT = "lbxdp NFQUEUE", "flows/s"
PLUGIN_NAME = "lbxdp NFQUEUE (plugin rr)"
IPTABLES_NAME = "iptables DNAT"
IPTABLES_UDP_NAME = "iptables DNAT (udp)"
ROUTED_NAME = "routed to one real, no NAT"
MH_OFFERED = 200_000  # SYNs per second offered to the in-kernel service (no queue to overflow)
OFFERED = 40_000  # SYNs per second offered
# A burst is over once no answer came for this long. Less than TCP's initial RTO (1 s): a real
# resends its SYN-ACK after 1 s when the client's reset was lost (the client → balancer veth ring
# overflows at these rates), and that second reset would be counted again and stretch the burst's
# time by a second (runs of 5k flows/s among runs of 16k).
QUIET = 0.6


def in_kernel_name(label: str) -> str:
    """The row of an XDP_SERVICES service: "lbxdp in-kernel rr", "lbxdp in-kernel udp rr"."""
    return f"lbxdp in-kernel {label}"


MH_NAME = in_kernel_name("mh")


def _offer(live: Any, gen: Any, rate: int, count: int, dst: tuple[str, int] | None = None,
           udp: bool = False) -> int:
    """Send `count` SYNs (with `udp`, datagrams) at about `rate`/s from the client's namespace to
    `dst` (address, port; default the VIP and `live.port`); returns how many were sent."""
    from lb.datapath.testbed import in_netns_call

    topo = live.topo
    client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
    first = topo.client_aliases[0] if topo.client_aliases else topo.client.ip
    address, port = dst or (topo.vip, live.port)
    if udp:
        packet = udp_frame(client.mac, lb0.mac, first, address, SPORT_BASE, port)
    else:
        packet = syn_frame(client.mac, lb0.mac, first, address, SPORT_BASE, port, seq=1_000_000)
    template = gen.bpf["syn_template"]
    leaf = template.Leaf()
    ctypes.memmove(ctypes.addressof(leaf), packet, len(packet))
    template[template.Key(0)] = leaf
    return in_netns_call(topo.client.netns, lambda: paced_send(gen.fd, packet, client.ifindex, count, rate),
                         timeout=60)


def _snmp(netns: str, proto: str, name: str) -> int:
    """One counter of /proc/net/snmp (e.g. Tcp OutRsts) in namespace `netns`, read from this
    process, which costs the daemon nothing (a status request makes it read the whole flow table)."""
    from lb.datapath.testbed import in_netns_call

    def read() -> int:
        snmp = Path("/proc/thread-self/net/snmp").read_text().splitlines()
        lines = [ln.split() for ln in snmp if ln.startswith(f"{proto}:")]
        return int(lines[1][lines[0].index(name)])

    return in_netns_call(netns, read)


def _client_resets(live: Any) -> int:
    """Tcp OutRsts of the client's namespace: its kernel resets every SYN-ACK the reals send for
    the generator's SYNs (it has no such socket), so this counts flows that went all the way
    through the first-packet path and were answered."""
    return _snmp(live.topo.client.netns, "Tcp", "OutRsts")


def _reals_noports(live: Any) -> int:
    """Udp NoPorts of every real's namespace: each new UDP flow's datagram that reached a real
    (nothing listens on the port the balancers send them to)."""
    return sum(_snmp(real.netns, "Udp", "NoPorts") for real in live.topo.reals)


def _queue_drops(live: Any) -> int:
    """NFQUEUE's drops (queue full or undelivered) in the lb namespace, read by the kernel's file."""
    from lb.datapath import queuestats

    done = live.topo.run("lb", ["cat", str(queuestats.PROC_PATH)], check=False)
    return queuestats.parse(done.stdout).dropped


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid`, all threads (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat's cpu line:
    user nice system idle iowait irq softirq steal (guest time is already in user). Time the
    hypervisor stole counts as not ours: neither busy nor idle."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, _steal = (int(v) for v in stat.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / tick, (busy + idle + iowait) / tick


def one_run(live: Any, gen: Any, count: int, pid: int | None = None, offered: int = 0,
            dst: tuple[str, int] | None = None, udp: bool = False) -> tuple[float, dict[str, float]]:
    """Offer `count` SYNs at OFFERED/s and time how long until the client has reset the answers to
    all of them (or they stop coming: what is missing was dropped); with `udp`, datagrams, until
    the reals have counted all of them. Returns (flows/s, facts); with the daemon's `pid`, the
    facts include its CPU time (user = Python and libraries, system = its syscalls and the packet
    delivery they run inline) and the whole machine's."""
    counter = _reals_noports if udp else _client_resets
    drops0, scheduled0 = _queue_drops(live), live.scheduled()
    cpu0 = cpu_seconds(pid) if pid else (0.0, 0.0)
    busy0 = machine_busy()
    before, t0 = counter(live), time.monotonic()
    # CPU readings are taken with each new answer count, so they end with the last answer (as the
    # rate's time does), not after the quiet wait that follows a burst with losses.
    last_n: int | None = None
    cpu1, busy1 = cpu0, busy0

    def answers() -> int:
        nonlocal last_n, cpu1, busy1
        n = counter(live)
        if n != last_n:
            last_n, cpu1, busy1 = n, cpu_seconds(pid) if pid else (0.0, 0.0), machine_busy()
        return n

    sent = _offer(live, gen, offered or OFFERED, count, dst, udp)
    last, t1 = await_answers(answers, before, sent, deadline=t0 + 60, quiet_s=QUIET)
    scheduled = live.scheduled() - scheduled0
    return (last - before) / (t1 - t0), {"sent": sent, "answered": last - before, "scheduled": scheduled,
                                         "dropped": _queue_drops(live) - drops0, "elapsed": t1 - t0,
                                         "user": cpu1[0] - cpu0[0], "system": cpu1[1] - cpu0[1],
                                         "busy": busy1[0] - busy0[0], "cpu_total": busy1[1] - busy0[1]}


@dataclass(frozen=True)
class Variant:
    """One way a burst of new flows is offered and answered (a row of case 3)."""

    name: str
    offered: int  # SYNs per second
    burst: int  # the burst's size, in multiples of the NFQUEUE burst
    dst: Callable[[Any], tuple[str, int]]  # the SYNs' destination in the live topology
    setup: Callable[[Any], object] | None = None  # what it returns is not used
    daemon: bool = False  # the daemon's first-packet path does the work: its CPU per flow is shown
    udp: bool = False  # new UDP flows (one datagram each), counted where they arrive
    xdp: XdpService | None = None  # the service XDP should decide


def in_kernel(service: XdpService) -> Variant:
    return Variant(in_kernel_name(service.label), MH_OFFERED, 2, lambda live: (live.topo.vip, service.port),
                   lambda live: ensure_service(live, service), udp=service.udp, xdp=service)


VARIANTS = (
    Variant(NAME, OFFERED, 1, lambda live: (live.topo.vip, live.port), daemon=True),
    Variant(PLUGIN_NAME, OFFERED, 1, lambda live: (live.topo.vip, PLUGIN_PORT), ensure_plugin_service,
            daemon=True),
    *(in_kernel(s) for s in XDP_SERVICES),
    Variant(IPTABLES_NAME, MH_OFFERED, 2, lambda live: (live.topo.vip, IPTABLES_PORT), ensure_iptables),
    Variant(IPTABLES_UDP_NAME, MH_OFFERED, 2, lambda live: (live.topo.vip, UDP_IPTABLES_PORT), ensure_iptables,
            udp=True),
    Variant(ROUTED_NAME, MH_OFFERED, 2, lambda live: (live.topo.reals[0].ip, OTHER_PORT)),
)


def run(live: Any | None, registry: Registry, runs: int, count: int, tick: Callable[[str], None],
        why_not: str = "") -> list[Row]:
    """Every variant's bursts, interleaved: run i offers one burst to each variant in turn."""
    if live is None:
        why = why_not or "the live daemon did not start"
        return [not_measured("newflows", v.name, UNIT, why) for v in VARIANTS]
    try:
        gen = registry.get("syn")
    except RuntimeError as exc:
        return [not_measured("newflows", v.name, UNIT, str(exc)) for v in VARIANTS]
    errors: dict[str, str] = {}
    for v in VARIANTS:
        try:
            if v.setup is not None:
                v.setup(live)
        except Exception as exc:  # noqa: BLE001 (the variant becomes a row saying why)
            errors[v.name] = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
    samples: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    facts: dict[str, list[dict[str, float]]] = {v.name: [] for v in VARIANTS}
    decided: dict[str, str] = {}  # where the daemon said an in-XDP variant's first packets are decided
    pid = live.pid  # once: a status request makes the daemon read its whole flow table
    for i in range(runs):
        for v in VARIANTS:
            if v.name in errors:
                continue
            n = count * v.burst
            tick(f"new flows: run {i + 1}/{runs}, {n} SYNs at {v.offered // 1000}k/s → {v.name}")
            before = live.status()
            rate, fact = one_run(live, gen, n, pid, offered=v.offered, dst=v.dst(live), udp=v.udp)
            after = live.status()
            for key in ("xdp_scheduled", "first_path_packets"):
                fact[key] = after.get(key, 0) - before.get(key, 0)
            samples[v.name].append(rate)
            facts[v.name].append(fact)
            if v.xdp is not None:
                address, port = v.dst(live)
                decided[v.name] = first_packets_decided(after, "UDP" if v.udp else "TCP", f"{address}:{port}")
    rows = []
    for v in VARIANTS:
        if v.name in errors or not samples[v.name]:
            rows.append(not_measured("newflows", v.name, UNIT, errors.get(v.name, "no run finished")))
            continue
        n = count * v.burst
        rows.append(measured("newflows", v.name, UNIT, samples[v.name],
                             check=_check(v, facts[v.name], runs, n, live, decided.get(v.name, "?"))))
    return rows


def _check(v: Variant, facts: list[dict[str, float]], runs: int, count: int, live: Any,
           decided: str = "?") -> str:
    """The row's "how we know": what was sent and answered, and where each first packet was
    handled (for an in-XDP row first: how many went through NFQUEUE, which must be none)."""
    total = {k: sum(f.get(k, 0) for f in facts) for k in ("sent", "answered", "scheduled", "dropped",
                                                          "xdp_scheduled", "first_path_packets")}
    took = statistics.median(f["elapsed"] for f in facts)
    through = total["first_path_packets"]
    if v.udp:
        head = (f"reals' Udp NoPorts; {runs} × {count} datagrams of new flows at {v.offered / 1000:.0f}k/s: "
                f"{total['sent']:.0f} sent, {total['answered']:.0f} arrived, median {took:.2f} s a burst")
    else:
        head = (f"client's resets of the reals' SYN-ACKs; {runs} × {count} SYNs at {v.offered / 1000:.0f}k/s: "
                f"{total['sent']:.0f} sent, {total['answered']:.0f} answered, median {took:.2f} s a burst")
    if v.daemon:
        flows = live.status().get("flows", 0)
        if v.name == PLUGIN_NAME:
            head += f"; VIP:{PLUGIN_PORT}, scheduler pyrr (examples/plugin_scheduler/pyrr.py, a plugin)"
        return (f"{head}; {total['scheduled']:.0f} scheduled by the daemon, {total['dropped']:.0f} dropped by "
                f"NFQUEUE; {flows} flows in the table after; {cpu_split(facts)}")
    if v.xdp is not None:
        s = v.xdp
        verdict = "XDP decided every one" if through == 0 else "NOT decided in XDP"
        where = (f"{through:.0f} packets through NFQUEUE ({verdict}); first packets decided: {decided}; "
                 f"{total['xdp_scheduled']:.0f} flows created by XDP; {'-u' if s.udp else '-t'} VIP:{s.port} "
                 f"-s {' '.join((s.sched, *s.options))} → reals:{s.real_port}")
    else:
        where = {
            IPTABLES_NAME: f"VIP:{IPTABLES_PORT}, kube-proxy's statistic chain, conntrack DNAT to reals:{OTHER_PORT}; "
                           f"XDP passes them ({through:.0f} through NFQUEUE)",
            IPTABLES_UDP_NAME: f"VIP:{UDP_IPTABLES_PORT}, kube-proxy's statistic chain for UDP, conntrack DNAT to "
                               f"reals:{UDP_OTHER_PORT}; XDP passes them ({through:.0f} through NFQUEUE)",
            ROUTED_NAME: f"to r1:{OTHER_PORT}, routed by the balancer's kernel without NAT (what the rig costs "
                         f"with no balancing)",
        }[v.name]
    return f"{head}; {where}; {machine_share(facts)}"


def machine_share(facts: list[dict[str, float]]) -> str:
    total = sum(f.get("cpu_total", 0.0) for f in facts)
    busy = sum(f.get("busy", 0.0) for f in facts) / total if total else 0.0
    return f"machine {busy:.0%} busy ({os.cpu_count()} CPUs) during the bursts"


def cpu_split(facts: list[dict[str, float]]) -> str:
    """Where a new flow's CPU time went, over all bursts: the daemon's user and system time per
    flow, and how busy the machine's CPUs were while the bursts ran."""
    answered = sum(f["answered"] for f in facts) or 1
    user = sum(f.get("user", 0.0) for f in facts) / answered * 1e6
    system = sum(f.get("system", 0.0) for f in facts) / answered * 1e6
    return f"daemon CPU per flow {user:.0f} µs user + {system:.0f} µs system; {machine_share(facts)}"


def profile_daemon(live: Any, registry: Registry, count: int, tick: Callable[[str], None]
                   ) -> dict[str, Any] | None:
    """py-spy on the daemon during one more SYN burst (not a measured one: sampling costs the
    daemon a little). None when py-spy is not installed (`pip install .[test]`)."""
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from lb.bench.profile import hot_spots

    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return None
    try:
        gen = registry.get("syn")
    except RuntimeError:
        return None
    tick("new flows: one more SYN burst with py-spy on the daemon")
    with tempfile.TemporaryDirectory(prefix="lbx-bench-spy-") as tmp:
        out = Path(tmp) / "daemon.raw"
        proc = subprocess.Popen([str(spy), "record", "-p", str(live.pid), "-d", "60",
                                 "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            rate, _ = one_run(live, gen, count)
        finally:
            proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled so far and exits
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raw = out.read_text() if out.exists() else ""
    samples, spots = hot_spots(raw, top=15)
    if not samples:
        return None
    return {"samples": samples, "rate": rate, "command": "py-spy record -r 250 -f raw --nonblocking",
            "hot_spots": [{"function": s.function, "self": round(s.self_share, 4),
                           "total": round(s.total_share, 4)} for s in spots]}
