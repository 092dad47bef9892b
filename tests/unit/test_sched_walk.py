"""lc, wlc, sed, nq, fo, ovf as XDP runs them: the row each writes (lb.sched.walk), and the model of
XDP's walk (lb.rewrite.schedule.pick_least, the twin of pick_least() in bpf/lb_kern.c) choosing what
the Python scheduler chooses from the same weights, availability and counts (tests/bpf/test_least_xdp.py
holds the program to both)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings, strategies as st

from lb.model import FlowKey, Protocol, RealKey
from lb.rewrite.schedule import pick_least
from lb.sched import get_scheduler
from lb.sched.base import Destination
from lb.sched.walk import WalkScheduler
from lb.sched.xdpkind import WALK_MAX, XdpKind
from lb.tables import RealSched, ServiceEntry, Tables

KINDS = {"lc": XdpKind.LC, "wlc": XdpKind.WLC, "sed": XdpKind.SED, "nq": XdpKind.NQ, "fo": XdpKind.FO,
         "ovf": XdpKind.OVF}
FLOW = FlowKey(Protocol.TCP, IPv4Address("10.3.0.5"), 40000, IPv4Address("10.0.0.100"), 80)


def _dests(n: int) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.1.{i // 250}.{i % 250 + 1}"), 80)) for i in range(n)]


@pytest.mark.parametrize("name", KINDS)
def test_the_row_is_the_reals_in_order_up_to_walk_max(name: str) -> None:
    sched = get_scheduler(name)
    assert isinstance(sched, WalkScheduler) and sched.xdp_kind is KINDS[name]
    dests = _dests(WALK_MAX + 1)
    dests[1].weight = 0  # an unavailable real stays in the row: availability is real_sched's
    ids = [7 + 3 * i for i in range(WALK_MAX + 1)]
    sched.update(dests[:WALK_MAX])
    assert sched.xdp_row(dests[:WALK_MAX], ids[:WALK_MAX]) == ids[:WALK_MAX]
    sched.update(dests)
    assert sched.xdp_row(dests, ids) is None  # too long a walk: the daemon decides


_weight = st.one_of(st.integers(0, 4), st.integers(0, 65535))
_count = st.one_of(st.integers(-2, 4), st.integers(0, 1 << 24))
_mostly = st.sampled_from([True, True, True, False])
_real = st.tuples(_weight, _count, _count, _mostly, _mostly.map(lambda b: not b))


@settings(max_examples=400)
@given(name=st.sampled_from(sorted(KINDS)), reals=st.lists(_real, max_size=WALK_MAX))
def test_the_model_of_the_walk_chooses_what_the_scheduler_chooses(name: str, reals: list) -> None:
    """Counts below 0 are in the map only (a decrement that raced a sweep): the walk reads them as 0,
    and the daemon's own counts never go below it."""
    sched = get_scheduler(name)
    dests = _dests(len(reals))
    for d, (w, a, n, healthy, overloaded) in zip(dests, reals, strict=True):
        d.weight, d.active, d.inactive, d.healthy, d.overloaded = w, max(0, a), max(0, n), healthy, overloaded
    ids = [10 + i for i in range(len(reals))]
    sched.update(dests)
    row = sched.xdp_row(dests, ids)
    assert row is not None
    tables = Tables(walks={3: row},
                    real_sched={rid: RealSched(d.weight, d.available) for rid, d in zip(ids, dests, strict=True)},
                    conns={rid: (a, n) for rid, (_, a, n, _, _) in zip(ids, reals, strict=True)})
    chosen = pick_least(ServiceEntry(1, 0, KINDS[name], 3), tables)
    expected = sched.schedule(FLOW, dests)
    assert chosen == (ids[dests.index(expected)] if expected is not None else 0)


def test_a_missing_row_or_real_reads_as_nothing_available() -> None:
    service = ServiceEntry(1, 0, XdpKind.WLC, 5)
    assert pick_least(service, Tables()) == 0
    assert pick_least(service, Tables(walks={5: [9]})) == 0  # no real_sched entry: weight 0, unavailable
    assert pick_least(service, Tables(walks={5: [9]}, real_sched={9: RealSched(2, True)})) == 9
