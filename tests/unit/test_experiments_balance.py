"""Balance: bookkeeping of active connections, the fairness metric, and sane numbers per scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.experiments import balance
from lb.experiments.context import RunContext, resolve_scheduler
from lb.experiments.workload import WorkloadParams, generate

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = (
    f"{ROOT}/examples/plugin_scheduler/wrand.py:WeightedRandom",
    f"{ROOT}/examples/plugin_scheduler/src/lbxdp_p2c/scheduler.py:PowerOfTwoChoices",
)
EQUAL_FLOWS = generate(WorkloadParams(flows=800, size_alpha=None, duration_alpha=None, arrival_rate=100, duration_mean=1), 1)


@pytest.mark.parametrize(
    ("loads", "weights", "expected"),
    [
        ([5, 5, 5], [1, 1, 1], (1.0, 0.0)),
        ([2, 4], [1, 2], (1.0, 0.0)),  # exactly the weight shares
        ([3, 1], [1, 1], (1.5, 0.5)),
        ([0, 0], [1, 1], (1.0, 0.0)),  # nothing to balance
        ([4, 0, 0, 0], [1, 1, 1, 1], (4.0, 3**0.5)),
    ],
)
def test_fairness(loads: list[int], weights: list[int], expected: tuple[float, float]) -> None:
    assert balance.fairness(loads, weights) == pytest.approx(expected)


def test_samples_count_the_flows_open_at_each_sample_time() -> None:
    flows = generate(WorkloadParams(flows=1000, arrival_rate=200, duration_mean=1), 3)
    times = [0.5 * k for k in range(1, 10)]
    samples, n_flows, _, unscheduled = balance.simulate(resolve_scheduler("lc").make(), [1] * 4, flows, times)
    assert unscheduled == 0 and sum(n_flows) == 1000
    for t, row in zip(times, samples, strict=True):
        assert sum(row) == sum(f.start < t <= f.end for f in flows)


def test_rr_on_equal_flows_is_perfectly_balanced() -> None:
    run = balance.run_one(resolve_scheduler("rr"), "equal", [1] * 8, EQUAL_FLOWS, 20)
    assert run.flows == (100,) * 8
    assert run.flows_max_mean == pytest.approx(1.0) and run.bytes_max_mean == pytest.approx(1.0)


def test_wrr_gives_each_real_its_weight_share() -> None:
    run = balance.run_one(resolve_scheduler("wrr"), "weighted", [1, 2, 3, 4], EQUAL_FLOWS, 20)
    assert run.flows == (80, 160, 240, 320)
    assert run.flows_max_mean == pytest.approx(1.0)


def test_least_connections_beats_rr_on_heavy_tailed_durations() -> None:
    flows = generate(WorkloadParams(flows=3000, arrival_rate=200, duration_mean=2), 1)
    lc = balance.run_one(resolve_scheduler("lc"), "equal", [1] * 8, flows, 50)
    rr = balance.run_one(resolve_scheduler("rr"), "equal", [1] * 8, flows, 50)
    assert lc.conn_max_mean < rr.conn_max_mean and lc.conn_cv < rr.conn_cv


def test_dh_puts_one_vip_on_one_real() -> None:
    run = balance.run_one(resolve_scheduler("dh"), "equal", [1] * 8, EQUAL_FLOWS, 20)
    assert sorted(run.flows) == [0] * 7 + [800]
    assert run.flows_max_mean == pytest.approx(8.0)


def test_plugins_run_and_results_are_deterministic(tmp_path: Path) -> None:
    params = balance.BalanceParams(reals=4, workload=WorkloadParams(flows=400, arrival_rate=100), samples=10)
    ctx = RunContext(out=tmp_path, show_progress=False)
    refs = [resolve_scheduler(s) for s in ("wlc", *PLUGINS)]
    first = balance.compute(ctx, params, refs)
    assert {r.scheduler for r in first} == {"wlc", "wrand", "p2c"}
    assert all(sum(r.flows) == 400 for r in first)
    assert balance.compute(ctx, params, refs) == first
