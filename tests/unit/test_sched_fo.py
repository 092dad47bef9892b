"""fo and ovf (ip_vs_fo.c, ip_vs_ovf.c)."""

from ipaddress import IPv4Address

import pytest

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination

FLOW = FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), 40000, IPv4Address("10.0.0.100"), 80)


def make(rows):
    """rows: (weight, active, state) with state '' up, 'x' overloaded, 'd' down."""
    return [
        Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=w, active=a,
                    overloaded=s == "x", healthy=s != "d")
        for i, (w, a, s) in enumerate(rows)
    ]


def pick(name, rows):
    dests = make(rows)
    got = get_scheduler(name).schedule(FLOW, dests)
    return None if got is None else "ABCD"[dests.index(got)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(5, 0, ""), (10, 0, ""), (10, 0, "")], "B"),  # highest weight, first on ties
        ([(5, 0, ""), (10, 0, "d"), (10, 0, "")], "C"),  # primary down -> standby
        ([(5, 0, ""), (10, 0, "x"), (10, 0, "x")], "A"),
        ([(5, 0, ""), (0, 0, ""), (0, 0, "")], "A"),
        ([(5, 99, ""), (1, 0, "")], "A"),  # fo ignores load
        ([(0, 0, ""), (3, 0, "d")], None),
    ],
)
def test_fo(rows, expected):
    assert pick("fo", rows) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(2, 0, ""), (1, 0, "")], "A"),
        ([(2, 2, ""), (1, 0, "")], "A"),  # kernel skips only active > weight: 2 > 2 is false
        ([(2, 3, ""), (1, 0, "")], "B"),  # A overflowed
        ([(2, 3, ""), (1, 2, "")], None),  # both overflowed
        ([(3, 0, ""), (3, 0, "")], "A"),  # tie -> first
        ([(3, 0, "x"), (3, 0, ""), (1, 0, "")], "B"),
        ([(0, 0, ""), (1, 1, "")], "B"),  # weight 0 quiescent
    ],
)
def test_ovf(rows, expected):
    assert pick("ovf", rows) == expected
