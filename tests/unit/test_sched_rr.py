"""rr against hand-worked sequences (ip_vs_rr.c)."""

from ipaddress import IPv4Address

import pytest

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination

FLOW = FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), 40000, IPv4Address("10.0.0.100"), 80)


def make(weights: str) -> list[Destination]:
    """'A1 B0 C1' -> Destinations named A, B, C (10.0.0.1…) with those weights."""
    out = []
    for i, tok in enumerate(weights.split()):
        d = Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=int(tok[1:]))
        d.name = tok[0]  # type: ignore[attr-defined]
        out.append(d)
    return out


def run(sched, dests, n):
    return "".join(getattr(sched.schedule(FLOW, dests), "name", "-") for _ in range(n))


@pytest.mark.parametrize(
    ("weights", "down", "expected"),
    [
        ("A1 B1 C1", "", "ABCABCA"),
        ("A1 B0 C1 D1", "", "ACDACDA"),  # weight 0: quiescent, skipped
        ("A5 B1 C9", "", "ABCABC"),  # rr ignores weights
        ("A1 B1 C1", "B", "ACACAC"),  # unhealthy skipped
        ("A0 B0", "", "---"),
        ("", "", "--"),
    ],
)
def test_rr_sequence(weights, down, expected):
    dests = make(weights)
    for d in dests:
        d.healthy = d.name not in down  # type: ignore[attr-defined]
    rr = get_scheduler("rr")
    rr.update(dests)
    assert run(rr, dests, len(expected)) == expected


def test_rr_overloaded_skipped_then_back():
    dests = make("A1 B1 C1")
    rr = get_scheduler("rr")
    rr.update(dests)
    dests[1].overloaded = True
    assert run(rr, dests, 3) == "ACA"
    dests[1].overloaded = False
    assert run(rr, dests, 3) == "BCA"


def test_rr_removing_the_cursor_real_continues_after_its_predecessor():
    dests = make("A1 B1 C1 D1")
    rr = get_scheduler("rr")
    rr.update(dests)
    assert run(rr, dests, 3) == "ABC"  # cursor on C
    without_c = [d for d in dests if d.name != "C"]  # type: ignore[attr-defined]
    rr.update(without_c)  # ip_vs_rr_del_dest: cursor steps back to B
    assert run(rr, without_c, 3) == "DAB"


def test_rr_adding_a_real_keeps_the_cursor():
    dests = make("A1 B1 C1")
    rr = get_scheduler("rr")
    rr.update(dests)
    assert run(rr, dests, 2) == "AB"
    more = dests + make("A1 B1 C1 D1")[3:]
    rr.update(more)
    assert run(rr, more, 4) == "CDAB"
