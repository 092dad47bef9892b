"""lc, wlc, sed, nq, fo, ovf in XDP (pick_least() in bpf/lb_kern.c): the walk over a service's reals
picks what lb.sched's schedulers pick from the same weights, availability and connection counts, and
XDP keeps `real_conns` as the daemon counts (a new flow inactive, the client's ACK making it active,
its FIN or RST inactive again: lb.balancer.lifetime; docs/schedulers.md says how close that is to IPVS).

Random states go through the program, the model (lb.rewrite) and the Python schedulers, which must agree
on every one; every fixture row (fixtures.py) must leave real_conns as the model says.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import fixtures as F
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from lb.balancer.lifetime import phase_of
from lb.datapath import progrun
from lb.model import FlowKey, Forwarding, Protocol, RealKey, ServiceKey
from lb.rewrite import Reason, Verdict, process
from lb.sched import get_scheduler
from lb.sched.base import Destination, Scheduler
from lb.tables import FlowEntry, RealEntry, RealSched, ServiceEntry, Tables, TcpSeen, service_flags

pytestmark = [pytest.mark.root, pytest.mark.bpf]

NAMES = ("lc", "wlc", "sed", "nq", "fo", "ovf")
VIP = IPv4Address("10.0.0.120")
PORT = {name: 8100 + i for i, name in enumerate(NAMES)}  # one TCP service per kind, in row i
UDP_PORT = 8153  # a UDP lc service, row len(NAMES)
MAX_DESTS = 16
FIRST_ID = 40  # real ids 40..55: direct-routed reals nobody answers for (the flow is made, the packet goes up)


def _service_tables() -> Tables:
    tables = Tables(tx_ports={F.A0, F.B0})
    for i in range(MAX_DESTS):
        tables.reals[FIRST_ID + i] = RealEntry(IPv4Address(f"10.1.0.{100 + i}"), 80, Forwarding.ROUTE)
    for row, name in enumerate(NAMES):
        sched = get_scheduler(name)
        tables.services[ServiceKey(Protocol.TCP, VIP, PORT[name])] = ServiceEntry(
            row + 1, service_flags(sched), sched.xdp_kind, row)
    lc = get_scheduler("lc")
    tables.services[ServiceKey(Protocol.UDP, VIP, UDP_PORT)] = ServiceEntry(
        len(NAMES) + 1, service_flags(lc), lc.xdp_kind, len(NAMES))
    return tables


@pytest.fixture(scope="module")
def walks(datapath) -> Iterator[object]:
    datapath.maps.write(_service_tables())
    yield datapath
    datapath.maps.write(Tables())


def _dest(i: int, weight: int, active: int, inactive: int, healthy: bool = True,
          overloaded: bool = False) -> Destination:
    return Destination(RealKey(IPv4Address(f"10.1.0.{100 + i}"), 80), weight, active, inactive, healthy, overloaded)


def _publish(maps: object, sched: Scheduler, row: int, dests: list[Destination],
             conns: list[tuple[int, int]] | None = None) -> list[int]:
    """What the daemon writes for a service: the scheduler's row, every real's weight and availability,
    and the counts (`conns`, else the destinations' own)."""
    ids = [FIRST_ID + i for i in range(len(dests))]
    sched.update(dests)
    row_ids = sched.xdp_row(dests, ids)
    assert row_ids == ids  # the least-connection family: the reals in order
    maps.set_walk(row, row_ids)  # type: ignore[attr-defined]
    for i, (rid, dest) in enumerate(zip(ids, dests, strict=True)):
        maps.set_real_sched(rid, RealSched(dest.weight, dest.available))  # type: ignore[attr-defined]
        active, inactive = conns[i] if conns else (dest.active, dest.inactive)
        maps.set_conns(rid, active, inactive)  # type: ignore[attr-defined]
    return ids


def _syn(client: IPv4Address, sport: int, dport: int, flags: str = "S") -> bytes:
    return bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP))
                 / TCP(sport=sport, dport=dport, flags=flags))


_client_counter = iter(range(1, 1 << 22))


def _new_client() -> IPv4Address:
    return IPv4Address(0x0A300000 + next(_client_counter))  # 10.48.0.0/10: unique per call


def _first_packet(maps: object, prog_fd: int, dport: int) -> tuple[FlowKey, int | None]:
    """A SYN of a new client to `dport`; the real XDP created its flow for (None: it created none)."""
    client = _new_client()
    flow = FlowKey(Protocol.TCP, client, 40000, VIP, dport)
    progrun.run(prog_fd, _syn(client, 40000, dport), ingress_ifindex=F.A0)
    entry = maps.get_flow(flow)  # type: ignore[attr-defined]
    if entry is not None:
        maps.delete_flow(flow)  # type: ignore[attr-defined]
    return flow, entry.real_id if entry is not None else None


