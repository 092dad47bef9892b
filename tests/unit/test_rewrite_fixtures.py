"""Every fixture row of tests/bpf/fixtures.py through the rewrite model (no root needed): the same
expected bytes the XDP program must produce."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bpf"))  # the shared fixture table

import fixtures as F

from lb.rewrite import Reason, Verdict, process


def test_the_table_is_big_enough_and_covers_every_reachable_reason() -> None:
    assert len(F.ROWS) >= 40
    unreachable_here = {Reason.PASS_NO_HEADROOM, Reason.ABORTED_ENCAP}  # need a kernel without headroom
    assert {r.reason for r in F.ROWS} == set(Reason) - unreachable_here
    assert len({r.name for r in F.ROWS}) == len(F.ROWS)


@pytest.mark.parametrize("row", F.ROWS, ids=[r.name for r in F.ROWS])
def test_row(row: F.Row) -> None:
    result = process(row.input_frame(), row.tables.copy(), F.LAB_FIB, row.ingress)
    expected = row.expected_frame()
    assert result.frame_out == expected, f"{row.name}\n{F.describe_mismatch(expected, result.frame_out)}"
    assert (result.verdict, result.reason) == (row.verdict, row.reason)
    assert result.egress_ifindex == row.expected_egress()
    assert result.reason.verdict is result.verdict


def test_rows_that_rewrite_really_change_bytes() -> None:
    # a row whose "expected" equals its input while claiming a rewrite would test nothing
    for row in F.ROWS:
        if row.expected is not None:
            assert row.expected_frame() != row.input_frame(), row.name


def test_zero_sum_row_really_exercises_the_0xffff_rule() -> None:
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether

    row = next(r for r in F.ROWS if "computed 0" in r.name)
    assert Ether(row.expected_frame())[UDP].chksum == 0xFFFF


def test_drop_and_pass_leave_the_frame_alone() -> None:
    for row in F.ROWS:
        if row.verdict is Verdict.DROP or row.reason in (Reason.PASS_NOT_IPV4, Reason.PASS_FLOW_MISS):
            assert process(row.input_frame(), row.tables.copy(), F.LAB_FIB, row.ingress).frame_out == row.input_frame()


def test_rows_that_schedule_in_xdp_create_exactly_their_entries() -> None:
    """A first packet XDP schedules creates its flow (and for masquerading its reverse entry) in the
    tables, stamped with the clock given (made anew where a SYN reuses a closed flow's 5-tuple);
    every other row creates nothing."""
    from lb.model import Forwarding
    from lb.tables import reverse_key

    scheduled = 0
    for row in F.ROWS:
        tables = row.tables.copy()
        result = process(row.input_frame(), tables, F.LAB_FIB, row.ingress, now_ns=123)
        new_flows = {k for k, e in tables.flows.items() if row.tables.flows.get(k) != e}
        new_reverse = {k for k, e in tables.reverse.items() if row.tables.reverse.get(k) != e}
        if result.scheduled is None:
            assert (new_flows, new_reverse) == (set(), set()), row.name
            continue
        scheduled += 1
        (key,) = new_flows
        entry = tables.flows[key]
        assert (entry.real_id, entry.last_seen_ns) == (result.scheduled, 123), row.name
        real = tables.reals[entry.real_id]
        expect_reverse = {reverse_key(key, real)} if real.forwarding is Forwarding.MASQ else set()
        assert new_reverse == expect_reverse, row.name
        assert result.counted is not None and result.counted.real_id == entry.real_id, row.name
    assert scheduled == 9 + 6  # the mh rows, and the sh, dh and mh-fallback rows


def test_a_reused_closed_flow_loses_its_old_entries_before_xdp_schedules_it() -> None:
    """forget_flow(): the closed flow's reverse entry goes, also where no new flow is created."""
    for name in ("SYN on a flow that saw FIN → old entries go", "budget spent → PASS (old entries gone)"):
        row = next(r for r in F.ROWS if name in r.name)
        tables = row.tables.copy()
        old = set(row.tables.reverse)
        process(row.input_frame(), tables, F.LAB_FIB, row.ingress)
        assert old and not old & set(tables.reverse), row.name


def test_row_tables_are_left_alone_by_the_model() -> None:
    row = next(r for r in F.ROWS if r.name.startswith("mh in XDP: masq SYN"))
    before = (dict(row.tables.flows), dict(row.tables.reverse))
    process(row.input_frame(), row.tables.copy(), F.LAB_FIB, row.ingress)
    assert (row.tables.flows, row.tables.reverse) == before


def test_mismatch_report_is_field_by_field() -> None:
    a, b = F.ROWS[0].input_frame(), F.ROWS[0].expected_frame()
    report = F.describe_mismatch(a, b)
    assert "≠" in report and "dst" in report and "\\x" not in report.splitlines()[0]
