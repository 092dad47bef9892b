"""lb.bench.report: the markdown page and the cells (pure)."""

from __future__ import annotations

from lb.bench.report import cell, markdown, runs_cell, summary_lines
from lb.bench.results import Results, measured, not_measured


def sample() -> Results:
    return Results("quick", {"kernel": "6.18.0", "cpu": "Test CPU", "cores": 2, "memory_gib": 24.0},
                   [measured("forwarding", "lbxdp native", "pps", [300_000, 310_000, 290_000]),
                    measured("forwarding", "iptables DNAT (statistic random)", "pps", [150_000] * 3),
                    not_measured("tcp", "lbxdp conn/s", "conn/s", "daemon missing")], runs=3)


def test_markdown_has_machine_targets_ratios_and_cases() -> None:
    page = markdown(sample())
    assert "Linux 6.18.0, Test CPU, 2 cores, 24.0 GiB" in page
    assert "| forwarding vs iptables DNAT | ≥ 1.9× | 2.00× | met |" in page
    assert "| lbxdp native / iptables DNAT | 2.00× |" in page
    assert "| lbxdp native | 300.0k pps | 300.0k, 310.0k, 290.0k |" in page
    assert "not measured: daemon missing" in page


def test_cell_and_summary() -> None:
    r = sample()
    assert cell(r.rows[2]) == "not measured: daemon missing"
    lines = summary_lines(r)
    assert lines[0].startswith("forwarding vs iptables DNAT: target ≥ 1.9×, measured 2.00× — met")


def test_a_failed_run_is_shown_with_its_reason_next_to_the_samples() -> None:
    row = measured("tcp", "iptables DNAT conn/s", "conn/s", [2400, 2950],
                   failed=["run 2: wrk exited 1: connect refused"])
    assert runs_cell(row) == "2400, 2950, failed (run 2: wrk exited 1: connect refused)"
    assert cell(row) == "2675 conn/s"
    none = not_measured("tcp", "direct conn/s", "conn/s", "run 1: x", failed=["run 1: x", "run 2: y"])
    assert runs_cell(none) == "failed (run 1: x), failed (run 2: y)"
