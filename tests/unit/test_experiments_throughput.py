"""The pure parts of the throughput experiment: the generator's flow layout, the ideal hit rate,
medians of runs and the summary (the live run is tests/e2e/test_experiments_throughput.py)."""

from __future__ import annotations

import pytest

from lb.bench.syn import GEN_MAX_PORTS, gen_shape
from lb.experiments.throughput import FULL, QUICK, Point, expected_hit_rate, medians, summary


@pytest.mark.parametrize(
    ("flows", "shape"),
    [(1, (1, 1)), (64, (64, 1)), (64000, (64000, 1)), (65536, (32768, 2)), (131072, (32768, 4)),
     (16384, (16384, 1))],
)
def test_gen_shape_lays_flows_out_as_ports_times_addresses(flows: int, shape: tuple[int, int]) -> None:
    assert gen_shape(flows) == shape
    ports, addrs = shape
    assert ports * addrs == flows and ports <= GEN_MAX_PORTS


@pytest.mark.parametrize("flows", [0, -3, 65521 * 256])
def test_gen_shape_rejects_what_bench_syn_cannot_cycle(flows: int) -> None:
    with pytest.raises(ValueError):
        gen_shape(flows)


def test_every_planned_flow_count_has_a_shape() -> None:
    for plan in (QUICK, FULL):
        for flows in (*plan.flow_counts, plan.table_flows):
            gen_shape(flows)
        assert all(flows <= plan.flows_table for flows in plan.flow_counts)  # part 1: every flow fits


@pytest.mark.parametrize(("table", "flows", "rate"), [(4096, 8192, 0.5), (8192, 8192, 1.0), (1 << 20, 65536, 1.0)])
def test_expected_hit_rate(table: int, flows: int, rate: float) -> None:
    assert expected_hit_rate(table, flows) == rate


def test_medians_group_by_column_and_take_the_middle_run() -> None:
    #        flows, table, run, offered, forwarded, hit, hits, misses, other, sent, arrived, s
    rows = [[64, 4096, 1, 100.0, 90.0, 1.0, 9, 0, 0, 10, 9, 1.0],
            [64, 4096, 2, 300.0, 70.0, 1.0, 7, 0, 2, 10, 7, 1.0],
            [64, 4096, 3, 200.0, 80.0, 1.0, 8, 0, 0, 10, 8, 1.0],
            [128, 4096, 1, 50.0, 40.0, 0.5, 4, 4, 0, 8, 4, 1.0]]
    assert medians(rows, key=0) == [Point(64, 4096, 200.0, 80.0, 1.0, 2), Point(128, 4096, 50.0, 40.0, 0.5, 0)]
    assert len(medians(rows, key=1)) == 1


def test_summary_tables_carry_the_numbers() -> None:
    text = summary(QUICK, [Point(1, 4096, 2e5, 1.9e5, 1.0, 0)], [Point(8192, 4096, 2e5, 1e5, 0.5, 0)], [],
                   {"compile lbxdp": 6.0})
    assert "| 1 | 200.0 | 190.0 | 1.0000 |" in text
    assert "| 4k | 200.0 | 100.0 | 0.5000 | 0.5000 |" in text
    assert "| compile lbxdp | 6.0 |" in text
