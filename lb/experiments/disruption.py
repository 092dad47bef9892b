"""Disruption: how many flows change real when reals come, go, or change weight.

A fixed set of flows (each from its own client, to its own destination, so sh/mh's source hash
and dh's destination hash both see distinct keys) is mapped with N reals, the set is changed
(remove k, add k, double one weight: ipvsadm -d / -a / -e), `update()` is called on the same
scheduler instance as the daemon would, and the flows are mapped again. The fraction whose real
changed is set against the minimum any scheme must move: the total variation between the old and
new weight shares (k/N for removing k of N equal reals; the removed reals' flows must move).

The Maglev table itself (lb.sched.mh, `table` = owner per slot) is studied at several prime sizes
M, as in the Maglev paper (Eisenbud et al., NSDI 2016, §5.3): its balance (max/mean slots per real;
their Figure 11 shows the spread of entries per backend for Maglev, Karger and rendezvous hashing at
M = 65537 and 655373, and §3.4 bounds it: every real gets ⌊M/N⌋ or ⌈M/N⌉ slots) and the fraction of
slots that change owner when a share of the reals fails at once (their Figure 12).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lb.experiments import plotting
from lb.experiments.context import RunContext, SchedulerRef, make_reals, resolve_all
from lb.experiments.workload import distinct_keys
from lb.model import FlowKey, RealKey
from lb.sched.base import Destination, Scheduler

DEFAULT_SCHEDULERS = ("sh", "dh", "mh", "rendezvous", "modulo")


@dataclass(frozen=True)
class DisruptionParams:
    reals: int
    flows: int
    steps: tuple[int, ...]  # k for "remove k" and "add k"
    table_sizes: tuple[int, ...]  # Maglev M
    table_reals: int  # reals in the Maglev table study
    fail_fractions: tuple[float, ...]  # shares of table_reals failed at once


QUICK = DisruptionParams(
    reals=20, flows=10_000, steps=(1, 2, 4), table_sizes=(251, 4099, 65537), table_reals=20,
    fail_fractions=(0.05, 0.1, 0.2, 0.3),
)
FULL = DisruptionParams(
    reals=50, flows=50_000, steps=(1, 2, 5, 10), table_sizes=(251, 4099, 65537, 655373), table_reals=100,
    fail_fractions=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4),
)


@dataclass(frozen=True)
class Change:
    label: str
    kind: str  # "remove" | "add" | "weight"
    count: int


@dataclass(frozen=True)
class ChangeResult:
    scheduler: str
    change: str
    moved: float  # fraction of flows whose real changed
    minimum: float  # least any scheme must move (weight-share total variation)
    on_removed: float  # fraction of flows that were on removed reals (must move)
    base_max_mean: float  # flows per real, max/mean, before the change


@dataclass(frozen=True)
class TableResult:
    m: int
    reals: int
    max_mean: float  # slots per real, max/mean
    fail_fraction: float
    changed: float  # fraction of slots whose owner changed when `fail_fraction` of the reals fail


def changes(params: DisruptionParams) -> list[Change]:
    out = [Change(f"remove {k}", "remove", k) for k in params.steps if k < params.reals]
    out += [Change(f"add {k}", "add", k) for k in params.steps]
    out.append(Change("one weight x2", "weight", 1))
    return out


def apply(dests: Sequence[Destination], change: Change, rng: random.Random) -> tuple[list[Destination], set[RealKey]]:
    """The changed set (same Destination objects where unchanged) and the keys of removed reals."""
    if change.kind == "remove":
        gone = set(rng.sample(range(len(dests)), change.count))
        return [d for i, d in enumerate(dests) if i not in gone], {dests[i].key for i in gone}
    if change.kind == "add":
        return [*dests, *make_reals([1] * change.count, first=len(dests))], set()
    victim = rng.randrange(len(dests))
    new = list(dests)
    new[victim] = Destination(dests[victim].key, weight=dests[victim].weight * 2)
    return new, set()


def share_distance(before: Sequence[Destination], after: Sequence[Destination]) -> float:
    """Total variation distance between weight shares: the least fraction any mapping must move."""
    def shares(dests: Sequence[Destination]) -> dict[RealKey, float]:
        total = sum(d.weight for d in dests)
        return {d.key: d.weight / total for d in dests}

    old, new = shares(before), shares(after)
    return sum(max(0.0, old.get(k, 0.0) - new.get(k, 0.0)) for k in old.keys() | new.keys())


def mapping(scheduler: Scheduler, flows: Sequence[FlowKey], dests: Sequence[Destination]) -> list[RealKey | None]:
    """The real each flow goes to (None when the scheduler finds none)."""
    out: list[RealKey | None] = []
    for flow in flows:
        dest = scheduler.schedule(flow, dests)
        out.append(None if dest is None else dest.key)
    return out


def flow_study(
    ref: SchedulerRef, flows: Sequence[FlowKey], params: DisruptionParams, seed: int
) -> list[ChangeResult]:
    base = make_reals([1] * params.reals)
    scheduler = ref.make()
    scheduler.update(base)
    before = mapping(scheduler, flows, base)
    counts = Counter(before)
    base_mm = max(counts.values()) / (len(flows) / params.reals)
    results = []
    for n, change in enumerate(changes(params)):
        # The same reals change for every scheduler: the rng depends on the seed and the change only.
        after_dests, removed = apply(base, change, random.Random(seed * 1000 + n))
        scheduler.update(after_dests)
        after = mapping(scheduler, flows, after_dests)
        scheduler.update(base)  # back to the base set for the next change
        moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(flows)
        on_removed = sum(b in removed for b in before) / len(flows)
        distance = share_distance(base, after_dests)
        results.append(ChangeResult(ref.label, change.label, moved, distance, on_removed, base_mm))
    return results


def table_study(params: DisruptionParams, seed: int, advance: Callable[[int], None]) -> list[TableResult]:
    """Maglev's table at each M: slot balance, and slots changed when a share of the reals fails."""
    from lb.sched.mh import MaglevHashing  # the class itself: the study reads its table, which Scheduler has not

    base = make_reals([1] * params.table_reals)
    out = []
    for m in params.table_sizes:
        if m < params.table_reals:
            continue
        scheduler = MaglevHashing(frozenset(), m=m)
        scheduler.update(base)
        owners = [base[i].key if i >= 0 else None for i in scheduler.table]
        slots = Counter(owners)
        max_mean = max(slots.values()) / (m / len(base))
        for n, fraction in enumerate(params.fail_fractions):
            k = max(1, round(fraction * len(base)))
            after, _ = apply(base, Change("", "remove", k), random.Random(seed * 7919 + n))
            scheduler.update(after)
            changed = sum(
                owner != (after[i].key if i >= 0 else None) for owner, i in zip(owners, scheduler.table, strict=True)
            ) / m
            out.append(TableResult(m, len(base), max_mean, k / len(base), changed))
        scheduler.update(base)
        advance(1)
    return out


