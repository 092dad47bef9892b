"""lb.bench.newflows: when a burst counts as over, and the row names the targets read (pure)."""

from __future__ import annotations

import time

from lb.bench import newflows, tcp
from lb.bench.results import TARGETS


def _counter(schedule: list[tuple[float, int]]):
    """A reading that becomes value v once t seconds have passed, for each (t, v)."""
    start = time.monotonic()

    def read() -> int:
        elapsed = time.monotonic() - start
        return max([v for t, v in schedule if elapsed >= t], default=0)

    return read, start


def test_a_burst_ends_when_every_answer_came() -> None:
    read, start = _counter([(0.05, 40), (0.1, 100)])
    last, t_last = newflows.await_answers(read, 0, 100, deadline=start + 5, quiet_s=0.5)
    assert last == 100
    assert t_last - start < 0.3


def test_an_answer_after_the_quiet_time_is_not_part_of_the_burst() -> None:
    # 90 answers at once, then a resent SYN-ACK's reset a second later: the burst took ~0.05 s
    read, start = _counter([(0.05, 90), (1.0, 91)])
    last, t_last = newflows.await_answers(read, 0, 100, deadline=start + 5, quiet_s=0.3)
    assert last == 90
    assert t_last - start < 0.3


def test_targets_and_their_references_name_rows_the_cases_make() -> None:
    made = {f"newflows/{v.name}" for v in newflows.VARIANTS}
    made |= {f"tcp/{v.name} {unit}" for v in tcp.VARIANTS for unit, _, _ in tcp.MODES if unit in v.units}
    for target in TARGETS:
        for key in (target.num, target.den, target.reference and target.reference.num,
                    target.reference and target.reference.den):
            if key and key.split("/")[0] in ("newflows", "tcp"):
                assert key in made, f"{target.figure}: no case makes {key}"


def test_in_process_syns_are_new_flows_to_the_vip() -> None:
    from lb.balancer.firstpacket import read_packet
    from lb.bench.firstpath_cost import syns

    packets = [read_packet(p) for p in syns("10.9.0.100", 3, 59_999)]
    assert all(q is not None and q.is_syn for q in packets)
    flows = [q.flow for q in packets if q is not None]
    assert len(set(flows)) == 3  # port 61023, then 1024 and 1025 on the next source address
    assert {str(f.daddr) for f in flows} == {"10.9.0.100"} and {f.dport for f in flows} == {80}
    assert [f.sport for f in flows] == [61023, 1024, 1025]
