"""rr and wrr in XDP: the program takes the daemon's cycle with an atomic cursor and so chooses, flow
for flow, what lb.sched.rr / lb.sched.wrr choose, through weight edits, health changes and flows the
daemon decides itself (the shared cursor, lb.daemon.kernelsched)."""

from __future__ import annotations

from ipaddress import IPv4Address

import fixtures as F
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from lb.balancer.engine import Balancer
from lb.daemon.kernelsched import KernelSched
from lb.datapath import progrun
from lb.model import FlowKey, Forwarding, Protocol, RealKey, RealServer, Service, ServiceKey, VirtualService
from lb.rewrite import Reason, process
from lb.sched import get_scheduler
from lb.sched.base import Destination
from lb.sched.xdpkind import XdpKind
from lb.tables import RealEntry, ServiceEntry, Tables

pytestmark = [pytest.mark.root, pytest.mark.bpf]

VIP = IPv4Address("10.0.0.120")
FIRST_ID = 40  # real ids 40..47: direct-routed reals nobody answers for (the flow is made, then PASS)


def _frame(client: IPv4Address, sport: int, udp: bool = False) -> bytes:
    l4 = UDP(sport=sport, dport=53) if udp else TCP(sport=sport, dport=80, flags="S")
    return bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP)) / l4)


def _client(i: int) -> tuple[IPv4Address, int]:
    return IPv4Address(0x0A030000 + i % 60000 + 1), 1024 + i % 60000


@pytest.mark.parametrize(("name", "weights"), [("rr", [1, 1, 1]), ("rr", [5, 0, 2, 1]), ("wrr", [3, 2, 1]),
                                               ("wrr", [4, 2, 0, 6]), ("wrr", [7, 1])])
def test_xdp_and_the_model_follow_the_schedulers_cycle(datapath, name: str, weights: list[int]) -> None:
    sched = get_scheduler(name)
    dests = [Destination(RealKey(IPv4Address(f"10.1.0.{120 + i}"), 80), w) for i, w in enumerate(weights)]
    sched.update(dests)
    ids = [FIRST_ID + i for i in range(len(dests))]
    tables = Tables(tx_ports={F.A0, F.B0})
    for i, dest in enumerate(dests):
        tables.reals[ids[i]] = RealEntry(dest.key.address, 80, Forwarding.ROUTE)
    for proto in (Protocol.TCP, Protocol.UDP):
        tables.services[ServiceKey(proto, VIP, 53 if proto is Protocol.UDP else 80)] = ServiceEntry(1, 0, XdpKind.SEQ, 2)
    tables.seqs[2] = sched.xdp_row(dests, ids) or []
    tables.cursors[2] = sched.position
    datapath.maps.write(tables)
    model = tables.copy()
    for i in range(3 * len(tables.seqs[2]) + 1):  # three cycles and one
        client, sport = _client(i)
        udp = i % 3 == 2
        flow = FlowKey(Protocol.UDP if udp else Protocol.TCP, client, sport, VIP, 53 if udp else 80)
        frame = _frame(client, sport, udp)
        progrun.run(datapath.prog_fd, frame, ingress_ifindex=F.A0)
        predicted = process(frame, model, F.LAB_FIB, F.A0).scheduled
        entry = datapath.maps.get_flow(flow)
        expected = sched.schedule(flow, dests)
        assert entry is not None and expected is not None
        assert entry.real_id == ids[dests.index(expected)] == predicted, i
    assert datapath.maps.read_cursor(2) == model.cursors[2] == 3 * len(tables.seqs[2]) + 1
    conns = datapath.maps.read_conns(ids)
    assert {rid: c for rid, c in conns.items() if c != (0, 0)} == {
        rid: c for rid, c in model.conns.items() if rid in ids}  # each new flow counted inactive, at once


