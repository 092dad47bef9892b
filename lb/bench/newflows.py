"""Case 3, new flows per second through the NFQUEUE first-packet path of the live daemon, and
through Maglev scheduled inside XDP.

Every frame bpf/bench_syn.c sends is the SYN of a flow never seen before (source ports 1024…65023
on each of the client's 8 addresses, so 512000 distinct flows before any repeats), sent from the
client's namespace at a paced rate with BPF_PROG_RUN in live-frames mode. XDP misses, the
`LBXDP` mangle rule queues the SYN, the daemon schedules it, installs the flow and forwards it;
nginx on the real answers SYN-ACK (through XDP's reverse entry) and the client's kernel, which
has no such socket, resets it. What counts is those resets (the client namespace's Tcp OutRsts,
read from the bench process: flows scheduled, forwarded and answered), polled every 20 ms until
all have come or none came for 2 s; the daemon's own `scheduled` counter, the flows in the table
and NFQUEUE's drop counters are the check. (Polling the daemon instead would load it: a status
request reads the whole flow table.)

Offered: a burst of a fixed number of SYNs (fewer than the queue holds, so none is dropped for
want of room) at a rate above the target (issue 7: ≥ 25k new flows/s), in 10 ms slices; the
figure is the answered flows divided by the time from the first SYN to the last answer.

"lbxdp NFQUEUE (plugin rr)": the same bursts against a masquerading service on VIP:82 whose
scheduler is a plugin round robin written in Python (examples/plugin_scheduler/pyrr.py, loaded
through LBXDP_SCHEDULERS, lb.bench.live): XDP cannot run a plugin, so every first packet is
decided by the daemon, whatever the datapath decides for built-in schedulers.

Next row, "lbxdp in-kernel mh": the same bursts against a masquerading mh service (`-b mh-port`,
so the generator's source ports spread over the ring) on VIP:81 → reals:80, which XDP schedules
itself (lb.daemon.kernelhash); no SYN goes to the daemon, so the burst is larger and offered at
MH_OFFERED. The check is the daemon's count of flows XDP scheduled (`xdp_scheduled`) and its
first-packet path's packets, which must stay 0.

Baselines, the same bursts at MH_OFFERED: "iptables DNAT" (case 4's kube-proxy chain, VIP:8081 →
reals:8080) and "routed to one real, no NAT" (r1:8080): what the rig itself allows when no
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
    MH_PORT,
    OTHER_PORT,
    PLUGIN_PORT,
    ensure_iptables,
    ensure_mh_service,
    ensure_plugin_service,
)
from lb.bench.programs import Registry
from lb.bench.results import Row, measured, not_measured
from lb.bench.syn import SPORT_BASE, await_answers, paced_send, syn_frame

NAME, UNIT = "lbxdp NFQUEUE", "flows/s"
PLUGIN_NAME = "lbxdp NFQUEUE (plugin rr)"
MH_NAME = "lbxdp in-kernel mh"
IPTABLES_NAME = "iptables DNAT"
ROUTED_NAME = "routed to one real, no NAT"
MH_OFFERED = 200_000  # SYNs per second offered to the in-kernel service (no queue to overflow)
OFFERED = 40_000  # SYNs per second offered
# A burst is over once no answer came for this long. Less than TCP's initial RTO (1 s): a real
# resends its SYN-ACK after 1 s when the client's reset was lost (the client → balancer veth ring
# overflows at these rates), and that second reset would be counted again and stretch the burst's
# time by a second (runs of 5k flows/s among runs of 16k).
QUIET = 0.6


def _offer(live: Any, gen: Any, rate: int, count: int, dst: tuple[str, int] | None = None) -> int:
    """Send `count` SYNs at about `rate`/s from the client's namespace to `dst` (address, port;
    default the VIP and `live.port`); returns how many were sent."""
    from lb.datapath.testbed import in_netns_call

    topo = live.topo
    client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
    first = topo.client_aliases[0] if topo.client_aliases else topo.client.ip
    address, port = dst or (topo.vip, live.port)
    packet = syn_frame(client.mac, lb0.mac, first, address, SPORT_BASE, port, seq=1_000_000)
    template = gen.bpf["syn_template"]
    leaf = template.Leaf()
    ctypes.memmove(ctypes.addressof(leaf), packet, len(packet))
    template[template.Key(0)] = leaf
    return in_netns_call(topo.client.netns, lambda: paced_send(gen.fd, packet, client.ifindex, count, rate),
                         timeout=60)


def _client_resets(live: Any) -> int:
    """Tcp OutRsts of the client's namespace: its kernel resets every SYN-ACK the reals send for
    the generator's SYNs (it has no such socket), so this counts flows that went all the way
    through the first-packet path and were answered. Read from this process, which costs the
    daemon nothing (a status request makes it read the whole flow table)."""
    from lb.datapath.testbed import in_netns_call

    def read() -> int:
        snmp = Path("/proc/thread-self/net/snmp").read_text().splitlines()
        lines = [ln.split() for ln in snmp if ln.startswith("Tcp:")]
        return int(lines[1][lines[0].index("OutRsts")])

    return in_netns_call(live.topo.client.netns, read)


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
            dst: tuple[str, int] | None = None) -> tuple[float, dict[str, float]]:
    """Offer `count` SYNs at OFFERED/s and time how long until the client has reset the answers to
    all of them (or they stop coming: what is missing was dropped). Returns (flows/s, facts); with
    the daemon's `pid`, the facts include its CPU time (user = Python and libraries, system = its
    syscalls and the packet delivery they run inline) and the whole machine's."""
    drops0, scheduled0 = _queue_drops(live), live.scheduled()
    cpu0 = cpu_seconds(pid) if pid else (0.0, 0.0)
    busy0 = machine_busy()
    before, t0 = _client_resets(live), time.monotonic()
    # CPU readings are taken with each new answer count, so they end with the last answer (as the
    # rate's time does), not after the quiet wait that follows a burst with losses.
    last_n: int | None = None
    cpu1, busy1 = cpu0, busy0

    def answers() -> int:
        nonlocal last_n, cpu1, busy1
        n = _client_resets(live)
        if n != last_n:
            last_n, cpu1, busy1 = n, cpu_seconds(pid) if pid else (0.0, 0.0), machine_busy()
        return n

    sent = _offer(live, gen, offered or OFFERED, count, dst)
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


