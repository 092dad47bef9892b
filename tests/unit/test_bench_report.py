"""lb.bench.report: the markdown page and the cells (pure)."""

from __future__ import annotations

from lb.bench.programs import enum_values
from lb.bench.report import cell, markdown, summary_lines
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


def test_enum_values_reads_explicit_c_enums() -> None:
    header = "enum lb_reason {\n\tA_ONE = 0, /* x */\n\tA_TWO = 7,\n\tA_MAX = 8,\n};\n"
    assert enum_values(header, "lb_reason") == {"A_ONE": 0, "A_TWO": 7, "A_MAX": 8}
