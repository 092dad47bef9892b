"""Case 3, new flows per second through the NFQUEUE first-packet path of the live daemon.

Every frame bpf/bench_syn.c sends is the SYN of a flow never seen before (source ports 1024…65023
on each of the client's 8 addresses, so 512000 distinct flows before any repeats), sent from the
client's namespace at a paced rate with BPF_PROG_RUN in live-frames mode. XDP misses, the
`LBXDP` mangle rule queues the SYN, the daemon schedules it, installs the flow and forwards it;
nginx on the real answers SYN-ACK (through XDP's reverse entry) and the client's kernel, which
has no such socket, resets it. What counts is the daemon's own `scheduled` event counter, read
over its control socket at the start and at the end of the offered burst (the queue is backlogged
at both reads, so the difference is what the daemon got through in between); the flows in the
table and NFQUEUE's drop counters are the check.

Offered: above the target (issue 7: ≥ 25k new flows/s), in 10 ms slices, so a daemon that keeps
up shows the offered rate and one that does not shows its own ceiling.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from typing import Any

from lb.bench.programs import Registry
from lb.bench.results import Row, measured, not_measured

NAME, UNIT = "lbxdp NFQUEUE", "flows/s"
OFFERED = 40_000  # SYNs per second offered
SLICE = 0.01  # seconds per BPF_PROG_RUN call
SPORT_BASE = 1024  # bench_syn.c adds 0…SYN_PORTS-1


def _syn(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pkt = Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=64) / TCP(
        sport=sport, dport=dport, flags="S", seq=1_000_000, window=64240)
    frame = bytes(pkt)
    return frame + b"\x00" * (60 - len(frame))  # bench_syn.c's SYN_FRAME


def _offer(live: Any, gen: Any, rate: int, seconds: float) -> int:
    """Send about rate × seconds SYNs, paced in slices; returns how many were sent."""
    from lb.bench.progrun import test_run
    from lb.datapath.testbed import in_netns_call

    topo = live.topo
    client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
    first = topo.client_aliases[0] if topo.client_aliases else topo.client.ip
    packet = _syn(client.mac, lb0.mac, first, topo.vip, SPORT_BASE, live.port)
    template = gen.bpf["syn_template"]
    leaf = template.Leaf()
    ctypes.memmove(ctypes.addressof(leaf), packet, len(packet))
    template[template.Key(0)] = leaf
    per_slice = max(1, int(rate * SLICE))

    def send() -> int:
        sent, start = 0, time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) / SLICE) + 1  # slices that should have gone by now
            if sent < due * per_slice:
                test_run(gen.fd, packet, per_slice, ingress_ifindex=client.ifindex, live=True)
                sent += per_slice
            else:
                time.sleep(SLICE / 4)
        return sent

    return in_netns_call(topo.client.netns, send, timeout=seconds + 30)


def _queue_drops(live: Any) -> int:
    """queue_dropped + user_dropped of /proc/net/netfilter/nfnetlink_queue in the lb namespace."""
    done = live.topo.run("lb", ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
    total = 0
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 7:
            total += int(fields[5]) + int(fields[6])
    return total


def one_run(live: Any, gen: Any, seconds: float) -> tuple[float, dict[str, float]]:
    """(scheduled flows/s over the burst, facts for the check column)."""
    drops0 = _queue_drops(live)
    before, t0 = live.scheduled(), time.monotonic()
    sent = _offer(live, gen, OFFERED, seconds)
    after, t1 = live.scheduled(), time.monotonic()
    rate = (after - before) / (t1 - t0)
    settled = after
    deadline = time.monotonic() + 5  # let the backlog drain before the next run (bounded)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = live.scheduled()
        if now == settled:
            break
        settled = now
    return rate, {"sent": sent, "scheduled": settled - before, "dropped": _queue_drops(live) - drops0,
                  "elapsed": t1 - t0}


def run(live: Any | None, registry: Registry, runs: int, seconds: float, tick: Callable[[str], None],
        why_not: str = "") -> list[Row]:
    if live is None:
        return [not_measured("newflows", NAME, UNIT, why_not or "the live daemon did not start")]
    try:
        gen = registry.get("syn")
    except RuntimeError as exc:
        return [not_measured("newflows", NAME, UNIT, str(exc))]
    samples: list[float] = []
    facts: list[dict[str, float]] = []
    for i in range(runs):
        tick(f"new flows: SYN burst {i + 1}/{runs} at {OFFERED // 1000}k/s into the live daemon")
        rate, fact = one_run(live, gen, seconds)
        samples.append(rate)
        facts.append(fact)
    flows = live.status().get("flows", 0)
    sent = sum(f["sent"] for f in facts)
    scheduled = sum(f["scheduled"] for f in facts)
    dropped = sum(f["dropped"] for f in facts)
    offered = statistics.median(f["sent"] / f["elapsed"] for f in facts)
    check = (f"daemon's `scheduled` counter; offered {offered / 1000:.1f}k SYN/s, {sent} SYNs sent, "
             f"{scheduled} scheduled, {dropped} dropped by NFQUEUE (queue full), {flows} flows in the table")
    return [measured("newflows", NAME, UNIT, samples, check=check)]


def profile_daemon(live: Any, registry: Registry, seconds: float, tick: Callable[[str], None]
                   ) -> dict[str, Any] | None:
    """py-spy on the daemon during one more SYN burst (not a measured one: sampling costs the
    daemon a little). None when py-spy is not installed (`pip install .[test]`)."""
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
        proc = subprocess.Popen([str(spy), "record", "-p", str(live.pid), "-d", f"{seconds + 1:.0f}",
                                 "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            rate, _ = one_run(live, gen, seconds)
            proc.wait(timeout=seconds + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raw = out.read_text() if out.exists() else ""
    samples, spots = hot_spots(raw, top=15)
    if not samples:
        return None
    return {"samples": samples, "rate": rate, "command": "py-spy record -r 250 -f raw --nonblocking",
            "hot_spots": [{"function": s.function, "self": round(s.self_share, 4),
                           "total": round(s.total_share, 4)} for s in spots]}
