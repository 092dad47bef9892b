"""Disruption: Maglev moves about 1/N on a removal, modulo nearly everything, the table is balanced."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lb.experiments import disruption
from lb.experiments.context import RunContext, make_reals, resolve_scheduler
from lb.experiments.workload import distinct_keys

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = (
    f"{ROOT}/examples/plugin_scheduler/wrand.py:WeightedRandom",
    f"{ROOT}/examples/plugin_scheduler/src/lbxdp_p2c/scheduler.py:PowerOfTwoChoices",
)
N = 10
PARAMS = disruption.DisruptionParams(
    reals=N, flows=6000, steps=(1, 2), table_sizes=(251, 65537), table_reals=N, fail_fractions=(0.1, 0.3)
)
FLOWS = distinct_keys(PARAMS.flows, 1)


def _results(name: str) -> dict[str, disruption.ChangeResult]:
    return {r.change: r for r in disruption.flow_study(resolve_scheduler(name), FLOWS, PARAMS, seed=1)}


@pytest.fixture(scope="module")
def maglev() -> dict[str, disruption.ChangeResult]:
    return _results("mh")


def test_maglev_removal_moves_the_removed_reals_flows_and_little_more(maglev) -> None:
    # The removed real's flows must move (Maglev keeps a surviving real's slots where it can, §3.4),
    # so the floor is exact; the extra churn is a small fraction of 1/N at M = 65537 >> N.
    r = maglev["remove 1"]
    assert r.on_removed > 0
    assert r.on_removed <= r.moved <= 1.5 / N
    assert r.moved >= 0.8 / N


def test_maglev_addition_and_weight_change_stay_near_the_minimum(maglev) -> None:
    assert maglev["add 1"].moved <= 1.5 * maglev["add 1"].minimum
    assert maglev["one weight x2"].moved <= 1.5 * maglev["one weight x2"].minimum


def test_modulo_is_much_worse_than_maglev(maglev) -> None:
    modulo = _results("modulo")
    assert modulo["remove 1"].moved > 0.5
    assert modulo["remove 1"].moved > 5 * maglev["remove 1"].moved


def test_rendezvous_is_minimal() -> None:
    r = _results("rendezvous")["remove 2"]
    assert r.moved == pytest.approx(r.on_removed)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([1] * 4, [1] * 3, 0.25),  # remove one of four
        ([1] * 4, [1] * 5, 0.2),  # add a fifth
        ([1, 1], [2, 1], 2 / 3 - 1 / 2),  # double one weight
        ([1, 1], [1, 1], 0.0),
    ],
)
def test_share_distance(before: list[int], after: list[int], expected: float) -> None:
    a, b = make_reals(before), make_reals(after)
    assert disruption.share_distance(a, b) == pytest.approx(expected)


def test_maglev_table_balance_improves_with_size() -> None:
    rows = disruption.table_study(PARAMS, seed=1, advance=lambda n: None)
    balance = {t.m: t.max_mean for t in rows}
    for m, ratio in balance.items():
        # Maglev §3.4: with equal weights every real gets floor(M/N) or ceil(M/N) slots.
        assert ratio <= math.ceil(m / N) / (m / N) + 1e-9
    assert balance[65537] < 1.01 < balance[251]
    for t in rows:
        assert t.changed >= t.fail_fraction - 1e-9  # the failed reals' slots always change owner
    big = {t.fail_fraction: t.changed for t in rows if t.m == 65537}
    small = {t.fail_fraction: t.changed for t in rows if t.m == 251}
    assert all(big[f] <= small[f] for f in big)


def test_plugins_run_through(tmp_path: Path) -> None:
    ctx = RunContext(out=tmp_path, show_progress=False)
    refs = [resolve_scheduler(s) for s in PLUGINS]
    small = disruption.DisruptionParams(
        reals=5, flows=500, steps=(1,), table_sizes=(251,), table_reals=5, fail_fractions=(0.2,)
    )
    flows, tables = disruption.compute(ctx, small, refs)
    assert {r.scheduler for r in flows} == {"wrand", "p2c"}
    assert all(0.0 <= r.moved <= 1.0 for r in flows)
    disruption.write_outputs(ctx, small, flows, tables)
    assert (tmp_path / "disruption.png").stat().st_size > 0
