"""Balance: how evenly each scheduler spreads a heavy-tailed workload over the reals.

The flows of `workload` open and close in time order; each opening asks the scheduler (the same
class the daemon runs) for a real and bumps that `Destination.active`, each closing moves the flow to
`inactive` for a short linger (TIME_WAIT's role in IPVS, whose lc/wlc cost is active·256 + inactive,
ip_vs_wlc.c ip_vs_dest_conn_overhead) and then drops it. Sampled per-real active connections give:

- max/mean: the busiest real's load over the mean, each real's load first divided by its weight
  share (w_i/Σw), so 1.0 is perfectly fair also when weights differ; averaged over the samples
  after warm-up (the first `WARMUP` of the run, while the system fills);
- CV: the coefficient of variation (stdev/mean) of the same share-normalised loads;
- the same max/mean over all flows and all bytes each real received over the run.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from lb.experiments import plotting
from lb.experiments.context import RunContext, SchedulerRef, make_reals, resolve_all
from lb.experiments.workload import SimFlow, WorkloadParams, generate
from lb.sched.base import Scheduler

DEFAULT_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh")
LINGER = 2.0  # seconds a closed flow counts as inactive; IPVS's TIME_WAIT is 120 s, scaled to the runs
WARMUP = 0.2  # fraction of the run excluded from the time-averaged metrics

_CLOSE, _EXPIRE = 0, 1


@dataclass(frozen=True)
class BalanceParams:
    reals: int
    workload: WorkloadParams
    samples: int = 200


QUICK = BalanceParams(reals=8, workload=WorkloadParams(flows=4000, arrival_rate=200.0, duration_mean=2.0), samples=100)
FULL = BalanceParams(reals=8, workload=WorkloadParams(flows=60_000, arrival_rate=400.0, duration_mean=5.0), samples=300)
CONFIGS = {"equal": lambda n: [1] * n, "weighted": lambda n: list(range(1, n + 1))}


@dataclass(frozen=True)
class BalanceRun:
    """One scheduler on one configuration: samples and totals per real, and the fairness metrics."""

    config: str
    scheduler: str
    weights: tuple[int, ...]
    times: tuple[float, ...]
    active: tuple[tuple[int, ...], ...]  # [sample][real]
    flows: tuple[int, ...]  # flows each real received
    bytes: tuple[int, ...]  # bytes each real received
    unscheduled: int  # flows the scheduler returned None for
    conn_max_mean: float
    conn_cv: float
    flows_max_mean: float
    bytes_max_mean: float
    bytes_cv: float


def fairness(loads: Sequence[float], weights: Sequence[int]) -> tuple[float, float]:
    """(max/mean, CV) of loads normalised by weight share; (1.0, 0.0) is perfectly fair.

    A real's normalised load is load_i / (share_i · Σload) with share_i = w_i / Σw: 1 when it carries
    exactly its share. max/mean is the largest of these (their share-weighted mean is 1).
    """
    total = sum(loads)
    wsum = sum(weights)
    if total <= 0:
        return 1.0, 0.0
    norm = [load / (w / wsum * total) for load, w in zip(loads, weights, strict=True)]
    mean = statistics.fmean(norm)
    return max(norm), (statistics.pstdev(norm) / mean if mean else 0.0)


def simulate(
    scheduler: Scheduler, weights: Sequence[int], flows: Sequence[SimFlow], sample_times: Sequence[float]
) -> tuple[list[tuple[int, ...]], list[int], list[int], int]:
    """Replay `flows` through `scheduler`; returns (active samples, flows/real, bytes/real, unscheduled)."""
    dests = make_reals(weights)
    index = {id(dest): i for i, dest in enumerate(dests)}
    scheduler.update(dests)
    n_flows = [0] * len(dests)
    n_bytes = [0] * len(dests)
    unscheduled = 0
    samples: list[tuple[int, ...]] = []
    events: list[tuple[float, int, int, int]] = []  # (time, seq, kind, real)
    seq = 0
    next_sample = 0

    def advance(until: float) -> None:
        nonlocal seq, next_sample
        while True:
            t_event = events[0][0] if events else float("inf")
            t_sample = sample_times[next_sample] if next_sample < len(sample_times) else float("inf")
            if min(t_event, t_sample) > until:
                return
            if t_sample <= t_event:
                samples.append(tuple(dest.active for dest in dests))
                next_sample += 1
                continue
            _, _, kind, i = heapq.heappop(events)
            if kind == _CLOSE:
                dests[i].active -= 1
                dests[i].inactive += 1
                seq += 1
                heapq.heappush(events, (t_event + LINGER, seq, _EXPIRE, i))
            else:
                dests[i].inactive -= 1

    for flow in flows:
        advance(flow.start)
        dest = scheduler.schedule(flow.key, dests)
        if dest is None:
            unscheduled += 1
            continue
        i = index[id(dest)]
        dest.active += 1
        n_flows[i] += 1
        n_bytes[i] += flow.size
        seq += 1
        heapq.heappush(events, (flow.end, seq, _CLOSE, i))
    advance(sample_times[-1] if sample_times else 0.0)
    return samples, n_flows, n_bytes, unscheduled


def run_one(
    ref: SchedulerRef, config: str, weights: Sequence[int], flows: Sequence[SimFlow], samples: int
) -> BalanceRun:
    span = flows[-1].start
    times = [span * (k + 1) / samples for k in range(samples)]
    active, n_flows, n_bytes, unscheduled = simulate(ref.make(), weights, flows, times)
    steady = [row for t, row in zip(times, active, strict=True) if t >= WARMUP * span and sum(row) > 0]
    per_sample = [fairness(row, weights) for row in steady] or [(1.0, 0.0)]
    bytes_mm, bytes_cv = fairness(n_bytes, weights)
    return BalanceRun(
        config=config,
        scheduler=ref.label,
        weights=tuple(weights),
        times=tuple(times),
        active=tuple(active),
        flows=tuple(n_flows),
        bytes=tuple(n_bytes),
        unscheduled=unscheduled,
        conn_max_mean=statistics.fmean(mm for mm, _ in per_sample),
        conn_cv=statistics.fmean(cv for _, cv in per_sample),
        flows_max_mean=fairness(n_flows, weights)[0],
        bytes_max_mean=bytes_mm,
        bytes_cv=bytes_cv,
    )


def compute(ctx: RunContext, params: BalanceParams, refs: Sequence[SchedulerRef]) -> list[BalanceRun]:
    flows = generate(params.workload, ctx.seed)
    runs = []
    with ctx.progress("balance", total=len(refs) * len(CONFIGS)) as advance:
        for config, make_weights in CONFIGS.items():
            for ref in refs:
                runs.append(run_one(ref, config, make_weights(params.reals), flows, params.samples))
                advance(1)
    return runs


def run(ctx: RunContext) -> list[BalanceRun]:
    """`lbxdp experiment balance`: CSVs, figures and summary.md under ctx.out."""
    params = QUICK if ctx.quick else FULL
    refs = resolve_all(DEFAULT_SCHEDULERS, ctx.schedulers, ctx.only)
    runs = compute(ctx, params, refs)
    write_outputs(ctx, params, runs)
    return runs


def write_outputs(ctx: RunContext, params: BalanceParams, runs: Sequence[BalanceRun]) -> None:
    ctx.write_csv(
        "balance_summary.csv",
        ["config", "scheduler", "weights", "conn_max_mean", "conn_cv", "flows_max_mean", "bytes_max_mean",
         "bytes_cv", "unscheduled"],
        [
            (r.config, r.scheduler, " ".join(map(str, r.weights)), r.conn_max_mean, r.conn_cv, r.flows_max_mean,
             r.bytes_max_mean, r.bytes_cv, r.unscheduled)
            for r in runs
        ],
    )
    ctx.write_csv(
        "balance_timeseries.csv",
        ["config", "scheduler", "time_s", "real", "weight", "active"],
        (
            (r.config, r.scheduler, t, f"10.2.0.{i + 1}", r.weights[i], count)
            for r in runs
            for t, row in zip(r.times, r.active, strict=True)
            for i, count in enumerate(row)
        ),
    )
    for config in CONFIGS:
        chosen = [r for r in runs if r.config == config]
        ctx.add_written(plotting.timeseries_grid(
            ctx.path(f"balance_{config}_timeseries.png"),
            f"Active connections per real ({config} weights: {_weights_label(chosen[0].weights)})",
            [(r.scheduler, r.times, r.active, r.weights) for r in chosen],
        ))
    labels = [r.scheduler for r in runs if r.config == "equal"]
    by = {(r.config, r.scheduler): r for r in runs}
    ctx.add_written(plotting.grouped_bars(
        ctx.path("balance_summary.png"),
        "Load imbalance by scheduler (1.0 = every real carries its weight share)",
        labels,
        [
            plotting.BarPanel(
                "Active connections, time-averaged max/mean",
                "max/mean of share-normalised load",
                {config: [by[(config, s)].conn_max_mean for s in labels] for config in CONFIGS},
            ),
            plotting.BarPanel(
                "Bytes received over the run, max/mean",
                "max/mean of share-normalised bytes",
                {config: [by[(config, s)].bytes_max_mean for s in labels] for config in CONFIGS},
            ),
        ],
        log_y=True,
    ))
    ctx.write_text("summary.md", summary(params, runs))


def summary(params: BalanceParams, runs: Sequence[BalanceRun]) -> str:
    w = params.workload
    lines = [
        "# Balance",
        "",
        f"{w.flows} flows, Poisson arrivals at {w.arrival_rate:g}/s, Pareto durations (mean {w.duration_mean:g} s, "
        f"alpha {w.duration_alpha}) and sizes (mean {w.size_mean:g} B, alpha {w.size_alpha}), {w.clients} client "
        f"addresses, {params.reals} reals. Loads are divided by each real's weight share; 1.0 is perfectly fair.",
        "",
        "| config | scheduler | conns max/mean | conns CV | flows max/mean | bytes max/mean | bytes CV |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.config} | {r.scheduler} | {r.conn_max_mean:.2f} | {r.conn_cv:.2f} | {r.flows_max_mean:.2f} | "
        f"{r.bytes_max_mean:.2f} | {r.bytes_cv:.2f} |"
        for r in runs
    ]
    for config in CONFIGS:
        ranked = sorted((r for r in runs if r.config == config), key=lambda r: r.conn_max_mean)
        lines += ["", f"{config}: most even by active connections {ranked[0].scheduler} "
                  f"({ranked[0].conn_max_mean:.2f}), least even {ranked[-1].scheduler} "
                  f"({ranked[-1].conn_max_mean:.2f})."]
    return "\n".join(lines) + "\n"


def _weights_label(weights: Sequence[int]) -> str:
    return ",".join(map(str, weights))
