"""lb.bench.results: medians, ratios, target verdicts and the summary lines (pure)."""

from __future__ import annotations

import pytest

from lb.bench.results import (
    TARGETS,
    Results,
    Row,
    Target,
    comparisons,
    evaluate,
    fmt,
    measured,
    not_measured,
    ratio,
    verdicts,
)


def test_median_and_spread_of_three_runs() -> None:
    row = measured("forwarding", "x", "pps", [300, 100, 200])
    assert row.median == 200
    assert row.spread == pytest.approx(1.0)  # (300 - 100) / 200
    assert measured("f", "y", "pps", [5]).spread is None
    assert not_measured("f", "z", "pps", "why").median is None


@pytest.mark.parametrize("num, den, want", [
    ([200, 210, 190], [100, 90, 110], 2.0),
    ([1], [0], None),
    ([], [1], None),
])
def test_ratio_is_of_medians(num: list[float], den: list[float], want: float | None) -> None:
    a = measured("c", "a", "u", num) if num else not_measured("c", "a", "u", "no")
    b = measured("c", "b", "u", den)
    assert ratio(a, b) == want


def rows(**medians: float) -> dict[str, Row]:
    out = {}
    for key, value in medians.items():
        case, name = key.split("__")
        row = measured(case, name, "u", [value])
        out[row.key] = row
    return out


RATIO = Target("fwd", "forwarding/a", ">=", 1.9, "forwarding/b")
LIMIT = Target("mem", "scale/m", "<=", 256, unit="MB")


@pytest.mark.parametrize("target, medians, status, shown", [
    (RATIO, {"forwarding__a": 190, "forwarding__b": 100}, "met", "1.90×"),
    (RATIO, {"forwarding__a": 189, "forwarding__b": 100}, "missed", "1.89×"),
    (LIMIT, {"scale__m": 256}, "met", "256 u"),
    (LIMIT, {"scale__m": 257}, "missed", "257 u"),
])
def test_evaluate_met_and_missed(target: Target, medians: dict[str, float], status: str, shown: str) -> None:
    v = evaluate(target, rows(**medians))
    assert (v.status, v.measured) == (status, shown)


def test_not_measured_carries_the_reason() -> None:
    table = {"forwarding/a": not_measured("forwarding", "a", "pps", "daemon missing"),
             **rows(forwarding__b=100)}
    v = evaluate(RATIO, table)
    assert v.status == "not measured"
    assert v.why == "daemon missing"
    assert evaluate(RATIO, {}).why == "forwarding/a not run"


def test_summary_line_shape() -> None:
    v = evaluate(LIMIT, rows(scale__m=216))
    assert v.line == "mem: target ≤ 256 MB, measured 216 u — met"


def test_every_target_has_one_line_even_with_no_rows() -> None:
    lines = [v.line for v in verdicts([])]
    assert len(lines) == len(TARGETS)
    assert all("not measured" in line for line in lines)


def test_comparisons_only_where_both_sides_measured() -> None:
    got = comparisons([measured("forwarding", "lbxdp native", "pps", [300]),
                       measured("forwarding", "iptables DNAT (statistic random)", "pps", [150])])
    assert got == [("lbxdp native / iptables DNAT", 2.0)]


def test_results_round_trip_through_dict() -> None:
    r = Results("quick", {"kernel": "6.18"}, [measured("scale", "Maglev build", "ms", [70, 80, 75],
                                                       higher_is_better=False),
                                              not_measured("tcp", "x", "conn/s", "why"),
                                              measured("tcp", "y", "conn/s", [1, 2], failed=["run 3: z"])])
    data = r.to_dict()
    back = Results.from_dict(data)
    assert back.rows == r.rows
    assert data["rows"][0]["median"] == 75
    assert list(data["rows"][2]["failed"]) == ["run 3: z"]
    assert {t["figure"] for t in data["targets"]} == {t.figure for t in TARGETS}


@pytest.mark.parametrize("value, text", [(1_234_567, "1.23M"), (45_600, "45.6k"), (184, "184"),
                                         (12.34, "12.3"), (0.4213, "0.421")])
def test_fmt(value: float, text: str) -> None:
    assert fmt(value) == text


def test_a_missed_target_is_read_against_its_reference_when_measured() -> None:
    from lb.bench.results import Reference

    target = Target("flows", "newflows/a", ">=", 25_000, unit="flows/s",
                    reference=Reference("routed", "newflows/r"))
    by_ratio = Target("fwd", "forwarding/a", ">=", 1.9, "forwarding/b",
                      reference=Reference("minimal", "forwarding/m", "forwarding/b"))
    assert evaluate(target, rows(newflows__a=4000, newflows__r=18_000)).why == "routed: 18.0k u"
    assert evaluate(target, rows(newflows__a=4000)).why == ""  # the reference was not run
    assert evaluate(target, rows(newflows__a=30_000, newflows__r=18_000)).why == ""  # met: nothing to read
    missed = evaluate(by_ratio, rows(forwarding__a=170, forwarding__b=100, forwarding__m=164))
    assert missed.line == "fwd: target ≥ 1.9×, measured 1.70× — missed (minimal: 1.64×)"
