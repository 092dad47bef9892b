"""Persistence in XDP: template_real() and record_template() against their model (lb.rewrite.schedule)
row by row, and XDP with the daemon's Balancer (sharing the `templates` map through
lb.datapath.templatemaps) against a lone Python Balancer over event orders.

XDP reads bpf_ktime_get_ns(), which a test cannot set: time "advances" by moving every template's
expiry back by the same amount (what is left of a template is all that time changes). Timeouts and
steps are multiples of 50 s, so the time a test takes never decides a template's fate.
"""

from __future__ import annotations

import random
import time
from ipaddress import IPv4Address

import fixtures as F
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lb.balancer.engine import Balancer, NoDestination
from lb.balancer.persistence import PersistenceTable, Template, TemplateKey
from lb.daemon.kernelsched import KernelSched
from lb.datapath import progrun
from lb.datapath.templatemaps import MapTemplateStore
from lb.model import FlowKey, Forwarding, Protocol, RealKey, RealServer, Service, ServiceKey, VirtualService
from lb.rewrite import process
from lb.sched.base import Destination
from lb.sched.mh import MaglevHashing
from lb.sched.xdpkind import XdpKind
from lb.tables import RealEntry, RealSched, ServiceEntry, Tables

pytestmark = [pytest.mark.root, pytest.mark.bpf]

S = 1_000_000_000
VIP = IPv4Address("10.0.0.130")
SVC = ServiceKey(Protocol.TCP, VIP, 80)
SID, ROW, TIMEOUT = 7, 4, 300
IDS = [60, 61, 62]  # direct-routed reals nobody answers for: the flow is made, then PASS
HOST, NET24 = 0xFFFFFFFF, 0xFFFFFF00
C1, C1B, C2 = IPv4Address("10.3.1.7"), IPv4Address("10.3.1.200"), IPv4Address("10.3.2.7")


def _frame(client: IPv4Address, sport: int) -> bytes:
    return bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP))
                 / TCP(sport=sport, dport=80, flags="S"))


def _tables(kind: XdpKind, mask: int = HOST, unavailable: tuple[int, ...] = ()) -> Tables:
    tables = Tables(tx_ports={F.A0, F.B0})
    for i, rid in enumerate(IDS):
        tables.reals[rid] = RealEntry(IPv4Address(f"10.1.0.{130 + i}"), 80, Forwarding.ROUTE)
        tables.real_sched[rid] = RealSched(1, rid not in unavailable)
    tables.services[SVC] = ServiceEntry(SID, 0, kind, ROW, TIMEOUT, mask)
    if kind is XdpKind.SEQ:
        tables.seqs[ROW] = [rid for rid in IDS if rid not in unavailable]
    elif kind in (XdpKind.SH, XdpKind.DH):
        tables.buckets[ROW] = [IDS[i % len(IDS)] for i in range(256)]  # availability: real_sched
    elif kind is not XdpKind.MH:
        tables.walks[ROW] = list(IDS)
    else:
        mh = MaglevHashing()
        mh.update([Destination(RealKey(tables.reals[rid].address, 80)) for rid in IDS])
        tables.rings[ROW] = [IDS[i] if IDS[i] not in unavailable else 0 for i in mh.table]
    return tables


def _run(datapath, tables: Tables, conns: list[tuple[IPv4Address, int]]) -> list[int | None]:
    """Each connection through XDP and through the model; both must choose the same real and leave
    the same templates (expiries within the second the test takes) and the same cursor."""
    datapath.maps.write(tables)
    model = tables.copy()
    chosen = []
    for client, sport in conns:
        frame = _frame(client, sport)
        now = time.monotonic_ns()
        progrun.run(datapath.prog_fd, frame, ingress_ifindex=F.A0)
        predicted = process(frame, model, F.LAB_FIB, F.A0, now).scheduled
        entry = datapath.maps.get_flow(FlowKey(Protocol.TCP, client, sport, VIP, 80))
        assert (entry.real_id if entry else None) == predicted, (client, sport)
        chosen.append(predicted)
    kernel = datapath.maps.read_templates()
    assert kernel.keys() == model.templates.keys()
    for key, (expires, real_id) in kernel.items():
        assert real_id == model.templates[key][1], key
        assert abs(expires - model.templates[key][0]) < S, key
    if tables.seqs:
        assert datapath.maps.read_cursor(ROW) == model.cursors.get(ROW, 0)
    return chosen