def test_an_empty_cycle_is_left_to_the_daemon(datapath) -> None:
    tables = Tables(tx_ports={F.A0})
    tables.reals[FIRST_ID] = RealEntry(IPv4Address("10.1.0.120"), 80, Forwarding.ROUTE)
    tables.services[ServiceKey(Protocol.TCP, VIP, 80)] = ServiceEntry(1, 0, XdpKind.SEQ, 1)
    tables.seqs[1] = []  # no real available: Python decides (and drops, as IPVS)
    datapath.maps.write(tables)
    datapath.maps.reset_counters((), range(64))
    client, sport = _client(1)
    progrun.run(datapath.prog_fd, _frame(client, sport), ingress_ifindex=F.A0)
    assert datapath.maps.get_flow(FlowKey(Protocol.TCP, client, sport, VIP, 80)) is None
    assert datapath.maps.reason_counts()[Reason.PASS_HASH_EMPTY] == 1
    assert process(_frame(client, sport), tables.copy(), F.LAB_FIB, F.A0).reason is Reason.PASS_HASH_EMPTY


def _vs(name: str, weights: list[int], healthy: list[bool]) -> VirtualService:
    service = Service(ServiceKey(Protocol.TCP, VIP, 80), scheduler=name)
    reals = {}
    for i, w in enumerate(weights):
        key = RealKey(IPv4Address(f"10.1.0.{120 + i}"), 80)
        reals[key] = RealServer(key.address, 80, Forwarding.ROUTE, w)
    return VirtualService(service, reals)


# events: ("flow", via_python) | ("weight", real, w) | ("health", real, up)
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("flow"), st.sampled_from([False, False, False, True])),
        st.tuples(st.just("weight"), st.integers(0, 3), st.integers(0, 5)),
        st.tuples(st.just("health"), st.integers(0, 3), st.booleans()),
    ),
    min_size=1, max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["rr", "wrr"]), weights=st.lists(st.integers(0, 5), min_size=1, max_size=4), events=EVENTS)
def test_xdp_with_the_daemon_chooses_what_the_python_scheduler_alone_chooses(
    datapath, name: str, weights: list[int], events: list[tuple]
) -> None:
    """The daemon's Balancer and KernelSched drive the maps; XDP decides most flows, the daemon some
    (a first packet XDP passed up); a lone Python scheduler fed the same events is the reference."""
    datapath.maps.write(Tables(tx_ports={F.A0, F.B0}))
    balancer, kernel = Balancer(), KernelSched(datapath.maps)
    balancer.hooks = kernel
    healthy = [True] * len(weights)
    balancer.sync([_vs(name, weights, healthy)])
    for state in balancer.services.values():
        for r in state.reals.values():
            datapath.maps.set_real(r.real_id, RealEntry(r.real.address, 80, Forwarding.ROUTE))
    kernel.sync(balancer.services, rewrite=True)
    reference = get_scheduler(name)
    ref_dests = [Destination(RealKey(IPv4Address(f"10.1.0.{120 + i}"), 80), w) for i, w in enumerate(weights)]
    reference.update(ref_dests)
    state = balancer.services[ServiceKey(Protocol.TCP, VIP, 80)]
    by_id = {r.real_id: i for i, r in enumerate(state.reals.values())}
    for n, event in enumerate(events):
        if event[0] == "flow":
            client, sport = _client(n)
            flow = FlowKey(Protocol.TCP, client, sport, VIP, 80)
            expected = reference.schedule(flow, ref_dests)
            if event[1]:  # the daemon decides this one (XDP passed it up)
                try:
                    got: int | None = by_id[balancer.place(flow, 0.0).real_id]
                except LookupError:
                    got = None
            else:
                progrun.run(datapath.prog_fd, _frame(client, sport), ingress_ifindex=F.A0)
                entry = datapath.maps.get_flow(flow)
                if entry is None:  # XDP left it to the daemon (no real available): Python decides
                    try:
                        got = by_id[balancer.place(flow, 0.0).real_id]
                    except LookupError:
                        got = None
                else:
                    got = by_id[entry.real_id]
            assert got == (ref_dests.index(expected) if expected is not None else None), (n, event)
        elif event[0] == "weight" and event[1] < len(weights):
            weights[event[1]] = event[2]
            ref_dests[event[1]].weight = event[2]
            reference.update(ref_dests)
            balancer.sync([_vs(name, weights, healthy)])
            kernel.sync(balancer.services)
        elif event[0] == "health" and event[1] < len(weights):
            healthy[event[1]] = event[2]
            changed = balancer.set_health(state.service.key, list(state.reals)[event[1]], event[2])
            if changed:
                ref_dests[event[1]].healthy = event[2]
                reference.update(ref_dests)
            kernel.sync(balancer.services)