def run(ctx: RunContext) -> tuple[list[ChangeResult], list[TableResult]]:
    """`lbxdp experiment disruption`: CSVs, figures and summary.md under ctx.out."""
    params = QUICK if ctx.quick else FULL
    refs = resolve_all(DEFAULT_SCHEDULERS, ctx.schedulers, ctx.only)
    flow_results, table_results = compute(ctx, params, refs)
    write_outputs(ctx, params, flow_results, table_results)
    return flow_results, table_results


def compute(
    ctx: RunContext, params: DisruptionParams, refs: Sequence[SchedulerRef]
) -> tuple[list[ChangeResult], list[TableResult]]:
    flows = distinct_keys(params.flows, ctx.seed)
    flow_results: list[ChangeResult] = []
    with ctx.progress("disruption", total=len(refs) + len(params.table_sizes)) as advance:
        for ref in refs:
            flow_results += flow_study(ref, flows, params, ctx.seed)
            advance(1)
        table_results = table_study(params, ctx.seed, advance)
    return flow_results, table_results


def write_outputs(
    ctx: RunContext,
    params: DisruptionParams,
    flow_results: Sequence[ChangeResult],
    table_results: Sequence[TableResult],
) -> None:
    ctx.write_csv(
        "disruption_flows.csv",
        ["scheduler", "change", "moved_fraction", "minimum_fraction", "on_removed_fraction", "base_flows_max_mean"],
        [(r.scheduler, r.change, r.moved, r.minimum, r.on_removed, r.base_max_mean) for r in flow_results],
    )
    ctx.write_csv(
        "maglev_table.csv",
        ["table_size", "reals", "slots_max_mean", "failed_fraction", "changed_slots_fraction"],
        [(t.m, t.reals, t.max_mean, t.fail_fraction, t.changed) for t in table_results],
    )
    labels = list(dict.fromkeys(r.scheduler for r in flow_results))
    change_labels = [c.label for c in changes(params)]
    by = {(r.scheduler, r.change): r for r in flow_results}
    minimum = [by[(labels[0], c)].minimum * 100 for c in change_labels]
    x = list(range(len(change_labels)))
    series = [plotting.Series(s, x, [by[(s, c)].moved * 100 for c in change_labels]) for s in labels]
    series.append(plotting.Series("minimum possible", x, minimum, "k--"))
    ctx.add_written(plotting.line_panels(
        ctx.path("disruption.png"),
        f"Flows that change real after a change to {params.reals} equal reals ({params.flows} flows)",
        [plotting.LinePanel("Flows moved per change", "change to the set of reals", "flows moved (%)", series,
                            xticks=change_labels)],
    ))
    sizes = sorted({t.m for t in table_results})
    balance = [next(t.max_mean for t in table_results if t.m == m) for m in sizes]
    resilience = [
        plotting.Series(f"M = {m}", [t.fail_fraction * 100 for t in table_results if t.m == m],
                        [t.changed * 100 for t in table_results if t.m == m])
        for m in sizes
    ]
    fails = sorted({t.fail_fraction for t in table_results})
    percent = [f * 100 for f in fails]
    resilience.append(plotting.Series("minimum (failed reals' slots)", percent, percent, "k--"))
    ctx.add_written(plotting.line_panels(
        ctx.path("maglev_table.png"),
        f"Maglev lookup table with {params.table_reals} reals (cf. Maglev paper, Figures 11 and 12)",
        [
            plotting.LinePanel("Table balance vs table size", "table size M (slots)", "max/mean slots per real",
                               [plotting.Series("Maglev (lb.sched.mh)", sizes, balance),
                                plotting.Series("perfect", sizes, [1.0] * len(sizes), "k--")], log_x=True),
            plotting.LinePanel("Slots that change owner when reals fail", "reals failed at once (%)",
                               "table slots changed (%)", resilience),
        ],
    ))
    ctx.write_text("summary.md", summary(params, flow_results, table_results))