# Worked by hand: reals as (weight, active, inactive[, "x" unavailable]) and the real each kind picks
# (a letter, None: none available, the daemon decides). lc: 256a + i; wlc: (256a + i)/w; sed:
# (a + 1)/w; nq: the first idle real, else sed; fo: the highest weight; ovf: the highest weight
# among the reals with a <= w. Ties: the earlier real.
ROWS = [
    # rows                                             lc   wlc  sed  nq   fo   ovf
    ([(1, 1, 0), (1, 0, 10), (1, 0, 300)],             ("B", "B", "B", "B", "A", "A")),
    ([(1, 1, 0), (3, 2, 0)],                           ("A", "B", "B", "B", "B", "B")),
    ([(2, 2, 0), (1, 1, 0)],                           ("B", "A", "A", "A", "A", "A")),
    ([(1, 0, 1000), (1, 1, 0)],                        ("B", "B", "A", "A", "A", "A")),
    ([(1, 2, 0), (10, 3, 0), (1, 0, 0)],               ("C", "C", "B", "C", "B", "B")),
    ([(1, 2, 0), (10, 3, 0), (1, 0, 0, "x")],          ("A", "B", "B", "B", "B", "B")),
    ([(2, 3, 0), (2, 2, 0), (1, 0, 0)],                ("C", "C", "C", "C", "A", "B")),
    ([(0, 0, 0), (1, 5, 5)],                           ("B", "B", "B", "B", "B", None)),
    ([(3, 4, 0), (3, 4, 0), (2, 3, 1)],                ("C", "A", "A", "A", "A", None)),
    ([(0, 0, 0), (1, 0, 0, "x")],                      (None, None, None, None, None, None)),
]


@pytest.mark.parametrize(("reals", "picks"), ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_worked_rows(walks, reals: list, picks: tuple[str | None, ...]) -> None:
    """Each row through the program, the model and the Python scheduler, all three against the answer."""
    for name, letter in zip(NAMES, picks, strict=True):
        dests = [_dest(i, w, a, n, overloaded=bool(flag)) for i, (w, a, n, *flag) in enumerate(reals)]
        sched = get_scheduler(name)
        ids = _publish(walks.maps, sched, NAMES.index(name), dests)
        tables = walks.maps.read()
        client = _new_client()
        frame = _syn(client, 40000, PORT[name])
        predicted = process(frame, tables, F.LAB_FIB, F.A0).scheduled
        flow = FlowKey(Protocol.TCP, client, 40000, VIP, PORT[name])
        progrun.run(walks.prog_fd, frame, ingress_ifindex=F.A0)
        entry = walks.maps.get_flow(flow)
        if entry is not None:
            walks.maps.delete_flow(flow)
        expected = None if letter is None else ids["ABC".index(letter)]
        chosen = sched.schedule(flow, dests)
        assert (entry.real_id if entry else None) == predicted == expected, name
        assert (ids[dests.index(chosen)] if chosen else None) == expected, name


# weights: mostly small (ties), sometimes ipvsadm's largest; counts: mostly small, sometimes large,
# and a few negative in the map (a decrement that raced a sweep's write: XDP reads them as 0)
_weight = st.one_of(st.integers(0, 4), st.integers(0, 65535))
_count = st.one_of(st.integers(-2, 4), st.integers(0, 1 << 20))
_mostly = st.sampled_from([True, True, True, False])
_real = st.tuples(_weight, _count, _count, _mostly, _mostly.map(lambda b: not b))  # healthy, overloaded


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reals=st.lists(_real, min_size=1, max_size=MAX_DESTS))
def test_xdp_picks_what_the_scheduler_picks(walks, name: str, reals: list) -> None:
    sched = get_scheduler(name)
    dests = [_dest(i, w, max(0, a), max(0, n), h, o) for i, (w, a, n, h, o) in enumerate(reals)]
    ids = _publish(walks.maps, sched, NAMES.index(name), dests, [(a, n) for _, a, n, _, _ in reals])
    before = walks.maps.reason_counts()[Reason.PASS_HASH_EMPTY]
    flow, got = _first_packet(walks.maps, walks.prog_fd, PORT[name])
    expected = sched.schedule(flow, dests)
    if expected is None:
        assert got is None and walks.maps.reason_counts()[Reason.PASS_HASH_EMPTY] == before + 1
    else:
        assert got == ids[dests.index(expected)], [(d.weight, d.active, d.inactive, d.available) for d in dests]


