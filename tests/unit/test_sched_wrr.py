"""wrr: the kernel's interleaved walk (ip_vs_wrr.c), exact over a cycle."""

from collections import Counter
from functools import reduce
from ipaddress import IPv4Address
from math import gcd

import pytest
from hypothesis import given, settings, strategies as st

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination

FLOW = FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), 40000, IPv4Address("10.0.0.100"), 80)
NAMES = "ABCDEFGH"


def make(*weights: int) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=w) for i, w in enumerate(weights)]


def run(sched, dests, n) -> str:
    out = []
    for _ in range(n):
        d = sched.schedule(FLOW, dests)
        out.append("-" if d is None else NAMES[dests.index(d)])
    return "".join(out)


# Hand-worked with ip_vs_wrr_schedule(): mw = max - (gcd - 1), cw starts at mw, drops by gcd at
# the end of each pass, and a pass takes every real with weight >= cw.
#   3,2,1: cw=3 A | cw=2 A B | cw=1 A B C                      -> A A B A B C
#   4,3,2: cw=4 A | cw=3 A B | cw=2 A B C | cw=1 A B C         -> A A B A B C A B C
#   4,2:   gcd 2, mw 3: cw=3 A | cw=1 A B                      -> A A B
#   1,0,2: weight 0 never matches (cw >= 1): cw=2 C | cw=1 A C -> C A C
@pytest.mark.parametrize(
    ("weights", "cycle"),
    [
        ((3, 2, 1), "AABABC"),
        ((4, 3, 2), "AABABCABC"),
        ((4, 2), "AAB"),
        ((1, 0, 2), "CAC"),
        ((1, 1, 1), "ABC"),
        ((6, 3, 3), "AABC"),  # gcd 3, mw 4: cw=4 A | cw=1 A B C
    ],
)
def test_wrr_cycle_is_the_kernels(weights, cycle):
    dests = make(*weights)
    wrr = get_scheduler("wrr")
    wrr.update(dests)
    assert run(wrr, dests, 3 * len(cycle)) == cycle * 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(1, 4))
def test_wrr_proportions_exact_over_cycles(weights, cycles):
    dests = make(*weights)
    wrr = get_scheduler("wrr")
    wrr.update(dests)
    positive = [w for w in weights if w > 0]
    if not positive:
        assert wrr.schedule(FLOW, dests) is None
        return
    g = reduce(gcd, positive)
    per_cycle = sum(positive) // g
    counts = Counter(run(wrr, dests, cycles * per_cycle))
    assert {NAMES[i]: cycles * w // g for i, w in enumerate(weights) if w > 0} == dict(counts)


def test_wrr_skips_overloaded_and_returns_none_when_all_are():
    dests = make(3, 2, 1)
    wrr = get_scheduler("wrr")
    wrr.update(dests)
    dests[0].overloaded = True
    assert run(wrr, dests, 3) == "BBC"  # cw=2 B | cw=1 B C
    for d in dests:
        d.overloaded = True
    assert run(wrr, dests, 2) == "--"
    for d in dests:
        d.overloaded = False
    assert len(run(wrr, dests, 6)) == 6 and "-" not in run(wrr, dests, 6)


def test_wrr_weight_change_rebuilds():
    dests = make(1, 1)
    wrr = get_scheduler("wrr")
    wrr.update(dests)
    assert run(wrr, dests, 2) == "AB"
    dests[0].weight = 3
    wrr.update(dests)  # ip_vs_wrr_dest_changed: cursor to head, cw clamped to the new mw
    assert Counter(run(wrr, dests, 8)) == Counter("AAABAAAB")