VARIANTS = (
    Variant(NAME, OFFERED, 1, lambda live: (live.topo.vip, live.port), daemon=True),
    Variant(PLUGIN_NAME, OFFERED, 1, lambda live: (live.topo.vip, PLUGIN_PORT), ensure_plugin_service,
            daemon=True),
    Variant(MH_NAME, MH_OFFERED, 2, lambda live: (live.topo.vip, MH_PORT), ensure_mh_service),
    Variant(IPTABLES_NAME, MH_OFFERED, 2, lambda live: (live.topo.vip, IPTABLES_PORT), ensure_iptables),
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
    pid = live.pid  # once: a status request makes the daemon read its whole flow table
    for i in range(runs):
        for v in VARIANTS:
            if v.name in errors:
                continue
            n = count * v.burst
            tick(f"new flows: run {i + 1}/{runs}, {n} SYNs at {v.offered // 1000}k/s → {v.name}")
            before = live.status()
            rate, fact = one_run(live, gen, n, pid, offered=v.offered, dst=v.dst(live))
            after = live.status()
            for key in ("xdp_scheduled", "first_path_packets"):
                fact[key] = after.get(key, 0) - before.get(key, 0)
            samples[v.name].append(rate)
            facts[v.name].append(fact)
    rows = []
    for v in VARIANTS:
        if v.name in errors or not samples[v.name]:
            rows.append(not_measured("newflows", v.name, UNIT, errors.get(v.name, "no run finished")))
            continue
        n = count * v.burst
        rows.append(measured("newflows", v.name, UNIT, samples[v.name],
                             check=_check(v, facts[v.name], runs, n, live)))
    return rows


def _check(v: Variant, facts: list[dict[str, float]], runs: int, count: int, live: Any) -> str:
    """The row's "how we know": what was sent and answered, and where each SYN was handled."""
    total = {k: sum(f.get(k, 0) for f in facts) for k in ("sent", "answered", "scheduled", "dropped",
                                                          "xdp_scheduled", "first_path_packets")}
    took = statistics.median(f["elapsed"] for f in facts)
    head = (f"client's resets of the reals' SYN-ACKs; {runs} × {count} SYNs at {v.offered / 1000:.0f}k/s: "
            f"{total['sent']:.0f} sent, {total['answered']:.0f} answered, median {took:.2f} s a burst")
    if v.daemon:
        flows = live.status().get("flows", 0)
        if v.name == PLUGIN_NAME:
            head += f"; VIP:{PLUGIN_PORT}, scheduler pyrr (examples/plugin_scheduler/pyrr.py, a plugin)"
        return (f"{head}; {total['scheduled']:.0f} scheduled by the daemon, {total['dropped']:.0f} dropped by "
                f"NFQUEUE; {flows} flows in the table after; {cpu_split(facts)}")
    where = {
        MH_NAME: f"{total['xdp_scheduled']:.0f} scheduled by XDP (mh service VIP:{MH_PORT}), "
                 f"{total['first_path_packets']:.0f} packets through NFQUEUE",
        IPTABLES_NAME: f"VIP:{IPTABLES_PORT}, kube-proxy's statistic chain, conntrack DNAT to reals:{OTHER_PORT}; "
                       f"XDP passes them ({total['first_path_packets']:.0f} through NFQUEUE)",
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
