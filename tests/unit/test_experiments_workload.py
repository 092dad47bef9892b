"""The synthetic workload: deterministic, distinct flows, Pareto means as asked."""

from __future__ import annotations

import statistics

import pytest

from lb.experiments.workload import WorkloadParams, distinct_keys, generate, pareto


def test_same_seed_same_flows_other_seed_other_flows() -> None:
    params = WorkloadParams(flows=500)
    assert generate(params, 3) == generate(params, 3)
    assert generate(params, 3) != generate(params, 4)


def test_flows_are_distinct_in_time_order_and_inside_10_8() -> None:
    flows = generate(WorkloadParams(flows=3000, clients=50), 1)
    assert len({f.key for f in flows}) == len(flows)
    assert [f.start for f in flows] == sorted(f.start for f in flows)
    assert all(str(f.key.saddr).startswith("10.") and str(f.key.daddr).startswith("10.") for f in flows)
    assert len({f.key.saddr for f in flows}) <= 50


def test_constant_when_alpha_is_none() -> None:
    flows = generate(WorkloadParams(flows=100, size_alpha=None, duration_alpha=None, size_mean=1000, duration_mean=2), 1)
    assert {f.size for f in flows} == {1000}
    assert {f.duration for f in flows} == {2}


def test_pareto_has_the_requested_mean() -> None:
    import random

    rng = random.Random(5)
    draws = [pareto(rng, 10.0, 3.0) for _ in range(50_000)]  # alpha 3: finite variance, mean converges
    assert statistics.fmean(draws) == pytest.approx(10.0, rel=0.03)
    assert min(draws) >= 10.0 * 2 / 3  # the scale x_m = mean (alpha-1)/alpha


@pytest.mark.parametrize("params", [dict(flows=0), dict(flows=10, size_alpha=1.0), dict(flows=10, arrival_rate=0)])
def test_bad_params_are_refused(params: dict) -> None:
    with pytest.raises(ValueError):
        WorkloadParams(**params)


def test_distinct_keys_have_distinct_sources_and_destinations() -> None:
    keys = distinct_keys(2000, 9)
    assert len({k.saddr for k in keys}) == 2000
    assert len({k.daddr for k in keys}) == 2000
    assert distinct_keys(2000, 9) == keys
