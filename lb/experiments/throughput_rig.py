"""The live rig of the throughput experiment: lbxdp in a two-arm namespace topology, driven by the
bench's XDP traffic generator and counted at the reals.

A thin adapter over pieces that exist elsewhere, so the experiment measures what the bench and the
daemon run, not a copy of them:

- the topology is `lb.datapath.testbed.two_arm` (client, lb, bridge, 3 reals; unique names, 10/8,
  torn down on exit), with XDP_PASS on the balancer's veth peers so native redirects are delivered
  (docs/testbed.md);
- lbxdp is `lb.datapath.loader.load(Tunables(max_flows=T), pin=False)`, configured through
  `DatapathMaps.write` (one masquerading TCP service, 3 reals, the tx_ports) and attached natively
  on the lb's eth0; flows are pre-installed in its `flows` LRU map in one batch update (1e5 flows
  one `bpf(2)` call at a time would take longer than the measurement), as Katran benches its hit
  path;
- traffic is bpf/bench_syn.c, the bench's SYN generator, compiled with `-DSYN_PORTS=P
  -DSYN_ADDRS=A` so that it cycles through exactly P×A 5-tuples, run with BPF_PROG_RUN in
  live-frames mode (lb.datapath.progrun) on the client's veth; every frame really crosses the
  balancer;
- packets are counted where they arrive, by bpf/bench_verdict.c built for XDP_DROP
  (lb.bench.programs.Baseline("drop")) on every real's eth0, and classified by lbxdp's own
  per-reason counters (hit = REDIRECT_FORWARD, miss = PASS_FLOW_MISS);
- the first-packet path is the real daemon, started by `lb.bench.live.live_balancer` (`lbxdp attach
  … --max-flows N`, nginx reals, an rr masquerading service), offered SYNs of flows never seen
  before from the client's 8 addresses.

The generator's frames are TCP SYNs of installed flows: lbxdp forwards a SYN that hits its flow
entry like any other segment, so the hit path measured is the one every packet of an established
flow takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from lb.bench.syn import SPORT_BASE, Generator, await_answers, gen_shape, paced_send, syn_frame

VPORT = 80
TCP = 6
CHUNK = 16384  # frames per BPF_PROG_RUN call (about 0.1 s here): the run stops at the first chunk past its time
BATCH = 65536  # flows per batch update


@dataclass(frozen=True)
class Sample:
    """One bounded generator run against one loaded table."""

    offered_pps: float  # frames the generator sent per second
    forwarded_pps: float  # frames that arrived at the reals per second
    hits: int  # lbxdp REDIRECT_FORWARD during the run
    misses: int  # lbxdp PASS_FLOW_MISS during the run
    other: int  # any other reason (should be 0)
    sent: int
    arrived: int
    seconds: float

    @property
    def hit_rate(self) -> float:
        seen = self.hits + self.misses + self.other
        return self.hits / seen if seen else 0.0


@dataclass(frozen=True)
class FirstPacketSample:
    """One burst of new flows into the live daemon."""

    max_flows: int
    sent: int
    offered_rate: float
    answered: int  # flows scheduled, forwarded and answered by a real (client's TCP OutRsts)
    scheduled: int  # daemon: first_path_events["scheduled"]
    refused_table_full: int  # daemon: first_path_events["refused_table_full"]
    queue_drops: int  # NFQUEUE's queue_dropped + user_dropped
    flows_in_table: int
    flow_limit: int  # the daemon's own limit (below max_flows: headroom for the LRU's per-CPU lists)
    pruned_half_open: int  # daemon: half-open flows it pruned to make room
    seconds: float  # first SYN to last answer
    decided_seconds: float  # first SYN to the status read that showed every SYN decided (±0.5 s)

    @property
    def rate(self) -> float:
        """New flows per second through the first-packet path (answered / time)."""
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def refusals_per_s(self) -> float:
        """Refusals decided per second once the table was full (after the last answer); 0 if none."""
        spent = self.decided_seconds - self.seconds
        return self.refused_table_full / spent if self.refused_table_full and spent > 0 else 0.0


class ForwardingRig:
    """One two-arm topology with counting sinks on the reals; lbxdp objects by table size."""

    def __init__(self, topo: Any) -> None:
        from lb.bench.programs import Baseline

        self.topo = topo
        self.sink = Baseline("drop")
        self.loaded: dict[int, Any] = {}  # max_flows → lb.datapath.loader.Datapath
        self.generators: dict[tuple[int, int], Generator] = {}
        self.attached: int | None = None
        for real in topo.reals:
            self._attach(real.netns, "eth0", self.sink.fd)
            # the reals never send, so an unlearned bridge would flood every frame to every real
            topo.run("sw", ["bridge", "fdb", "replace", real.iface.mac, "dev", real.iface.peer_ifname,
                            "master", "static"])

    def _attach(self, netns: str, ifname: str, fd: int) -> None:
        from lb.datapath.testbed.links import NsLinks

        links = NsLinks()
        try:
            mode = links.attach_xdp(netns, ifname, fd, native=True)
        finally:
            links.close()
        if mode != "native":
            raise RuntimeError(f"XDP on {netns}/{ifname} attached {mode}, not native")

    def load(self, max_flows: int) -> None:
        """Compile and configure lbxdp with a flow table of `max_flows` (bcc: about 10 s)."""
        from lb.datapath.loader import Tunables, load
        from lb.datapath.testbed import in_netns_call
        from lb.model import Forwarding, Protocol, ServiceKey
        from lb.tables import RealEntry, ServiceEntry, Tables

        if max_flows in self.loaded:
            return
        dp = load(Tunables(max_flows=max_flows), pin=False)
        topo = self.topo
        tables = Tables(
            services={ServiceKey(Protocol.TCP, IPv4Address(topo.vip), VPORT): ServiceEntry(0)},
            reals={i: RealEntry(IPv4Address(r.ip), VPORT, Forwarding.MASQ) for i, r in enumerate(topo.reals)},
            tx_ports={topo.lb.iface_named("eth0").ifindex, topo.lb.iface_named("eth1").ifindex},
        )
        # a devmap entry names the device of the namespace it is written from
        in_netns_call(topo.lb.netns, lambda: dp.maps.write(tables))
        self.loaded[max_flows] = dp

    def generator(self, flows: int) -> Generator:
        shape = gen_shape(flows)
        if shape not in self.generators:
            self.generators[shape] = Generator(*shape)
        return self.generators[shape]

    def install(self, max_flows: int, flows: int) -> None:
        """Empty the table, then install the generator's `flows` 5-tuples, real = flow index mod 3."""
        from lb.bench.programs import be16, be32

        dp = self.loaded[max_flows]
        table = dp.bpf[b"flows"]
        try:
            table.items_delete_batch()
        except Exception:  # noqa: BLE001 (an empty map answers ENOENT in some bcc versions)
            pass
        ports, _ = gen_shape(flows)
        base = int(IPv4Address(self.topo.client.ip))
        vip, vport = be32(self.topo.vip), be16(VPORT)
        n = len(self.topo.reals)
        # bcc takes at most max_entries pairs per batch; an over-full table evicts as it goes
        step = min(max_flows, BATCH)
        for first in range(0, flows, step):
            count = min(step, flows - first)
            keys = (table.Key * count)()
            leaves = (table.Leaf * count)()
            for j in range(count):
                i = first + j
                a, p = divmod(i, ports)
                keys[j] = table.Key(be32(str(IPv4Address(base + a))), vip, be16(SPORT_BASE + p), vport, TCP)
                leaves[j].real_id, leaves[j].service_id = i % n, 0
            table.items_update_batch(keys, leaves)

    def attach(self, max_flows: int) -> None:
        if self.attached != max_flows:
            self._attach(self.topo.lb.netns, "eth0", self.loaded[max_flows].prog_fd)
            self.attached = max_flows

    def measure(self, max_flows: int, flows: int, seconds: float) -> Sample:
        """Send the generator's flows for `seconds` (bounded) through lbxdp with table `max_flows`."""
        from lb.bench.programs import XDP_DROP
        from lb.datapath.progrun import BPF_F_TEST_XDP_LIVE_FRAMES, run as prog_run
        from lb.datapath.testbed import in_netns_call
        from lb.rewrite.verdicts import Reason

        self.attach(max_flows)
        dp, gen, topo = self.loaded[max_flows], self.generator(flows), self.topo
        client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
        frame = syn_frame(client.mac, lb0.mac, topo.client.ip, topo.vip, SPORT_BASE, VPORT)
        gen.arm(frame)

        def send() -> tuple[int, float]:
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < seconds:
                prog_run(gen.prog.fd, frame, ingress_ifindex=client.ifindex, repeat=CHUNK,
                         flags=BPF_F_TEST_XDP_LIVE_FRAMES)
                sent += CHUNK
            return sent, time.monotonic() - start

        reasons0, arrived0 = dp.maps.reason_counts(), self.sink.verdicts(XDP_DROP)
        sent, elapsed = in_netns_call(topo.client.netns, send, timeout=seconds + 30)
        time.sleep(0.05)  # the last frames drain through the receivers' softirqs
        reasons1, arrived1 = dp.maps.reason_counts(), self.sink.verdicts(XDP_DROP)
        delta = {r: reasons1.get(r, 0) - reasons0.get(r, 0) for r in Reason}
        hits, misses = delta[Reason.REDIRECT_FORWARD], delta[Reason.PASS_FLOW_MISS]
        other = sum(delta.values()) - hits - misses
        arrived = arrived1 - arrived0
        return Sample(sent / elapsed, arrived / elapsed, hits, misses, other, sent, arrived, elapsed)

    def close(self) -> None:
        for dp in self.loaded.values():
            dp.close()
        for gen in self.generators.values():
            gen.close()
        self.sink.close()


