"""Throughput (live): forwarding rate and first-packet rate against concurrent flows and flow-table size.

Unlike the other experiments this one runs the real thing, in network namespaces it builds and
removes (lb/experiments/throughput_rig.py holds the live part):

1. **forwarding vs concurrent flows**: lbxdp (bpf/lb_kern.c loaded with `Tunables(max_flows=T)`)
   on the balancer of a two-arm topology, N flows spread over 3 masquerading reals installed in its
   flow table up front, the bench's XDP generator cycling through exactly those N 5-tuples, packets
   counted at the reals. What changes with N is the working set of the flow lookup (one LRU hash
   entry per flow), i.e. how well the table's buckets stay in the CPU caches.
2. **forwarding vs flow-table size**: the same N flows, the table compiled at several MAX_FLOWS,
   some smaller than N. The LRU keeps only what fits; a flow whose entry is gone misses and is
   passed up to the first-packet path (here no daemon runs, so the kernel drops it: the hit rate
   and the forwarded rate are those of the table alone).
3. **first-packet rate**: the live daemon (`lbxdp attach … --max-flows T`), offered SYNs of flows
   never seen before; new flows scheduled, forwarded and answered per second, and what the daemon
   does once its table is full (`refused_table_full`: it refuses new flows rather than let them
   evict established ones).

Outputs: throughput_flows.csv, throughput_table.csv, throughput_first_packet.csv, throughput.png,
throughput_table.png, summary.md. The pure parts (the plan, the generator's shape, the summary
text) import nothing from the kernel side and are unit-tested without root.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lb.experiments.context import ExperimentError, RunContext

AVAILABLE = True  # the registry lists it; run() checks root and the pieces at run time
REASON = "needs root: it builds network namespaces and loads XDP programs (run it with sudo)"


@dataclass(frozen=True)
class Plan:
    """The points one run measures."""

    flow_counts: tuple[int, ...]  # part 1: concurrent flows
    flows_table: int  # part 1: the table they live in (holds them all)
    table_sizes: tuple[int, ...]  # part 2: MAX_FLOWS values
    table_flows: int  # part 2: flows offered to every table
    first_packet_tables: tuple[int, ...]  # part 3: --max-flows of the daemon
    first_packet_syns: int  # part 3: SYNs of new flows per burst
    first_packet_rate: int  # part 3: SYNs offered per second
    first_packet_overflow: int  # part 3: SYNs beyond the daemon's flow limit (each refusal is slow)
    seconds: float  # one generator run
    runs: int  # runs per point (median reported)


# --quick compiles lbxdp once (bcc takes about 10 s a compile here): one 4k table holds parts 1
# and 2, and the daemon's first-packet run is the third compile.
QUICK = Plan(flow_counts=(1, 64, 1024, 2048), flows_table=4096, table_sizes=(4096,), table_flows=8192,
             first_packet_tables=(4096,), first_packet_syns=6000, first_packet_rate=10000,
             first_packet_overflow=20, seconds=1.0, runs=1)
FULL = Plan(flow_counts=(1, 64, 1024, 16384, 131072), flows_table=262144,
            table_sizes=(4096, 16384, 65536, 262144, 1048576), table_flows=65536,
            first_packet_tables=(4096, 65536, 1048576), first_packet_syns=20000, first_packet_rate=10000,
            first_packet_overflow=20, seconds=2.0, runs=3)


def expected_hit_rate(table: int, flows: int) -> float:
    """What an ideal LRU of `table` entries holds of `flows` installed ones, nothing re-installed."""
    return min(1.0, table / flows)


def check_can_run() -> None:
    """One clear line if this machine or user cannot run the live experiment."""
    if os.geteuid() != 0:
        raise ExperimentError(REASON)
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise ExperimentError("needs bcc (Debian's python3-bpfcc; scripts/setup.sh installs it)") from None


def run(ctx: RunContext) -> None:
    check_can_run()
    from lb.experiments import throughput_rig as rig

    plan = QUICK if ctx.quick else FULL
    steps = (len(plan.flow_counts) + len(plan.table_sizes)) * plan.runs + len(plan.first_packet_tables)
    flows_rows: list[list[Any]] = []
    table_rows: list[list[Any]] = []
    fp: list[rig.FirstPacketSample] = []
    timer = PhaseTimer()
    with ctx.progress("throughput (live)", steps) as advance:
        try:
            with timer("topology and counters"), rig.forwarding_rig() as fwd:
                with timer("compile lbxdp"):
                    fwd.load(plan.flows_table)
                for flows in plan.flow_counts:
                    with timer("compile generators"):
                        fwd.generator(flows)
                    with timer("install flows"):
                        fwd.install(plan.flows_table, flows)
                    for r in range(plan.runs):
                        with timer("generator runs"):
                            s = fwd.measure(plan.flows_table, flows, plan.seconds)
                        flows_rows.append(_row(flows, plan.flows_table, r, s))
                        advance(1)
                for table in plan.table_sizes:
                    with timer("compile lbxdp"):
                        fwd.load(table)
                    with timer("install flows"):
                        fwd.install(table, plan.table_flows)
                    for r in range(plan.runs):
                        with timer("generator runs"):
                            s = fwd.measure(table, plan.table_flows, plan.seconds)
                        table_rows.append(_row(plan.table_flows, table, r, s))
                        advance(1)
            for table in plan.first_packet_tables:
                with timer("first-packet path (topology, nginx, lbxdp attach, burst)"):
                    fp.append(rig.first_packet_burst(table, plan.first_packet_syns, plan.first_packet_rate,
                                                     plan.first_packet_overflow,
                                                     lambda _msg: None))
                advance(1)
        except ExperimentError:
            raise
        except Exception as exc:  # a live failure is one line for the user, not a traceback
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise ExperimentError(f"live run failed: {type(exc).__name__}: {first}") from exc
    header = ["flows", "max_flows", "run", "offered_pps", "forwarded_pps", "hit_rate", "hits", "misses",
              "other", "sent", "arrived", "seconds"]
    ctx.write_csv("throughput_flows.csv", header, flows_rows)
    ctx.write_csv("throughput_table.csv", header, table_rows)
    ctx.write_csv("throughput_first_packet.csv",
                  ["max_flows", "flow_limit", "syns_sent", "offered_per_s", "answered", "scheduled",
                   "refused_table_full", "pruned_half_open", "queue_drops", "flows_in_table", "seconds",
                   "new_flows_per_s", "decided_seconds", "refusals_per_s"],
                  [[s.max_flows, s.flow_limit, s.sent, s.offered_rate, s.answered, s.scheduled,
                    s.refused_table_full, s.pruned_half_open, s.queue_drops, s.flows_in_table, s.seconds,
                    s.rate, s.decided_seconds, s.refusals_per_s] for s in fp])
    flows_pts, table_pts = medians(flows_rows, key=0), medians(table_rows, key=1)
    _figures(ctx, plan, flows_pts, table_pts, fp)
    ctx.write_text("summary.md", summary(plan, flows_pts, table_pts, fp, timer.totals))


class PhaseTimer:
    """Wall time per named phase (nested phases count in both), for the summary's run-time table."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.monotonic() - start