@pytest.mark.parametrize("kind", [XdpKind.SEQ, XdpKind.MH], ids=["rr", "mh"])
def test_a_clients_next_connections_follow_its_template(datapath, kind: XdpKind) -> None:
    tables = _tables(kind)
    chosen = _run(datapath, tables, [(C1, 1000), (C2, 1001), (C1, 1002), (C1, 1003), (C2, 1004)])
    assert chosen[0] and chosen[1] and chosen[2:] == [chosen[0], chosen[0], chosen[1]]
    expires, real_id = datapath.maps.get_template(SID, C1) or (0, 0)
    left = expires - time.monotonic_ns()
    assert real_id == chosen[0] and (TIMEOUT - 2) * S < left <= TIMEOUT * S  # restarted by the last use
    if kind is XdpKind.SEQ:
        assert chosen[:2] == IDS[:2] and datapath.maps.read_cursor(ROW) == 2  # a template hit takes no turn


@pytest.mark.parametrize("kind", [k for k in XdpKind if k is not XdpKind.DAEMON], ids=lambda k: k.name.lower())
def test_a_live_template_beats_the_scheduler_and_an_expired_one_is_replaced(datapath, kind: XdpKind) -> None:
    """Every kind: the template is asked before the kind's pick (a kind whose pick is not in XDP
    yet passes the template-less client up, as its model says)."""
    tables = _tables(kind)
    now = time.monotonic_ns()
    tables.templates[SID, int(C1)] = (now + 100 * S, IDS[2])  # alive
    tables.templates[SID, int(C2)] = (now - 5 * S, IDS[2])  # dead
    chosen = _run(datapath, tables, [(C1, 2000), (C2, 2001)])
    assert chosen[0] == IDS[2]
    if kind is XdpKind.SEQ:
        assert chosen[1] == IDS[0]  # the scheduler's turn, and the template now says so
    assert datapath.maps.get_template(SID, C2)[1] == (chosen[1] or IDS[2])  # type: ignore[index]


@pytest.mark.parametrize("kind", [XdpKind.SEQ, XdpKind.MH], ids=["rr", "mh"])
def test_an_unavailable_reals_template_is_not_used_and_is_rewritten(datapath, kind: XdpKind) -> None:
    tables = _tables(kind, unavailable=(IDS[1],))
    tables.templates[SID, int(C1)] = (time.monotonic_ns() + 100 * S, IDS[1])
    chosen = _run(datapath, tables, [(C1, 3000), (C1, 3001)])
    assert chosen[0] != IDS[1] and chosen[1] == chosen[0]
    if kind is XdpKind.SEQ:
        assert chosen[0] == IDS[0]
    # rewritten to the real that took the connection (mh: a 0 slot leaves it to the daemon, untouched)
    assert datapath.maps.get_template(SID, C1)[1] == (chosen[0] or IDS[1])  # type: ignore[index]


def test_the_netmask_groups_clients(datapath) -> None:
    tables = _tables(XdpKind.SEQ, mask=NET24)
    chosen = _run(datapath, tables, [(C1, 4000), (C1B, 4001), (C2, 4002), (C1B, 4003)])
    assert chosen == [IDS[0], IDS[0], IDS[1], IDS[0]]
    assert set(datapath.maps.read_templates()) == {(SID, int(C1) & NET24), (SID, int(C2) & NET24)}


def test_a_template_xdp_wrote_is_what_the_map_store_reads(datapath) -> None:
    _run(datapath, _tables(XdpKind.SEQ), [(C1, 5000)])
    store = MapTemplateStore(datapath.maps)
    [(key, template)] = store.items()
    assert (key.service_id, key.client_net, template.real_id) == (SID, int(C1), IDS[0])
    assert store.lookup(key, time.monotonic_ns()) == IDS[0]
    assert store.sweep(template.expires_ns + 1) == 1 and store.items() == []


def test_the_map_stores_whole_table_passes_match_the_dict_store(datapath) -> None:
    """MapTemplateStore does sweep, forget_* and touch_all over numpy arrays: same results as the
    rules in TemplateStore, which PersistenceTable runs."""
    datapath.maps.write(Tables(tx_ports={F.A0}))
    kernel, python = MapTemplateStore(datapath.maps), PersistenceTable()
    rng = random.Random(3)
    for i in range(300):
        key = TemplateKey(rng.randrange(1, 4), 0x0A030000 + i)
        template = Template(rng.randrange(1, 100) * S, rng.choice(IDS))
        kernel.put(key, template)
        python.put(key, template)
    for store in (kernel, python):
        store.touch_all({(TemplateKey(k.service_id, k.client_net), t.real_id if k.client_net % 3 else 0): 150 * S
                         for k, t in python.items() if k.client_net % 2})
        assert store.sweep(50 * S) > 0
        store.forget_real(IDS[0])
        store.forget_service(3)
    assert sorted(kernel.items()) == sorted(python.items()) and len(kernel) == len(python) > 0


