"""Affinity: what a flow table smaller than the live flows costs, with and without consistent hashing.

The XDP program keeps flows in an LRU hash (bpf/ `flows`); when more flows are live than it holds,
the least recently seen entries are evicted while their flows still run. The next packet of such a
flow misses and goes up to the scheduler again, as if new. A scheduler that hashes the flow (mh)
sends it back to the same real; one that does not (rr) most likely picks another, which breaks the
connection. Maglev pairs its connection tracking with consistent hashing for exactly this reason
(Eisenbud et al., NSDI 2016, §3.3 and §3.4).

Packets of the `workload` flows are spread over each flow's lifetime and replayed in time order
through an LRU table of C entries (entries leave when their flow's last packet, FIN, passes, as the
daemon's sweep removes closed flows). C is set as a ratio of the peak number of live flows; at
ratio 1 nothing live is ever evicted. Per packet: `evicted` when its flow had an entry that was
evicted, `moved` when the real chosen again differs from the flow's first real. Two scenarios: a
stable set, and one real added halfway (consistent hashing then moves about 1/(N+1) of the
re-scheduled flows).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from lb.experiments import plotting
from lb.experiments.context import RunContext, SchedulerRef, make_reals, resolve_all
from lb.experiments.workload import SimFlow, WorkloadParams, generate
from lb.model import RealKey
from lb.sched.base import Destination

DEFAULT_SCHEDULERS = ("mh", "rr")
MSS = 1448  # bytes of payload per packet (1500-byte MTU, TCP timestamps)
SCENARIOS = ("stable", "real added")


@dataclass(frozen=True)
class AffinityParams:
    reals: int
    workload: WorkloadParams
    max_packets: int  # per flow, to bound the run (elephants are cut short)
    ratios: tuple[float, ...]  # table size / peak live flows


QUICK = AffinityParams(
    reals=8, workload=WorkloadParams(flows=3000, arrival_rate=300.0, duration_mean=2.0), max_packets=40,
    ratios=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
)
FULL = AffinityParams(
    reals=8, workload=WorkloadParams(flows=20_000, arrival_rate=500.0, duration_mean=4.0), max_packets=100,
    ratios=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2),
)


@dataclass(frozen=True)
class Packet:
    time: float
    flow: int
    last: bool  # FIN: the flow's entry leaves the table


@dataclass(frozen=True)
class AffinityResult:
    scheduler: str
    scenario: str
    ratio: float
    table_size: int
    packets: int
    evicted: float  # fraction of packets whose flow's entry had been evicted
    moved: float  # fraction of packets sent to a real other than their flow's first
    broken_flows: float  # fraction of flows with at least one moved packet


def packet_trace(flows: Sequence[SimFlow], max_packets: int, seed: int) -> list[Packet]:
    """Each flow's packets at its start, its end and uniformly in between, merged in time order."""
    rng = random.Random(seed)
    trace = []
    for i, flow in enumerate(flows):
        count = min(max_packets, max(2, math.ceil(flow.size / MSS)))
        times = sorted(rng.uniform(flow.start, flow.end) for _ in range(count - 2))
        trace.append(Packet(flow.start, i, False))
        trace += [Packet(t, i, False) for t in times]
        trace.append(Packet(flow.end, i, True))
    trace.sort(key=lambda p: (p.time, p.last))
    return trace


def peak_live(trace: Sequence[Packet]) -> int:
    live: set[int] = set()
    peak = 0
    for packet in trace:
        if packet.last:
            live.discard(packet.flow)
        else:
            live.add(packet.flow)
            peak = max(peak, len(live))
    return peak


def simulate(
    ref: SchedulerRef, flows: Sequence[SimFlow], trace: Sequence[Packet], capacity: int, reals: int,
    change_at: float | None,
) -> tuple[int, int, int]:
    """Replay `trace` through an LRU table of `capacity`; returns (evicted, moved, broken flows)."""
    scheduler = ref.make()
    dests = make_reals([1] * reals)
    scheduler.update(dests)
    table: OrderedDict[int, Destination] = OrderedDict()
    home: dict[int, RealKey] = {}
    current: dict[int, Destination] = {}
    broken: set[int] = set()
    evicted = moved = 0
    for packet in trace:
        if change_at is not None and packet.time >= change_at:
            dests = [*dests, *make_reals([1], first=len(dests))]
            scheduler.update(dests)
            change_at = None
        fid = packet.flow
        dest = table.get(fid)
        if dest is not None:
            table.move_to_end(fid)
        else:
            dest = scheduler.schedule(flows[fid].key, dests)
            if dest is None:
                continue
            if fid in home:
                evicted += 1
                if dest.key != home[fid]:
                    moved += 1
                    broken.add(fid)
                current[fid].active -= 1
            else:
                home[fid] = dest.key
            dest.active += 1
            current[fid] = dest
            table[fid] = dest
            if len(table) > capacity:
                table.popitem(last=False)  # the least recently used entry goes
        if packet.last:
            table.pop(fid, None)
            current[fid].active -= 1
            current[fid].inactive += 1
    return evicted, moved, len(broken)