def _row(flows: int, table: int, run_index: int, s: Any) -> list[Any]:
    return [flows, table, run_index + 1, s.offered_pps, s.forwarded_pps, s.hit_rate, s.hits, s.misses,
            s.other, s.sent, s.arrived, s.seconds]


@dataclass(frozen=True)
class Point:
    """The median of a point's runs (columns as in the CSV)."""

    flows: int
    max_flows: int
    offered_pps: float
    forwarded_pps: float
    hit_rate: float
    other: int


def medians(rows: Sequence[Sequence[Any]], key: int) -> list[Point]:
    """One Point per distinct value of column `key` (0: flows, 1: max_flows), in order of appearance."""
    groups: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        groups.setdefault(int(row[key]), []).append(row)
    return [Point(int(g[0][0]), int(g[0][1]), statistics.median(float(r[3]) for r in g),
                  statistics.median(float(r[4]) for r in g), statistics.median(float(r[5]) for r in g),
                  max(int(r[8]) for r in g)) for g in groups.values()]


def _figures(ctx: RunContext, plan: Plan, flows_pts: list[Point], table_pts: list[Point], fp: Sequence[Any]) -> None:
    from lb.experiments.plotting import LinePanel, Series, line_panels

    kpps = 1e-3

    def rates(xs: list[int], pts: list[Point]) -> list[Series]:
        """Forwarded and offered packet rates of the same points, in kpps."""
        return [
            Series("forwarded (counted at the reals)", xs, [p.forwarded_pps * kpps for p in pts]),
            Series("offered (generator)", xs, [p.offered_pps * kpps for p in pts], "--x"),
        ]

    ctx.add_written(line_panels(ctx.path("throughput.png"), "lbxdp forwarding rate (native XDP on veth, "
                                "64-byte TCP frames, 3 masquerading reals)", [
        LinePanel(f"vs concurrent flows (flow table {_size(plan.flows_table)} entries)",
                  "concurrent flows (installed in the table)", "packets per second (kpps)",
                  rates([p.flows for p in flows_pts], flows_pts), log_x=True),
        LinePanel(f"vs flow-table size ({_size(plan.table_flows)} flows offered)",
                  "flow-table size MAX_FLOWS (entries)", "packets per second (kpps)",
                  rates([p.max_flows for p in table_pts], table_pts), log_x=True),
    ]))
    tables = [s.max_flows for s in fp]
    ctx.add_written(line_panels(ctx.path("throughput_table.png"), "lbxdp flow table: hit rate and first packets", [
        LinePanel(f"hit rate vs flow-table size ({_size(plan.table_flows)} flows, none re-installed)",
                  "flow-table size MAX_FLOWS (entries)", "packets that hit their flow entry (fraction)", [
                      Series("measured (lbxdp reason counters)", [p.max_flows for p in table_pts],
                             [p.hit_rate for p in table_pts]),
                      Series("ideal LRU: min(1, table / flows)", [p.max_flows for p in table_pts],
                             [expected_hit_rate(p.max_flows, p.flows) for p in table_pts], "--"),
                  ], log_x=True, ylim=(0.0, 1.05)),
        LinePanel(f"first-packet path (live daemon; SYNs of new flows at {plan.first_packet_rate // 1000}k/s, "
                  f"to its limit + {plan.first_packet_overflow})",
                  "flow-table size --max-flows (entries)", "decisions per second (log)", [
                      Series("new flows/s (scheduled, forwarded, answered)", tables, [s.rate for s in fp]),
                      Series("refusals/s once the table is full", tables, [s.refusals_per_s for s in fp], "--s"),
                  ], log_x=True, log_y=True),
    ]))


