"""sh, dh and mh-fallback decided in XDP: for random weights, health changes and flows, the program
(BPF_PROG_RUN) gives a first packet the real the Python scheduler (lb.sched.sh, dh, mh) picks, from
the rows the scheduler's xdp_row() wrote and the availability in real_sched, or passes it up
exactly when Python would drop it (or, for mh, when its walk is past XDP's bound). The rewrite
model's pick (lb.rewrite.schedule) is held to the same flows."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import fixtures as F
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from lb.datapath import progrun
from lb.model import FlowKey, Forwarding, Protocol, RealKey, ServiceKey
from lb.rewrite import Reason, schedule
from lb.sched import get_scheduler
from lb.sched.base import Destination, Scheduler
from lb.sched.hashing import MH_SEED1, fold, hash_32, mh_hash
from lb.sched.mh import MaglevHashing
from lb.sched.xdpkind import XdpKind
from lb.tables import RING_SIZE, SVC_F_FALLBACK, SVC_F_HASH_PORT, RealEntry, RealSched, ServiceEntry, Tables

pytestmark = [pytest.mark.root, pytest.mark.bpf]

ROW = 2
FIRST_ID = 30  # real ids 30..37: direct-routed reals nobody answers for (the flow is what counts)
VIPS = [IPv4Address(f"10.0.0.{120 + i}") for i in range(8)]  # dh hashes the VIP: several services
SCHEDULERS = [("sh", ()), ("sh", ("sh-port",)), ("sh", ("sh-fallback",)), ("sh", ("sh-fallback", "sh-port")),
              ("dh", ()), ("mh", ("mh-fallback",)), ("mh", ("mh-fallback", "mh-port"))]


def _dests(weights: list[int]) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.1.0.{100 + i}"), 80), w) for i, w in enumerate(weights)]


def _entry(service_id: int, sched: Scheduler) -> ServiceEntry:
    flags = 0
    if sched.port_flag is not None and sched.port_flag in sched.flags:
        flags |= SVC_F_HASH_PORT
    if sched.fallback_flag is not None and sched.fallback_flag in sched.flags:
        flags |= SVC_F_FALLBACK
    return ServiceEntry(service_id, flags, sched.xdp_kind, ROW)


def _tables(sched: Scheduler, dests: list[Destination]) -> Tables:
    """What the daemon writes for services of this scheduler on VIPS:80 (TCP) and :53 (UDP)."""
    ids = [FIRST_ID + i for i in range(len(dests))]
    tables = Tables(tx_ports={F.A0, F.B0})
    for rid, dest in zip(ids, dests, strict=True):
        tables.reals[rid] = RealEntry(dest.key.address, 80, Forwarding.ROUTE)
        tables.real_sched[rid] = RealSched(dest.weight, dest.available)
    for i, vip in enumerate(VIPS):
        tables.services[ServiceKey(Protocol.TCP, vip, 80)] = _entry(1 + i, sched)
        tables.services[ServiceKey(Protocol.UDP, vip, 53)] = _entry(11 + i, sched)
    row = sched.xdp_row(dests, ids)
    assert row is not None
    if sched.xdp_kind is XdpKind.MH:
        tables.rings[ROW] = row
    else:
        tables.buckets[ROW] = row
    return tables


def _frame(flow: FlowKey) -> bytes:
    l4 = UDP(sport=flow.sport, dport=flow.dport) if flow.proto is Protocol.UDP else TCP(
        sport=flow.sport, dport=flow.dport, flags="S")
    return bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(flow.saddr), dst=str(flow.daddr)) / l4)


def _check(datapath, sched: Scheduler, dests: list[Destination], flows: list[FlowKey]) -> dict[str, int]:
    tables = _tables(sched, dests)
    datapath.maps.write(tables)
    outcome = {"xdp": 0, "up": 0}
    for flow in flows:
        progrun.run(datapath.prog_fd, _frame(flow), ingress_ifindex=F.A0)
        created = datapath.maps.get_flow(flow)
        expected = sched.schedule(flow, dests)
        model = schedule.pick_real(flow, tables.services[flow.service_key], tables)
        got = created.real_id if created is not None else 0
        assert got == model, (flow, got, model)
        if got:
            outcome["xdp"] += 1
            assert expected is dests[got - FIRST_ID], (flow, got, expected)
        else:
            outcome["up"] += 1
            # passed up: Python drops it, or (mh only) finds a real past XDP's bounded walk
            assert expected is None or isinstance(sched, MaglevHashing), (flow, expected)
    return outcome


@st.composite
def flows(draw: st.DrawFn) -> list[FlowKey]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        udp = draw(st.booleans())
        out.append(FlowKey(Protocol.UDP if udp else Protocol.TCP, IPv4Address(draw(st.integers(0x0A030000, 0x0A03FFFF))),
                           draw(st.integers(1, 65535)), draw(st.sampled_from(VIPS)), 53 if udp else 80))
    return out


EVENTS = st.tuples(st.integers(0, 7), st.sampled_from(["weight", "health"]), st.integers(0, 4))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(SCHEDULERS), weights=st.lists(st.integers(0, 4), min_size=1, max_size=8),
       events=st.lists(EVENTS, max_size=4), batches=st.lists(flows(), min_size=5, max_size=5))
def test_xdp_picks_what_the_scheduler_picks(datapath, which: tuple[str, tuple[str, ...]], weights: list[int],
                                            events: list[tuple[int, str, int]], batches: list[list[FlowKey]]) -> None:
    sched = get_scheduler(which[0], frozenset(which[1]))
    dests = _dests(weights)
    sched.update(dests)
    _check(datapath, sched, dests, batches[0])
    for (index, what, weight), batch in zip(events, batches[1:], strict=False):
        dest = dests[index % len(dests)]
        if what == "weight":  # a weight change goes through update(), as the daemon's does
            dest.weight = weight
            sched.update(dests)
        else:  # a health transition changes availability only (real_sched)
            dest.healthy = not dest.healthy
        _check(datapath, sched, dests, batch)


def _clients(count: int, seed: int, vips: list[IPv4Address] | None = None) -> list[FlowKey]:
    rng = random.Random(seed)
    return [FlowKey(Protocol.TCP, IPv4Address(rng.randrange(0x0A030000, 0x0A040000)), rng.randrange(1, 65536),
                    rng.choice(vips or VIPS[:1]), 80) for _ in range(count)]


@pytest.mark.parametrize("name", ["sh", "dh"])
def test_every_real_is_reached_and_counted(datapath, name: str) -> None:
    """All reals available: XDP decides every first packet, over every real, and counts them per real."""
    sched = get_scheduler(name, frozenset())
    dests = _dests([1, 2, 3, 1, 2])
    sched.update(dests)
    datapath.maps.reset_counters((), range(64))
    outcome = _check(datapath, sched, dests, _clients(200, 3, VIPS if name == "dh" else None))
    assert outcome == {"xdp": 200, "up": 0}
    conns = {k: v for k, v in datapath.maps.hash_conns(range(64)).items() if v}
    assert sum(conns.values()) == 200
    # sh: every real; dh: the reals the eight VIPs' buckets name
    vips_reals = {FIRST_ID + sched.table[hash_32(fold(vip), 8)] for vip in VIPS}
    assert set(conns) == ({FIRST_ID + i for i in range(len(dests))} if name == "sh" else vips_reals)


@pytest.mark.parametrize("fallback", [False, True], ids=["sh", "sh-fallback"])
def test_a_down_real_is_walked_past_in_xdp_only_with_sh_fallback(datapath, fallback: bool) -> None:
    sched = get_scheduler("sh", frozenset({"sh-fallback"} if fallback else set()))
    dests = _dests([1, 1, 1])
    sched.update(dests)
    dests[1].healthy = False  # a health transition: the row stays, real_sched says unavailable
    flows = _clients(150, 5)
    datapath.maps.reset_counters((), range(64))
    outcome = _check(datapath, sched, dests, flows)
    lost = sum(1 for f in flows if sched.table[hash_32(fold(f.saddr), 8)] == 1)
    assert lost > 20
    if fallback:
        assert outcome == {"xdp": 150, "up": 0}
        assert datapath.maps.hash_conns([FIRST_ID + 1])[FIRST_ID + 1] == 0
    else:
        assert outcome == {"xdp": 150 - lost, "up": lost}
        assert datapath.maps.reason_counts()[Reason.PASS_HASH_EMPTY] == lost


def test_the_mh_walk_is_bounded_in_xdp(datapath) -> None:
    """A ring of the unavailable real 31 with one slot of the available 32: found at the walk's last
    probe (MH_FALLBACK_PROBES - 1) XDP takes it, one probe later XDP passes the flow up."""
    flow = FlowKey(Protocol.TCP, IPv4Address("10.3.0.5"), 40000, VIPS[0], 80)
    v = fold(flow.saddr)
    ihash = mh_hash(v, MH_SEED1) % RING_SIZE
    slots = [mh_hash((v + (ihash + i) % RING_SIZE) & 0xFFFFFFFF, MH_SEED1) % RING_SIZE
             for i in range(schedule.MH_FALLBACK_PROBES + 1)]
    for probe, expected in ((0, 32), (schedule.MH_FALLBACK_PROBES - 1, 32), (schedule.MH_FALLBACK_PROBES, 0)):
        assert slots[probe] not in slots[:probe] and slots[probe] != ihash
        ring = [31] * RING_SIZE
        ring[slots[probe]] = 32
        tables = Tables(tx_ports={F.A0, F.B0}, rings={ROW: ring})
        for rid in (31, 32):
            tables.reals[rid] = RealEntry(IPv4Address(f"10.1.0.{rid + 100}"), 80, Forwarding.ROUTE)
        tables.real_sched = {31: RealSched(1, False), 32: RealSched(1, True)}
        tables.services[flow.service_key] = ServiceEntry(1, SVC_F_FALLBACK, XdpKind.MH, ROW)
        datapath.maps.write(tables)
        progrun.run(datapath.prog_fd, _frame(flow), ingress_ifindex=F.A0)
        created = datapath.maps.get_flow(flow)
        assert (created.real_id if created else 0) == expected == schedule.pick_real(
            flow, tables.services[flow.service_key], tables), probe