def summary(
    params: DisruptionParams, flow_results: Sequence[ChangeResult], table_results: Sequence[TableResult]
) -> str:
    lines = [
        "# Disruption",
        "",
        f"{params.flows} flows from distinct clients to distinct destinations, {params.reals} equal reals. "
        "moved = flows whose real changed; minimum = the least any scheme must move (weight-share distance); "
        "on removed reals = flows that were on a removed real and had to move.",
        "",
        "| scheduler | change | moved | minimum | on removed reals | base flows max/mean |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scheduler} | {r.change} | {r.moved:.2%} | {r.minimum:.2%} | {r.on_removed:.2%} | {r.base_max_mean:.2f} |"
        for r in flow_results
    ]
    lines += [
        "",
        f"## Maglev table ({params.table_reals} reals)",
        "",
        "| M | slots max/mean | reals failed | slots changed |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t.m} | {t.max_mean:.3f} | {t.fail_fraction:.0%} | {t.changed:.2%} |" for t in table_results]
    lines += [
        "",
        "Maglev paper (Eisenbud et al., NSDI 2016, §5.3), 1000 backends at M = 65537 and 655373: Figure 11 shows "
        "Maglev's entries per backend almost perfectly even at both sizes (§3.4: ⌊M/N⌋ or ⌈M/N⌉ each, hence "
        "M > 100·N for a 1 % spread), where Karger and rendezvous need large over-provisioning; Figure 12 shows the "
        "share of changed entries rising with the share of backends failed at once, and lower for the larger "
        "table. Compare the slots max/mean and slots changed columns above.",
    ]
    return "\n".join(lines) + "\n"
