"""mh: Maglev lookup table (NSDI 2016 §3.4, ip_vs_mh.c): balance, weights, disruption, lookup."""

from collections import Counter
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings, strategies as st

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination
from lb.sched.hashing import MH_SEED1, MH_SEED2, fmix32
from lb.sched.mh import EMPTY, MaglevHashing, permutation, populate, turns_for

VIP = IPv4Address("10.0.0.100")
SMALL_M = 4093  # prime; enough for properties that hold whenever M >> N


def flow(saddr: str, sport: int = 40000) -> FlowKey:
    return FlowKey(Protocol.TCP, IPv4Address(saddr), sport, VIP, 80)


def reals(n: int, weights=None) -> list[Destination]:
    ws = weights or [1] * n
    return [Destination(RealKey(IPv4Address(0x0A010000 + i), 8080), weight=w) for i, w in zip(range(n), ws)]


def build(dests, m=SMALL_M, flags=frozenset()) -> MaglevHashing:
    s = MaglevHashing(flags, m=m)
    s.update(dests)
    return s


def test_fmix32_and_permutation_are_pinned():
    # Golden values: a C (XDP) reimplementation of lb.sched.hashing must give the same.
    assert fmix32(0) == 0
    assert fmix32(1) == 0x514E28B7
    assert fmix32(0xDEADBEEF) == 0x0DE5C6A9
    key = RealKey(IPv4Address("10.1.0.0"), 8080)
    v = 0x0A010000 + 8080
    assert permutation(key, 65537) == (fmix32(v ^ MH_SEED1) % 65537, fmix32(v ^ MH_SEED2) % 65536 + 1)


@pytest.mark.parametrize(
    ("weights", "turns"),
    [
        ([1, 1, 1], [1, 1, 1]),
        ([2, 4, 6], [1, 2, 3]),  # divided by the gcd
        ([1, 1000], [1, 62]),  # 1000 has 10 bits > 6: shifted right by 4 (ip_vs_mh_shift_weight)
        ([0, 3], [0, 1]),
        ([0, 0], [0, 0]),
        ([], []),
    ],
)
def test_turns(weights, turns):
    assert turns_for(weights) == turns


def test_each_real_within_one_percent_of_its_fair_share_at_65537():
    dests = reals(100)
    s = get_scheduler("mh")  # default M
    s.update(dests)
    assert s.m == 65537 and EMPTY not in s.table
    fair = 65537 / 100
    for count in Counter(s.table).values():
        assert abs(count - fair) <= 0.01 * fair
    # Removing one real of 100 at full size: at most 1.2/N of the table moves besides its own slots.
    s2 = get_scheduler("mh")
    s2.update(dests[:37] + dests[38:])
    assert _moved(dests, s.table, dests[:37] + dests[38:], s2.table, dests[37]) <= 1.2 / 100 * 65537


def test_weighted_shares_are_proportional():
    weights = [1, 2, 3, 4, 0, 6]
    s = build(reals(6, weights))
    counts = Counter(s.table)
    total = sum(weights)
    for i, w in enumerate(weights):
        # by turns, exact up to the last, partial round
        assert abs(counts.get(i, 0) - SMALL_M * w / total) <= max(w, 1), (i, w, counts)
    assert 4 not in counts


def _moved(old_dests, old_table, new_dests, new_table, removed) -> int:
    return sum(
        1
        for a, b in zip(old_table, new_table)
        if old_dests[a].key != removed.key and old_dests[a].key != new_dests[b].key
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 2**32 - 1), min_size=2, max_size=20, unique=True),
    st.integers(0, 10**6),
)
def test_removing_one_real_moves_little(addresses, which):
    # Maglev's guarantee needs M >> N (the paper suggests M > 100 N); here M/N >= 200.
    dests = [Destination(RealKey(IPv4Address(a), 80)) for a in addresses]
    k = which % len(dests)
    rest = dests[:k] + dests[k + 1 :]
    before, after = build(dests), build(rest)
    assert _moved(dests, before.table, rest, after.table, dests[k]) <= 1.2 / len(dests) * SMALL_M


def test_numpy_tail_gives_the_same_table_as_probing(monkeypatch):
    from lb.sched import mh

    perms = [permutation(d.key, SMALL_M) for d in reals(37)]
    turns = turns_for([1, 2, 3] * 12 + [5])
    fast = populate(perms, turns, SMALL_M)
    monkeypatch.setattr(mh, "TAIL_SLOTS", 0)
    assert populate(perms, turns, SMALL_M) == fast


def test_lookup_hashes_the_source_address_and_port_with_flag():
    dests = reals(10)
    s = build(dests)
    f = flow("10.9.8.7", 1234)
    slot = fmix32(int(IPv4Address("10.9.8.7")) ^ MH_SEED1) % SMALL_M
    assert s.slot(f) == slot
    assert s.schedule(f, dests) is dests[s.table[slot]]
    sp = build(dests, flags=frozenset({"mh-port"}))
    assert sp.slot(f) == fmix32((int(IPv4Address("10.9.8.7")) + 1234) ^ MH_SEED1) % SMALL_M
    assert len({s.schedule(flow("10.9.8.7", p), dests).key for p in range(2000, 2100)}) == 1
    assert len({sp.schedule(flow("10.9.8.7", p), dests).key for p in range(2000, 2100)}) > 1


def test_unavailable_and_fallback():
    dests = reals(5)
    plain, fb = build(dests), build(dests, flags=frozenset({"mh-fallback"}))
    f = flow("10.20.30.40")
    victim = plain.schedule(f, dests)
    victim.healthy = False
    assert plain.schedule(f, dests) is None
    got = fb.schedule(f, dests)
    # ip_vs_mh_get_fallback: slots hash(v + (ihash + i) mod M) for i = 0, 1, …; first available
    v, ihash = int(f.saddr), fb.slot(f)
    expected = next(
        dests[fb.table[fmix32(((v + (ihash + i) % SMALL_M) & 0xFFFFFFFF) ^ MH_SEED1) % SMALL_M]]
        for i in range(SMALL_M)
        if dests[fb.table[fmix32(((v + (ihash + i) % SMALL_M) & 0xFFFFFFFF) ^ MH_SEED1) % SMALL_M]].available
    )
    assert got is expected and got is not victim
    for d in dests:
        d.overloaded = True
    assert fb.schedule(f, dests) is None


def test_quiescing_keeps_the_table():
    dests = reals(6)
    s = build(dests)
    table = list(s.table)
    dests[2].weight = 0
    s.update(dests)  # last non-zero weight kept (ip_vs_ctl.c last_weight): nothing moves
    assert s.table == table
    f = next(flow(f"10.5.{i // 250}.{i % 250}") for i in range(5000) if s.table[s.slot(flow(f"10.5.{i // 250}.{i % 250}"))] == 2)
    assert s.schedule(f, dests) is None
    dests[2].weight = 1
    s.update(dests)
    assert s.schedule(f, dests) is dests[2]


def test_table_size_is_a_prime_and_fits_the_reals():
    assert MaglevHashing(m=251).m == 251
    with pytest.raises(ValueError, match="not a prime"):
        MaglevHashing(m=256)
    with pytest.raises(ValueError, match="do not fit"):
        MaglevHashing(m=3).update(reals(5))
    empty = MaglevHashing(m=251)
    empty.update([])
    assert set(empty.table) == {EMPTY} and empty.schedule(flow("10.1.1.1"), []) is None
