"""lc, wlc, sed, nq: choices for given active/inactive counts (ip_vs_lc.c, _wlc.c, _sed.c, _nq.c).

Each row: reals as (weight, active, inactive[, flag]) with flag "x" unavailable (overloaded),
and the expected choice per scheduler. Worked by hand:
lc overhead = 256*active + inactive; wlc = overhead/weight; sed = (active+1)/weight;
nq = the first idle (active 0) real, else sed. Ties: the earliest real.
"""

from ipaddress import IPv4Address

import pytest

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination

FLOW = FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), 40000, IPv4Address("10.0.0.100"), 80)


def make(rows):
    out = []
    for i, row in enumerate(rows):
        w, a, ina, *flag = row
        out.append(
            Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=w, active=a, inactive=ina,
                        overloaded=bool(flag and flag[0] == "x"))
        )
    return out


CASES = [
    # rows                                   lc   wlc  sed  nq
    # lc: A 256, B 10, C 300 -> B. wlc: 256/1, 10/1, 300/1 -> B. sed: 2/1, 1/1, 1/1 -> B (first).
    # nq: B is idle -> B.
    ([(1, 1, 0), (1, 0, 10), (1, 0, 300)], "B", "B", "B", "B"),
    # Equal loads: the first wins everywhere.
    ([(1, 0, 5), (1, 0, 5)], "A", "A", "A", "A"),
    # Weights matter for wlc/sed, not lc: A w1 256, B w3 512. wlc 256*3=768 > 512*1 -> B.
    # sed: (1+1)/1=2 vs (2+1)/3=1 -> B. nq: none idle -> sed -> B.
    ([(1, 1, 0), (3, 2, 0)], "A", "B", "B", "B"),
    # Cross-multiplied tie: A w2 512 vs B w1 256: 512*1 > 256*2 is false -> A stays.
    # sed: A (2+1)/2=1.5, B (1+1)/1=2 -> A. nq -> A.
    ([(2, 2, 0), (1, 1, 0)], "B", "A", "A", "A"),
    # sed ignores inactive: A (0 active, 1000 inactive) vs B (1 active). lc: 1000 vs 256 -> B;
    # wlc -> B; sed: 1 vs 2 -> A; nq: A idle -> A.
    ([(1, 0, 1000), (1, 1, 0)], "B", "B", "A", "A"),
    # nq's idle rule beats weight: A w1 a2, B w10 a3, C w1 a0. sed: 3, 0.4, 1 -> B; nq: C idle -> C.
    # lc: 512, 768, 0 -> C. wlc: 512/1, 768/10, 0/1 -> C.
    ([(1, 2, 0), (10, 3, 0), (1, 0, 0)], "C", "C", "B", "C"),
    # An idle but overloaded real is not taken: nq falls back to sed -> B.
    ([(1, 2, 0), (10, 3, 0), (1, 0, 0, "x")], "A", "B", "B", "B"),
    # sed tie: A w1 a1 -> 2/1, B w2 a3 -> 4/2: 2*2 > 4*1 false -> A.
    ([(1, 1, 0), (2, 3, 0)], "A", "A", "A", "A"),
    # Quiescent (weight 0) never chosen, even when idle.
    ([(0, 0, 0), (1, 5, 5)], "B", "B", "B", "B"),
    # Nothing available.
    ([(0, 0, 0), (1, 0, 0, "x")], None, None, None, None),
]


@pytest.mark.parametrize(("rows", "lc", "wlc", "sed", "nq"), CASES)
def test_least_connection_family(rows, lc, wlc, sed, nq):
    dests = make(rows)
    for name, expected in (("lc", lc), ("wlc", wlc), ("sed", sed), ("nq", nq)):
        s = get_scheduler(name)
        s.update(dests)
        got = s.schedule(FLOW, dests)
        letter = None if got is None else "ABC"[dests.index(got)]
        assert letter == expected, f"{name} chose {letter}, expected {expected} for {rows}"


def test_unhealthy_is_skipped():
    dests = make([(1, 0, 0), (1, 9, 0)])
    dests[0].healthy = False
    for name in ("lc", "wlc", "sed", "nq"):
        assert get_scheduler(name).schedule(FLOW, dests) is dests[1]
