"""Case 3's in-process row: what the first-packet path itself costs per new flow, without NFQUEUE
and without the rig.

The daemon's own `FirstPacketPath`, with a copy of lbxdp's maps loaded for it alone
(lb.datapath.loader.load, unpinned, attached nowhere) in the balancer's namespace and one
masquerading rr service over the reals, is handed SYNs of new flows as NFQUEUE hands them (IPv4
payload, ingress interface, sender's MAC). Everything a new flow costs the daemon runs for real:
the flow lookup and the two map writes are bpf(2) calls, next hops come from the namespace's routes
and neighbours, the rewrite model makes the frame. Only the transmission is left out: frames go to
a sink, because a send on a veth runs the receiving namespace's work inline and that is the rig's
cost, not the daemon's. The figure is the CPU time of the thread (user + system) per flow.

Read against the live daemon's CPU per flow in the "lbxdp NFQUEUE" row, it splits a new flow's cost
into the path's own work and what NFQUEUE's delivery, verdict and the send add.
"""

from __future__ import annotations

import resource
import socket
import statistics
import struct
from collections.abc import Callable
from typing import Any

from lb.bench.results import Row, measured, not_measured

NAME, UNIT = "lbxdp first-packet path, in process", "µs/flow"
PORT = 80
SPORT_OFFSET = 20  # the TCP source port in an options-free IPv4 packet
SADDR_OFFSET = 12


class _QueuedPacket:
    """The slice of netfilterqueue's Packet the first-packet path uses."""

    __slots__ = ("hw", "indev", "payload", "verdict")

    def __init__(self, payload: bytes, indev: int, hw: bytes) -> None:
        self.payload, self.indev, self.hw, self.verdict = payload, indev, hw, ""

    def get_payload(self) -> bytes:
        return self.payload

    def get_hw(self) -> bytes:
        return self.hw

    def drop(self) -> None:
        self.verdict = "drop"

    def accept(self) -> None:
        self.verdict = "accept"

    def set_payload(self, payload: bytes) -> None:
        self.payload = payload


class _Sink:
    """Takes the frames FirstPacketPath would transmit, and counts them."""

    def __init__(self) -> None:
        self.frames = 0

    def send(self, frame: bytes, ifindex: int) -> None:
        self.frames += 1

    def forget_names(self) -> None:
        pass

    def close(self) -> None:
        pass