def _size(n: int) -> str:
    for unit, div in (("M", 1 << 20), ("k", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def summary(plan: Plan, flows_pts: Sequence[Point], table_pts: Sequence[Point], fp: Sequence[Any],
            timings: dict[str, float] | None = None) -> str:
    """summary.md: what was measured and the medians."""
    lines = [
        "# throughput (live)",
        "",
        f"lbxdp native on the balancer's veth in a two-arm namespace topology, 3 masquerading reals; "
        f"traffic from bench_syn.c (BPF_PROG_RUN, live frames), {plan.seconds:g} s per run, "
        f"median of {plan.runs} run(s); packets counted by an XDP_DROP counter on every real.",
        "",
        f"## Forwarding vs concurrent flows (flow table {_size(plan.flows_table)})",
        "",
        "| flows | offered (kpps) | forwarded (kpps) | hit rate |",
        "|---|---|---|---|",
        *[f"| {p.flows} | {p.offered_pps / 1e3:.1f} | {p.forwarded_pps / 1e3:.1f} | {p.hit_rate:.4f} |"
          for p in flows_pts],
        "",
        f"## Forwarding vs flow-table size ({_size(plan.table_flows)} flows)",
        "",
        "| MAX_FLOWS | offered (kpps) | forwarded (kpps) | hit rate | ideal LRU |",
        "|---|---|---|---|---|",
        *[f"| {_size(p.max_flows)} | {p.offered_pps / 1e3:.1f} | {p.forwarded_pps / 1e3:.1f} | {p.hit_rate:.4f} "
          f"| {expected_hit_rate(p.max_flows, p.flows):.4f} |" for p in table_pts],
        "",
        "A miss is passed up (PASS_FLOW_MISS) to the first-packet path; with no daemon in this part "
        "nothing re-installs it, so the hit rate is what the table itself holds.",
        "",
        f"## First-packet path (live daemon, {plan.first_packet_syns} SYNs of new flows at "
        f"{plan.first_packet_rate / 1e3:g}k/s)",
        "",
        "| --max-flows | daemon limit | new flows/s | answered | scheduled | refused (table full) "
        "| refusals/s when full | NFQUEUE drops | flows in table |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {_size(s.max_flows)} | {s.flow_limit} | {s.rate:.0f} | {s.answered} | {s.scheduled} "
          f"| {s.refused_table_full} | {s.refusals_per_s:.1f} | {s.queue_drops} | {s.flows_in_table} |" for s in fp],
        "",
    ]
    if timings:
        lines += ["## Where the time went", "", "| phase | seconds |", "|---|---|",
                  *[f"| {name} | {secs:.1f} |" for name, secs in timings.items()], ""]
    return "\n".join(lines)