@contextmanager
def forwarding_rig() -> Iterator[ForwardingRig]:
    """Build the topology and the rig; everything is removed on exit, whatever happened."""
    from lb.datapath.testbed import two_arm

    with two_arm(reals=3, xdp_peers="pass") as topo:
        rig = ForwardingRig(topo)
        try:
            yield rig
        finally:
            rig.close()


# --- the first-packet path: the live daemon ---------------------------------------------------------


def _client_resets(topo: Any) -> int:
    """Tcp OutRsts of the client's namespace: the client resets every SYN-ACK a real sends for a
    generated SYN (it has no such socket), so this counts flows that went all the way through."""
    from lb.datapath.testbed import in_netns_call

    def read() -> int:
        with open("/proc/thread-self/net/snmp") as fh:
            lines = [ln.split() for ln in fh if ln.startswith("Tcp:")]
        return int(lines[1][lines[0].index("OutRsts")])

    return in_netns_call(topo.client.netns, read)


def _queue_drops(topo: Any) -> int:
    """NFQUEUE's drops (queue full or undelivered) in the lb namespace."""
    from lb.datapath import queuestats

    done = topo.run("lb", ["cat", str(queuestats.PROC_PATH)], check=False)
    return queuestats.parse(done.stdout).dropped


def first_packet_burst(max_flows: int, count: int, rate: int, overflow: int,
                       tick: Callable[[str], None]) -> FirstPacketSample:
    """`lbxdp attach --max-flows max_flows` in a fresh topology; offer SYNs of new flows at `rate`/s
    (paced in 10 ms slices): `count` of them, or the daemon's flow limit plus `overflow` if that is
    fewer; wait until every answer came or none came for 2 s, then (bounded) until the daemon has
    decided on every SYN.

    The overflow is kept small because a refusal is expensive: with the table full, the daemon
    looks for half-open flows to prune on every new flow, reading the whole flow table each time
    (lb/daemon/flows.py, FlowBook.full), and the SYNs here are answered and reset, so none is
    half-open and every refusal pays the full read."""
    from lb.bench.live import live_balancer
    from lb.datapath.testbed import in_netns_call

    with live_balancer(tick, max_flows=max_flows) as live:
        topo = live.topo
        gen = Generator(64000, 8)  # bench_syn.c's defaults: the client's 8 aliases × 64000 ports
        try:
            client, lb0 = topo.client.iface, topo.lb.iface_named("eth0")
            frame = syn_frame(client.mac, lb0.mac, topo.client_aliases[0], topo.vip, SPORT_BASE, live.port)
            gen.arm(frame)
            status = live.status()
            status0 = status["first_path_events"]
            count = min(count, int(status.get("flow_limit", count)) + overflow)
            drops0, resets0 = _queue_drops(topo), _client_resets(topo)
            t0 = time.monotonic()
            sent = in_netns_call(topo.client.netns, lambda: paced_send(gen.prog.fd, frame, client.ifindex,
                                                                       count, rate), timeout=60)
            offered_for = time.monotonic() - t0
            deadline = t0 + 60
            # nothing for 2 s: the rest was refused or dropped
            last, t_last = await_answers(lambda: _client_resets(topo), resets0, sent, deadline)
            tick(f"{sent} SYNs sent in {offered_for:.2f} s; {last - resets0} answered after {t_last - t0:.2f} s; "
                 "waiting for the daemon to decide on the rest")
            while True:  # bounded: each status read costs the daemon a read of its flow table
                status = live.status()
                events = status["first_path_events"]
                decided = sum(int(events.get(k, 0)) - int(status0.get(k, 0))
                              for k in ("scheduled", "refused_table_full"))
                if decided + _queue_drops(topo) - drops0 >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            t_decided = time.monotonic()
            return FirstPacketSample(
                max_flows=max_flows, sent=sent, offered_rate=sent / offered_for,
                answered=last - resets0,
                scheduled=int(events.get("scheduled", 0)) - int(status0.get("scheduled", 0)),
                refused_table_full=(int(events.get("refused_table_full", 0))
                                    - int(status0.get("refused_table_full", 0))),
                queue_drops=_queue_drops(topo) - drops0,
                flows_in_table=int(status.get("flows", 0)),
                flow_limit=int(status.get("flow_limit", 0)),
                pruned_half_open=(int(events.get("pruned_half_open", 0))
                                  - int(status0.get("pruned_half_open", 0))),
                seconds=t_last - t0,
                decided_seconds=t_decided - t0,
            )
        finally:
            gen.close()
