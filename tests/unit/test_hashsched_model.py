"""sh, dh and mh-fallback decided in XDP, on the pure side: the rows sh and dh give XDP (xdp_row()), and
the rewrite model's picks (lb.rewrite.schedule, the twin of pick_bucket() and pick_mh() in lb_kern.c)
against the Python schedulers' own choice, for random weights, health and flows. tests/bpf/
test_hashsched_xdp.py holds the XDP program to the same schedulers."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

from hypothesis import given, settings, strategies as st

from lb.datapath.sources import source
from lb.model import FlowKey, Protocol, RealKey
from lb.rewrite import schedule
from lb.sched import get_scheduler
from lb.sched.base import Destination, Scheduler
from lb.sched.hashing import MH_SEED1, fold, mh_hash
from lb.sched.mh import MaglevHashing
from lb.sched.sh import TAB_BITS, TAB_SIZE
from lb.sched.xdpkind import BUCKETS, XdpKind
from lb.tables import RING_SIZE, SVC_F_FALLBACK, SVC_F_HASH_PORT, RealSched, ServiceEntry, Tables

CONSTS = source("lb_consts.h").read_text()
ROW = 5
FIRST_ID = 40
VIPS = [IPv4Address(f"10.0.{i}.{7 * i + 1}") for i in range(16)]


def _define(name: str) -> int:
    match = re.search(rf"#define {name} (\d+)\b", CONSTS)
    assert match, name
    return int(match[1])


def test_the_bounds_are_stated_once() -> None:
    assert _define("MH_FALLBACK_PROBES") == schedule.MH_FALLBACK_PROBES
    assert _define("BUCKET_BITS") == TAB_BITS and 1 << TAB_BITS == TAB_SIZE == BUCKETS


def _dests(weights: list[int]) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.1.0.{100 + i}"), 80), w) for i, w in enumerate(weights)]


def test_sh_and_dh_rows_name_every_real_whatever_its_availability() -> None:
    dests = _dests([2, 0, 1])
    dests[2].healthy = False
    ids = [7, 8, 9]
    for name, kind in (("sh", XdpKind.SH), ("dh", XdpKind.DH)):
        sched = get_scheduler(name, frozenset())
        sched.update(dests)
        assert sched.xdp_kind is kind
        row = sched.xdp_row(dests, ids)
        assert row is not None and len(row) == BUCKETS
        assert row == [ids[i] for i in sched.table]
        assert set(row) == {7, 8, 9}  # the quiescent and the unhealthy real keep their buckets
        if kind is XdpKind.DH:
            assert row[:4] == [7, 8, 9, 7]  # one bucket each in turn, weights unused
        else:
            assert row[:4] == [7, 7, 8, 9]  # weight 2 takes two buckets, the quiescent real one
    empty = get_scheduler("sh", frozenset())
    empty.update([])
    assert empty.xdp_row([], []) == [0] * BUCKETS  # no reals: 0, "the daemon decides" (and drops)


def test_mh_fallback_ring_names_unavailable_reals_too() -> None:
    dests = _dests([1, 1, 1])
    plain, fallback = MaglevHashing(), MaglevHashing(frozenset({"mh-fallback"}))
    for sched in (plain, fallback):
        sched.update(dests)
    dests[1].weight = 0
    for sched in (plain, fallback):
        sched.update(dests)
    ids = [1, 2, 3]
    plain_row, fallback_row = plain.xdp_row(dests, ids), fallback.xdp_row(dests, ids)
    assert plain_row is not None and fallback_row is not None
    assert 2 not in plain_row and 2 in fallback_row  # XDP reads availability from real_sched to walk on
    assert [r if r != 2 else 0 for r in fallback_row] == plain_row


def _entry(sched: Scheduler, kind: XdpKind) -> ServiceEntry:
    """The entry the daemon writes for such a service (lb.daemon.kernelsched.base_entry's flag rule)."""
    flags = 0
    if sched.port_flag is not None and sched.port_flag in sched.flags:
        flags |= SVC_F_HASH_PORT
    if sched.fallback_flag is not None and sched.fallback_flag in sched.flags:
        flags |= SVC_F_FALLBACK
    return ServiceEntry(1, flags, kind, ROW)


def _mh_probes_needed(sched: MaglevHashing, flow: FlowKey, dests: list[Destination]) -> int | None:
    """How many probes the Python walk makes before it finds an available real (None: never)."""
    ihash = sched.slot(flow)
    for i in range(sched.m):
        i_dest = sched.table[sched.slot(flow, (ihash + i) % sched.m)]
        if i_dest < 0:
            return None
        if dests[i_dest].available:
            return i + 1
    return None


SCHEDULERS = [("sh", ()), ("sh", ("sh-port",)), ("sh", ("sh-fallback",)), ("sh", ("sh-fallback", "sh-port")),
              ("dh", ()), ("mh", ("mh-fallback",)), ("mh", ("mh-fallback", "mh-port"))]


@st.composite
def situations(draw: st.DrawFn) -> tuple[Scheduler, list[Destination]]:
    name, flags = draw(st.sampled_from(SCHEDULERS))
    sched = get_scheduler(name, frozenset(flags))
    weights = draw(st.lists(st.integers(0, 4), min_size=0, max_size=6))
    dests = _dests(weights)
    sched.update(dests)
    # then some changes: a weight (update() follows, as the daemon's), health (no update)
    for _ in range(draw(st.integers(0, 4))):
        if not dests:
            break
        d = draw(st.sampled_from(dests))
        if draw(st.booleans()):
            d.weight = draw(st.integers(0, 4))
            sched.update(dests)
        else:
            d.healthy = not d.healthy
    return sched, dests


@settings(max_examples=150, deadline=None)
@given(situation=situations(), clients=st.lists(st.tuples(st.integers(0x0A000000, 0x0AFFFFFF), st.integers(1, 65535),
                                                           st.sampled_from(VIPS)), min_size=1, max_size=20))
def test_the_model_picks_what_the_scheduler_picks(situation: tuple[Scheduler, list[Destination]],
                                                   clients: list[tuple[int, int, IPv4Address]]) -> None:
    sched, dests = situation
    kind = sched.xdp_kind
    ids = [FIRST_ID + i for i in range(len(dests))]
    row = sched.xdp_row(dests, ids)
    assert row is not None
    tables = Tables()
    if kind is XdpKind.MH:
        tables.rings[ROW] = row
    else:
        tables.buckets[ROW] = row
    tables.real_sched = {rid: RealSched(d.weight, d.available) for rid, d in zip(ids, dests, strict=True)}
    entry = _entry(sched, kind)
    for client, sport, vip in clients:
        flow = FlowKey(Protocol.TCP, IPv4Address(client), sport, vip, 80)
        picked = schedule.pick_real(flow, entry, tables)
        expected = sched.schedule(flow, dests)
        if picked:
            assert expected is dests[picked - FIRST_ID], (flow, picked)
        elif expected is not None:
            # only mh's walk is bounded: the daemon decides past MH_FALLBACK_PROBES probes
            assert isinstance(sched, MaglevHashing), flow
            needed = _mh_probes_needed(sched, flow, dests)
            assert needed is not None and needed > schedule.MH_FALLBACK_PROBES, (flow, needed)


def probe_slots(flow: FlowKey, count: int) -> list[int]:
    """The slots the mh-fallback walk of `flow` probes, in order (no mh-port)."""
    v = fold(flow.saddr)
    ihash = mh_hash(v, MH_SEED1) % RING_SIZE
    return [mh_hash((v + (ihash + i) % RING_SIZE) & 0xFFFFFFFF, MH_SEED1) % RING_SIZE for i in range(count)]


def bound_tables(flow: FlowKey, probe: int) -> Tables:
    """A ring of the unavailable real 41 but for the slot of the walk's probe number `probe` (from 0),
    which names the available 42."""
    ring = [41] * RING_SIZE
    slots = probe_slots(flow, probe + 1)
    assert slots[probe] not in slots[:probe] and slots[probe] != mh_hash(fold(flow.saddr), MH_SEED1) % RING_SIZE
    ring[slots[probe]] = 42
    tables = Tables(rings={ROW: ring})
    tables.real_sched = {41: RealSched(1, False), 42: RealSched(1, True)}
    return tables


def test_the_mh_walk_is_bounded() -> None:
    """Probe number MH_FALLBACK_PROBES - 1 is the last XDP makes: a real found there is taken, one
    found a probe later is left to the daemon (0), whose walk goes on over the whole ring."""
    flow = FlowKey(Protocol.TCP, IPv4Address("10.3.0.5"), 40000, VIPS[0], 80)
    entry = ServiceEntry(1, SVC_F_FALLBACK, XdpKind.MH, ROW)
    last = schedule.MH_FALLBACK_PROBES - 1
    assert schedule.pick_real(flow, entry, bound_tables(flow, 0)) == 42
    assert schedule.pick_real(flow, entry, bound_tables(flow, last)) == 42
    assert schedule.pick_real(flow, entry, bound_tables(flow, last + 1)) == 0
    # without mh-fallback an unavailable real's slot is the daemon's (its ring would hold 0 there)
    assert schedule.pick_real(flow, ServiceEntry(1, 0, XdpKind.MH, ROW), bound_tables(flow, 0)) == 41
