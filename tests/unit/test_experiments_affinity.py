"""Affinity: an LRU flow table too small for the live flows, with and without a hash fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.experiments import affinity
from lb.experiments.context import RunContext, resolve_scheduler
from lb.experiments.workload import WorkloadParams, generate

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = (
    f"{ROOT}/examples/plugin_scheduler/wrand.py:WeightedRandom",
    f"{ROOT}/examples/plugin_scheduler/src/lbxdp_p2c/scheduler.py:PowerOfTwoChoices",
)
FLOWS = generate(WorkloadParams(flows=600, arrival_rate=200, duration_mean=1), 2)
TRACE = affinity.packet_trace(FLOWS, 20, 3)


def test_trace_has_every_flow_from_first_to_last_packet() -> None:
    assert sum(p.last for p in TRACE) == len(FLOWS)
    assert [p.time for p in TRACE] == sorted(p.time for p in TRACE)
    first = {}
    for p in TRACE:
        first.setdefault(p.flow, p)
    assert all(not p.last for p in first.values())
    assert 0 < affinity.peak_live(TRACE) < len(FLOWS)


@pytest.mark.parametrize("name", ["rr", "mh"])
@pytest.mark.parametrize("change", [None, 0.5])
def test_a_table_as_large_as_the_flows_moves_nothing(name: str, change: float | None) -> None:
    evicted, moved, broken = affinity.simulate(resolve_scheduler(name), FLOWS, TRACE, len(FLOWS), 4, change)
    assert (evicted, moved, broken) == (0, 0, 0)


def test_a_table_as_large_as_the_peak_of_live_flows_moves_nothing() -> None:
    peak = affinity.peak_live(TRACE)
    assert affinity.simulate(resolve_scheduler("rr"), FLOWS, TRACE, peak, 4, None) == (0, 0, 0)
    assert affinity.simulate(resolve_scheduler("rr"), FLOWS, TRACE, peak - 5, 4, None)[0] > 0


def test_a_small_table_breaks_rr_flows_but_not_mh_flows() -> None:
    small = affinity.peak_live(TRACE) // 5
    evicted, moved, _ = affinity.simulate(resolve_scheduler("rr"), FLOWS, TRACE, small, 4, None)
    assert evicted > 0 and moved > evicted / 2  # rr lands elsewhere ~ (N-1)/N of the time
    evicted_mh, moved_mh, _ = affinity.simulate(resolve_scheduler("mh"), FLOWS, TRACE, small, 4, None)
    assert evicted_mh == evicted and moved_mh == 0
    _, moved_change, _ = affinity.simulate(resolve_scheduler("mh"), FLOWS, TRACE, small, 4, TRACE[len(TRACE) // 2].time)
    assert 0 < moved_change < moved / 4


def test_plugins_run_through(tmp_path: Path) -> None:
    params = affinity.AffinityParams(
        reals=4, workload=WorkloadParams(flows=300, arrival_rate=200, duration_mean=1), max_packets=10, ratios=(0.3, 1.0)
    )
    ctx = RunContext(out=tmp_path, show_progress=False)
    results = affinity.compute(ctx, params, [resolve_scheduler(s) for s in PLUGINS])
    assert {r.scheduler for r in results} == {"wrand", "p2c"}
    assert all(r.moved == 0 for r in results if r.ratio == 1.0)
    affinity.write_outputs(ctx, params, results)
    assert (tmp_path / "affinity.csv").read_text().count("\n") == 1 + len(results)
