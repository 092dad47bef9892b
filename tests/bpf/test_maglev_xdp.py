"""Maglev in XDP: the program hashes a flow exactly as lb.sched.mh does, and the ring map round-trips.

The fixture rows (fixtures.py, "mh in XDP") pin down single packets byte for byte; here many random
clients are scheduled by the program and by MaglevHashing, which must pick the same real every time.
"""

from __future__ import annotations

import random
import time
from ipaddress import IPv4Address

import fixtures as F
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from lb.datapath import progrun
from lb.model import FlowKey, Forwarding, Protocol, RealKey, ServiceKey
from lb.rewrite import Reason
from lb.sched.base import Destination
from lb.sched.mh import MaglevHashing
from lb.sched.xdpkind import XdpKind
from lb.tables import RING_SIZE, SVC_F_HASH_PORT, RealEntry, ServiceEntry, Tables

pytestmark = [pytest.mark.root, pytest.mark.bpf]

VIP = IPv4Address("10.0.0.110")
FIRST_ID = 30  # real ids 30..37: eight direct-routed reals nobody answers for (no neighbours)


def _ring_tables(port: bool, weights: list[int]) -> tuple[Tables, MaglevHashing, list[Destination]]:
    sched = MaglevHashing(frozenset({"mh-port"}) if port else frozenset())
    dests = [Destination(RealKey(IPv4Address(f"10.1.0.{100 + i}"), 80), w) for i, w in enumerate(weights)]
    sched.update(dests)
    tables = Tables(tx_ports={F.A0, F.B0})
    for i, dest in enumerate(dests):
        tables.reals[FIRST_ID + i] = RealEntry(dest.key.address, 80, Forwarding.ROUTE)
    flags = SVC_F_HASH_PORT if port else 0
    tables.services[ServiceKey(Protocol.TCP, VIP, 80)] = ServiceEntry(1, flags, XdpKind.MH, 3)
    tables.services[ServiceKey(Protocol.UDP, VIP, 53)] = ServiceEntry(2, flags, XdpKind.MH, 3)
    tables.rings[3] = [FIRST_ID + i if i >= 0 else 0 for i in sched.table]
    return tables, sched, dests


@pytest.mark.parametrize("port", [False, True], ids=["mh", "mh-port"])
def test_xdp_picks_the_real_maglevhashing_picks(datapath, port: bool) -> None:
    tables, sched, dests = _ring_tables(port, [1, 2, 3, 1, 1, 5, 1, 2])
    datapath.maps.write(tables)
    datapath.maps.reset_counters((), range(64))
    rng = random.Random(7)
    picked: dict[int, int] = {}
    for _ in range(300):
        client = IPv4Address(rng.randrange(0x0A000000, 0x0B000000))  # anywhere in 10/8
        sport = rng.randrange(1, 65536)
        udp = rng.random() < 0.3
        flow = FlowKey(Protocol.UDP if udp else Protocol.TCP, client, sport, VIP, 53 if udp else 80)
        l4 = UDP(sport=sport, dport=53) if udp else TCP(sport=sport, dport=80, flags="S")
        frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP)) / l4)
        progrun.run(datapath.prog_fd, frame, ingress_ifindex=F.A0)
        entry = datapath.maps.get_flow(flow)
        expected = sched.schedule(flow, dests)
        assert entry is not None and expected is not None, flow
        assert dests[entry.real_id - FIRST_ID] is expected, (flow, sched.slot(flow))
        picked[entry.real_id] = picked.get(entry.real_id, 0) + 1
    assert len(picked) == len(dests)  # every real was hit: the test covers the whole ring
    conns = datapath.maps.hash_conns(range(64))
    assert {k: v for k, v in conns.items() if v} == picked


def test_a_real_python_would_not_pick_is_left_to_python(datapath) -> None:
    """The daemon writes 0 for slots whose real is unavailable (weight 0, down): those flows pass."""
    tables, sched, _dests = _ring_tables(False, [1, 1, 1])
    tables.rings[3] = [0 if i == 1 else FIRST_ID + i for i in sched.table]
    datapath.maps.write(tables)
    datapath.maps.reset_counters((), range(64))
    rng = random.Random(11)
    for _ in range(60):
        client = IPv4Address(rng.randrange(0x0A030000, 0x0A040000))
        flow = FlowKey(Protocol.TCP, client, 40000, VIP, 80)
        frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP))
                      / TCP(sport=40000, dport=80, flags="S"))
        progrun.run(datapath.prog_fd, frame, ingress_ifindex=F.A0)
        created = datapath.maps.get_flow(flow)
        if sched.table[sched.slot(flow)] == 1:
            assert created is None
        else:
            assert created is not None and created.real_id == FIRST_ID + sched.table[sched.slot(flow)]
    counts = datapath.maps.reason_counts()
    assert counts[Reason.PASS_HASH_EMPTY] > 0 and counts[Reason.PASS_HASH_EMPTY] + sum(
        datapath.maps.hash_conns(range(64)).values()) == 60


def test_ring_round_trip_and_clear(datapath) -> None:
    tables, _, _ = _ring_tables(True, [1, 2, 3])
    maps = datapath.maps
    maps.write(tables)
    assert maps.read() == tables
    maps.write(Tables())
    assert maps.read_ring(3) == [0] * RING_SIZE  # a row no service names any more is cleared


def test_a_ring_is_one_quick_write(datapath) -> None:
    """A ring is one map value: one update (well under a millisecond of syscall here; the Python list
    to array conversion dominates), where 65537 array entries took 30 ms batched, 0.4 s one by one."""
    ids = [1 + i % 7 for i in range(RING_SIZE)]
    started = time.perf_counter()
    datapath.maps.set_ring(0, ids)
    took = time.perf_counter() - started
    assert datapath.maps.read_ring(0) == ids
    assert took < 0.05, took
    datapath.maps.clear_ring(0)


def test_rows_and_sizes_are_checked(datapath) -> None:
    from lb.datapath.maps import MapError

    with pytest.raises(MapError, match="MAX_HASHED_SERVICES"):
        datapath.maps.set_ring(datapath.maps.max_hashed_services, [0] * RING_SIZE)
    with pytest.raises(MapError, match="slots"):
        datapath.maps.set_ring(0, [0] * 10)