# -- XDP with the daemon's Balancer against a lone Python Balancer ----------------------------------

CLIENTS = [IPv4Address(a) for a in ("10.3.1.1", "10.3.1.2", "10.3.2.1", "10.3.2.2")]


def _vs(persist: int, mask: str) -> VirtualService:
    service = Service(SVC, scheduler="rr", persistence=persist, netmask=IPv4Address(mask))
    reals = {}
    for i in range(3):
        key = RealKey(IPv4Address(f"10.1.0.{130 + i}"), 80)
        reals[key] = RealServer(key.address, 80, Forwarding.ROUTE, 1)
    return VirtualService(service, reals)


def _advance(datapath, seconds: int) -> None:
    """Every template of the map is `seconds` closer to its end."""
    for (sid, net), (expires, real_id) in datapath.maps.read_templates().items():
        datapath.maps.set_template(sid, IPv4Address(net), real_id, max(0, expires - seconds * S))


# events: ("conn", client, via_python) | ("advance", hundreds of s) | ("health", real, up) | ("sweep",)
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("conn"), st.integers(0, 3), st.sampled_from([False, False, True])),
        st.tuples(st.just("advance"), st.integers(1, 4)),
        st.tuples(st.just("health"), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("sweep")),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(persist=st.sampled_from([150, 300]), mask=st.sampled_from(["255.255.255.255", "255.255.255.0"]),
       events=EVENTS)
def test_xdp_and_the_daemon_keep_clients_where_a_python_balancer_alone_would(
    datapath, persist: int, mask: str, events: list[tuple]
) -> None:
    """The world: XDP decides most connections, the daemon's Balancer (same `templates` map, rr's
    shared cursor) some; health changes go to real_sched; open connections extend templates at
    sweeps. The reference: a Balancer with a dict store and a clock of its own."""
    datapath.maps.write(Tables(tx_ports={F.A0, F.B0}))
    world, kernel = Balancer(templates=MapTemplateStore(datapath.maps)), KernelSched(datapath.maps)
    world.hooks = kernel
    world.sync([_vs(persist, mask)])
    state = world.services[SVC]
    for r in state.reals.values():
        datapath.maps.set_real(r.real_id, RealEntry(r.real.address, 80, Forwarding.ROUTE))
    kernel.sync(world.services, rewrite=True)
    assert kernel.rows.get(SVC, (XdpKind.DAEMON, 0))[0] is XdpKind.SEQ  # XDP decides this service
    reference = Balancer()
    reference.sync([_vs(persist, mask)])
    clock = 10**12  # the reference's own clock
    placed: list[tuple[FlowKey, int]] = []
    for n, event in enumerate(events):
        # The world's clock moves on by the milliseconds the test takes, the reference's by a
        # second an event: neither lands on a template's last instant, and (at most 40 events,
        # lives in steps of 50 s) both see every template alive or both see it dead.
        clock += S
        if event[0] == "conn":
            flow = FlowKey(Protocol.TCP, CLIENTS[event[1]], 1024 + n, VIP, 80)
            try:
                expected: int | None = reference.place(flow, clock).real_id
            except NoDestination:
                expected = None
            got: int | None = None
            if not event[2]:
                progrun.run(datapath.prog_fd, _frame(flow.saddr, flow.sport), ingress_ifindex=F.A0)
                entry = datapath.maps.get_flow(flow)
                got = entry.real_id if entry else None
            if got is None:  # the daemon decides (sent up, or XDP passed it: no real available)
                try:
                    got = world.place(flow, time.monotonic_ns()).real_id
                except NoDestination:
                    got = None
            assert got == expected, (n, event)
            if got is not None:
                placed.append((flow, got))
        elif event[0] == "advance":
            clock += event[1] * 100 * S
            _advance(datapath, event[1] * 100)
        elif event[0] == "health":
            rkey = list(state.reals)[event[1]]
            if world.set_health(SVC, rkey, event[2]):
                reference.set_health(SVC, rkey, event[2])
                placed = [(f, rid) for f, rid in placed if rid != state.reals[rkey].real_id]  # expired with it
            kernel.sync(world.services)
        else:  # a sweep: every connection placed so far is open
            world.note_open_flows(placed, time.monotonic_ns())
            reference.note_open_flows(placed, clock)
            assert world.templates.sweep(time.monotonic_ns()) == reference.templates.sweep(clock)
    assert {k: t.real_id for k, t in world.templates.items()} == {
        k: t.real_id for k, t in reference.templates.items()}