def test_a_burst_of_new_flows_is_spread_at_once(walks) -> None:
    """Each flow XDP creates counts at once (inactive + 1), so a burst between two sweeps follows the
    Python scheduler fed the same increments; before, every new flow went to the real the last sweep
    left least loaded."""
    for name, weights in (("lc", [1, 1, 1, 1]), ("wlc", [3, 1, 2, 2])):
        sched = get_scheduler(name)
        dests = [_dest(i, w, 0, 0) for i, w in enumerate(weights)]
        ids = _publish(walks.maps, sched, NAMES.index(name), dests)
        picked: list[int] = []
        expected: list[int] = []
        for _ in range(40):
            flow, got = _first_packet(walks.maps, walks.prog_fd, PORT[name])
            assert got is not None
            picked.append(got)
            dest = sched.schedule(flow, dests)
            assert dest is not None
            dest.inactive += 1  # what the daemon counts for a new flow (firstpath.py)
            expected.append(ids[dests.index(dest)])
        assert picked == expected
        share = {rid: picked.count(rid) for rid in ids}
        assert all(share[rid] == 40 * w // sum(weights) for rid, w in zip(ids, weights, strict=True)), share
        assert walks.maps.read_conns(ids) == {rid: (0, share[rid]) for rid in ids}


def _send(prog_fd: int, client: IPv4Address, flags: str) -> None:
    progrun.run(prog_fd, _syn(client, 41000, PORT["lc"], flags), ingress_ifindex=F.A0)


def test_a_connection_moves_from_inactive_to_active_and_back(walks) -> None:
    sched = get_scheduler("lc")
    ids = _publish(walks.maps, sched, NAMES.index("lc"), [_dest(0, 1, 0, 0)])
    for close in ("FA", "R", "RA"):
        walks.maps.set_conns(ids[0], 0, 0)
        client = _new_client()
        states = []
        for flags in ("S", "A", "PA", close, "A"):  # SYN, the handshake's ACK, data, the close, an ACK after it
            _send(walks.prog_fd, client, flags)
            states.append(walks.maps.read_conns(ids)[ids[0]])
        assert states == [(0, 1), (1, 0), (1, 0), (0, 1), (0, 1)], close
        walks.maps.delete_flow(FlowKey(Protocol.TCP, client, 41000, VIP, PORT["lc"]))


@pytest.mark.parametrize("before", [TcpSeen(b) for b in range(8)], ids=lambda b: f"seen{int(b)}")
@pytest.mark.parametrize("flags", ["A", "FA", "R", "PA", "F"])
def test_counting_follows_the_sweeps_phases(walks, before: TcpSeen, flags: str) -> None:
    """Every (bits before, segment) pair: XDP moves the flow between active and inactive exactly when
    lb.balancer.lifetime's phase of the bits changes between active and not (what the sweep counts)."""
    maps = walks.maps
    rid = FIRST_ID
    client = _new_client()
    flow = FlowKey(Protocol.TCP, client, 41000, VIP, PORT["lc"])
    maps.set_flow(flow, FlowEntry(rid, NAMES.index("lc") + 1, 1, before))
    maps.set_conns(rid, 10, 10)
    _send(walks.prog_fd, client, flags)
    after = maps.get_flow(flow).tcp_seen
    maps.delete_flow(flow)
    was, now = phase_of(Protocol.TCP, int(before)).active, phase_of(Protocol.TCP, int(after)).active
    assert maps.read_conns([rid])[rid] == (10 + now - was, 10 - now + was)


def test_udp_flows_stay_inactive(walks) -> None:
    sched = get_scheduler("lc")
    ids = _publish(walks.maps, sched, len(NAMES), [_dest(0, 1, 0, 0)])
    client = _new_client()
    frame = bytes(Ether(src=F.GW_A_MAC, dst=F.A0_MAC) / IP(src=str(client), dst=str(VIP))
                  / UDP(sport=5000, dport=UDP_PORT))
    for _ in range(3):
        progrun.run(walks.prog_fd, frame, ingress_ifindex=F.A0)
    assert walks.maps.read_conns(ids) == {ids[0]: (0, 1)}
    walks.maps.delete_flow(FlowKey(Protocol.UDP, client, 5000, VIP, UDP_PORT))


def test_a_reused_port_moves_the_count_to_the_new_connection(walks) -> None:
    """A SYN on a closed flow's 5-tuple: XDP forgets the old (inactive) connection and counts the new one,
    so the real holds one inactive connection, not two."""
    sched = get_scheduler("lc")
    ids = _publish(walks.maps, sched, NAMES.index("lc"), [_dest(0, 1, 0, 0)])
    client = _new_client()
    for flags in ("S", "A", "FA"):
        _send(walks.prog_fd, client, flags)
    assert walks.maps.read_conns(ids)[ids[0]] == (0, 1)
    _send(walks.prog_fd, client, "S")
    assert walks.maps.read_conns(ids)[ids[0]] == (0, 1)
    walks.maps.delete_flow(FlowKey(Protocol.TCP, client, 41000, VIP, PORT["lc"]))


def _random_state(rng: random.Random, n: int) -> list[tuple[int, int, int, bool]]:
    """(weight, active, inactive, available) of n reals: small numbers, so that ties are common."""
    return [(rng.choice([0, 1, 1, 2, 3, 50]), rng.choice([-1, 0, 0, 1, 2, 3]), rng.choice([0, 0, 1, 5, 300]),
             rng.random() < 0.85) for _ in range(n)]


@pytest.mark.parametrize("name", NAMES)
def test_xdp_and_the_model_agree_on_random_states(walks, name: str) -> None:
    """Frame, verdict, the real chosen and the counts after it: the program's are the model's."""
    rng = random.Random(NAMES.index(name))
    row = NAMES.index(name)
    for step in range(25):
        state = _random_state(rng, rng.randint(1, MAX_DESTS))
        tables = _service_tables()
        ids = [FIRST_ID + i for i in range(len(state))]
        tables.walks[row] = ids
        tables.real_sched = {rid: RealSched(w, up) for rid, (w, _, _, up) in zip(ids, state, strict=True)}
        tables.conns = {rid: (a, n) for rid, (_, a, n, _) in zip(ids, state, strict=True) if (a, n) != (0, 0)}
        walks.maps.write(tables)
        client = _new_client()
        frame = _syn(client, 40000, PORT[name])
        model = tables.copy()
        predicted = process(frame, model, F.LAB_FIB, F.A0)
        retval, out, _ = progrun.run(walks.prog_fd, frame, ingress_ifindex=F.A0)
        entry = walks.maps.get_flow(FlowKey(Protocol.TCP, client, 40000, VIP, PORT[name]))
        assert (Verdict(retval), out) == (predicted.verdict, predicted.frame_out), step
        assert (entry.real_id if entry else None) == predicted.scheduled, (step, state)
        assert walks.maps.conns_table() == {k: v for k, v in model.conns.items() if v != (0, 0)}, step
    walks.maps.write(_service_tables())


@pytest.mark.parametrize("row", F.ROWS, ids=[r.name for r in F.ROWS])
def test_every_fixture_row_counts_as_the_model_counts(datapath, row: F.Row) -> None:
    """A flow hit whose segment changes the TCP bits moves a connection, a created flow counts
    inactive, a reused closed flow leaves its real: XDP's real_conns and the model's agree (every
    real starts at 5 and 5, so a move either way shows)."""
    tables = row.tables.copy()
    tables.conns = dict.fromkeys(tables.reals, (5, 5))
    datapath.maps.write(tables)
    frame = row.input_frame()
    progrun.run(datapath.prog_fd, frame, ingress_ifindex=row.ingress)
    model = tables.copy()
    process(frame, model, F.LAB_FIB, row.ingress)
    assert datapath.maps.conns_table() == {k: v for k, v in model.conns.items() if v != (0, 0)}


def test_a_sweep_writes_the_flow_tables_counts_into_real_conns(walks) -> None:
    """The daemon's reconciliation: after FlowBook.sweep(), real_conns holds the table's count per real
    (active: ESTABLISHED without FIN or RST), and a real no flow names any more is back at 0."""
    from lb.balancer.lifetime import Timeouts
    from lb.daemon.flows import FlowBook

    maps = walks.maps
    maps.write(_service_tables())
    now = time.monotonic_ns()  # bpf_ktime_get_ns()'s clock: the flows are fresh
    seen = [TcpSeen.ESTABLISHED, TcpSeen.NONE, TcpSeen.ESTABLISHED | TcpSeen.FIN, TcpSeen.ESTABLISHED]
    for i, bits in enumerate(seen):
        flow = FlowKey(Protocol.TCP, _new_client(), 40000, VIP, PORT["lc"])
        maps.set_flow(flow, FlowEntry(FIRST_ID + (i == 3), 1, now, bits))
    maps.set_flow(FlowKey(Protocol.UDP, _new_client(), 5000, VIP, UDP_PORT), FlowEntry(FIRST_ID + 1, 7, now))
    maps.set_conns(FIRST_ID, 9, -2)  # whatever XDP left
    maps.set_conns(FIRST_ID + 2, 3, 1)  # a real whose flows are all gone
    counts, _ = FlowBook(maps, 4096, lambda rid: None).sweep(Timeouts())
    assert counts == {FIRST_ID: (1, 2), FIRST_ID + 1: (1, 1)}
    assert maps.conns_table() == counts
    maps.write(_service_tables())