def syns(vip: str, count: int, start: int) -> list[bytes]:
    """`count` SYNs to vip:PORT of flows never seen before (10.250.x.y, source ports from 1024).
    Checksums are left as the template's: neither XDP nor its model checks them on the way in."""
    from scapy.layers.inet import IP, TCP

    template = bytearray(bytes(IP(src="10.250.0.1", dst=vip, ttl=64) / TCP(sport=1024, dport=PORT, flags="S")))
    out = []
    for n in range(start, start + count):
        pkt = bytearray(template)
        struct.pack_into("!H", pkt, SPORT_OFFSET, 1024 + n % 60000)
        pkt[SADDR_OFFSET + 2] = (n // 60000) & 0xFF
        out.append(bytes(pkt))
    return out


def _measure(topo: Any, runs: int, count: int, scheduler: str = "rr") -> tuple[list[float], dict[str, float]]:
    """In the balancer's namespace (the caller's thread is there): load, configure, feed, time.
    `scheduler`: the service's, a built-in or the bench's plugin round robin (lb.bench.live)."""
    from lb.balancer.engine import Balancer
    from lb.bench.live import PLUGIN_SCHED, PLUGIN_SPEC
    from lb.config.ipvsadm import parse_command
    from lb.config.table import ServiceTable
    from lb.daemon.firstpath import FirstPacketPath
    from lb.daemon.flows import FlowBook
    from lb.datapath import loader
    from lb.sched import load_plugin

    if scheduler == PLUGIN_SCHED:
        load_plugin(PLUGIN_SPEC)
    dp = loader.load(loader.Tunables(max_flows=max(65536, 2 * runs * count)), pin=False)
    fp = None
    try:
        table = ServiceTable()
        table.apply(parse_command(["-A", "-t", f"{topo.vip}:{PORT}", "-s", scheduler]))
        for real in topo.reals:
            table.apply(parse_command(["-a", "-t", f"{topo.vip}:{PORT}", "-r", f"{real.ip}:{PORT}", "-m"]))
        balancer = Balancer()
        balancer.sync(table.services())

        def real_of(real_id: int) -> Any:
            found = balancer.real_by_id(real_id)
            return found[1].real if found else None

        tx = set()
        for name in ("eth0", "eth1"):
            ifindex = socket.if_nametoindex(name)
            dp.maps.add_tx_port(ifindex)
            tx.add(ifindex)
        fp = FirstPacketPath(balancer, dp.maps, FlowBook(dp.maps, dp.tunables.max_flows, real_of), tx)
        fp.sender.close()
        sink = _Sink()
        fp.sender = sink  # type: ignore[assignment]
        ingress = socket.if_nametoindex("eth0")
        hw = bytes.fromhex(topo.client.iface.mac.replace(":", "")) + b"\x00\x00"
        for pkt in syns(topo.vip, 200, 0):  # warm-up: caches of next hops and interface facts
            fp.on_packet(_QueuedPacket(pkt, ingress, hw))
        samples, user, system = [], 0.0, 0.0
        for i in range(runs):
            batch = [_QueuedPacket(p, ingress, hw) for p in syns(topo.vip, count, 200 + i * count)]
            before = resource.getrusage(resource.RUSAGE_THREAD)
            for queued in batch:
                fp.on_packet(queued)
            after = resource.getrusage(resource.RUSAGE_THREAD)
            u, s = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
            samples.append((u + s) / count * 1e6)
            user, system = user + u, system + s
        flows = runs * count
        facts = {"scheduled": fp.counters.counts.get("scheduled", 0) - 200, "frames": sink.frames - 200,
                 "user": user / flows * 1e6, "system": system / flows * 1e6}
        return samples, facts
    finally:
        if fp is not None:
            fp.resolver.close()
        dp.close()


def run(live: Any | None, runs: int, count: int, tick: Callable[[str], None], why_not: str = "") -> Row:
    if live is None:
        return not_measured("newflows", NAME, UNIT, why_not or "the live daemon's topology did not start")
    from lb.datapath.testbed import in_netns_call

    tick(f"new flows: the first-packet path in process, {runs} × {count} SYNs")
    try:
        samples, facts = in_netns_call(live.topo.lb.netns, lambda: _measure(live.topo, runs, count), timeout=300)
    except Exception as exc:  # noqa: BLE001 (the row says why)
        return not_measured("newflows", NAME, UNIT, (str(exc).splitlines() or [type(exc).__name__])[0][:100])
    check = (f"FirstPacketPath.on_packet on {runs} × {count} SYNs of new flows, with its own copy of the maps "
             f"(bpf(2) lookups and writes), routes and neighbours of the balancer's namespace, the rewrite model; "
             f"{facts['scheduled']:.0f} scheduled, {facts['frames']:.0f} frames made and not sent; thread CPU per "
             f"flow {facts['user']:.0f} µs user + {facts['system']:.0f} µs system; median "
             f"{statistics.median(samples):.0f} µs")
    return measured("newflows", NAME, UNIT, samples, check=check)


def main(argv: list[str] | None = None) -> int:
    """`python -m lb.bench.firstpath_cost [--sched NAME] [--runs N] [--count N]`: the in-process
    row alone, on a topology of its own (no daemon, no generator): each run's µs per flow and the
    median. For comparing the path's cost before and after a change; quiet machines only."""
    import argparse

    from lb.bench.live import PLUGIN_SCHED
    from lb.datapath.testbed import in_netns_call, two_arm

    p = argparse.ArgumentParser(prog="python -m lb.bench.firstpath_cost", description=main.__doc__)
    p.add_argument("--sched", default=PLUGIN_SCHED, help=f"the service's scheduler (default {PLUGIN_SCHED}, "
                                                         "the bench's plugin round robin)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--count", type=int, default=2000, help="SYNs a run")
    args = p.parse_args(argv)
    with two_arm(reals=3, xdp_peers="pass") as topo:
        samples, facts = in_netns_call(topo.lb.netns, lambda: _measure(topo, args.runs, args.count, args.sched),
                                       timeout=600)
    print(f"{NAME} ({args.sched}): runs {' '.join(f'{s:.1f}' for s in samples)} {UNIT}; median "
          f"{statistics.median(samples):.1f} {UNIT} (user {facts['user']:.1f} + system {facts['system']:.1f}); "
          f"{facts['scheduled']:.0f} scheduled, {facts['frames']:.0f} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