def compute(ctx: RunContext, params: AffinityParams, refs: Sequence[SchedulerRef]) -> list[AffinityResult]:
    flows = generate(params.workload, ctx.seed)
    trace = packet_trace(flows, params.max_packets, ctx.seed + 1)
    peak = peak_live(trace)
    halfway = trace[len(trace) // 2].time
    results = []
    with ctx.progress("affinity", total=len(refs) * len(SCENARIOS) * len(params.ratios)) as advance:
        for ref in refs:
            for scenario in SCENARIOS:
                for ratio in params.ratios:
                    capacity = max(1, round(ratio * peak))
                    change = halfway if scenario == "real added" else None
                    evicted, moved, broken = simulate(ref, flows, trace, capacity, params.reals, change)
                    results.append(AffinityResult(
                        ref.label, scenario, ratio, capacity, len(trace), evicted / len(trace), moved / len(trace),
                        broken / len(flows),
                    ))
                    advance(1)
    return results


def run(ctx: RunContext) -> list[AffinityResult]:
    """`lbxdp experiment affinity`: CSV, figure and summary.md under ctx.out."""
    params = QUICK if ctx.quick else FULL
    refs = resolve_all(DEFAULT_SCHEDULERS, ctx.schedulers, ctx.only)
    results = compute(ctx, params, refs)
    write_outputs(ctx, params, results)
    return results


def write_outputs(ctx: RunContext, params: AffinityParams, results: Sequence[AffinityResult]) -> None:
    ctx.write_csv(
        "affinity.csv",
        ["fallback_scheduler", "scenario", "table_over_peak_flows", "table_size", "packets", "evicted_fraction",
         "moved_fraction", "broken_flow_fraction"],
        [(r.scheduler, r.scenario, r.ratio, r.table_size, r.packets, r.evicted, r.moved, r.broken_flows)
         for r in results],
    )
    labels = list(dict.fromkeys(r.scheduler for r in results))
    panels = []
    for scenario in SCENARIOS:
        rows = [r for r in results if r.scenario == scenario]
        first = [r for r in rows if r.scheduler == labels[0]]
        series = [plotting.Series("entry evicted (any fallback)", [r.ratio for r in first],
                                  [r.evicted * 100 for r in first], "k--")]
        series += [
            plotting.Series(f"moved, {s} fallback", [r.ratio for r in rows if r.scheduler == s],
                            [r.moved * 100 for r in rows if r.scheduler == s])
            for s in labels
        ]
        title = "Stable set of reals" if scenario == "stable" else "One real added halfway"
        panels.append(plotting.LinePanel(title, "flow table size / peak live flows", "packets (%)", series))
    ctx.add_written(plotting.line_panels(
        ctx.path("affinity.png"),
        f"Packets whose flow entry was evicted, and those sent to another real ({params.reals} reals)",
        panels,
    ))
    ctx.write_text("summary.md", summary(params, results))


def summary(params: AffinityParams, results: Sequence[AffinityResult]) -> str:
    w = params.workload
    lines = [
        "# Affinity",
        "",
        f"{w.flows} flows (at most {params.max_packets} packets each), {params.reals} reals, LRU flow table sized "
        "as a ratio of the peak number of live flows. evicted = packets whose flow entry had been evicted; "
        "moved = packets re-scheduled to a real other than their flow's first (a broken connection).",
        "",
        "| fallback | scenario | table/peak | table size | evicted | moved | flows broken |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scheduler} | {r.scenario} | {r.ratio:g} | {r.table_size} | {r.evicted:.2%} | {r.moved:.2%} | "
        f"{r.broken_flows:.2%} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"
