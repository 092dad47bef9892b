"""Issue 5, live edits under sustained traffic: `-a`, `-e -w 0` (draining), `-E` (scheduler change),
`-e -w`, `-d` while held connections keep exchanging lines in a background loop. Established
connections to reals that stay see zero errors; every new connection follows the new
configuration at once (the first connection after the command already does).

One lab for the module; each test owns its service port on the VIP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, tally
from liveness_helpers import TCP_PORT, Lab, Talker, lab, status_json

from lb.datapath.testbed import HeldConnection, Topology

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def world() -> Iterator[Lab]:
    with lab() as built:
        yield built


@pytest.fixture
def lbxdp(world: Lab) -> Iterator[Lbxdp]:
    yield world.lbxdp
    print(world.lbxdp.log_tail(60))  # shown only when the test failed


def new_connections(topo: Topology, port: int, n: int) -> list[str]:
    """n fresh connections, one line each: who answered, in order."""
    return [topo.tcp_exchange(1, port=port) for _ in range(n)]


def hold_on_each(topo: Topology, port: int, per_real: int) -> dict[str, list[HeldConnection]]:
    held: dict[str, list[HeldConnection]] = {}
    for _ in range(per_real * len(topo.reals)):
        conn = topo.hold(port=port)
        held.setdefault(conn.exchange(1), []).append(conn)
    return held


def test_edits_under_traffic(world: Lab, lbxdp: Lbxdp) -> None:
    topo, port = world.topo, 9000
    service = world.vip(port)
    r1, r2, r3 = (world.rip(n, TCP_PORT) for n in ("r1", "r2", "r3"))
    lbxdp("-A", "-t", service, "-s", "rr")
    lbxdp("-a", "-t", service, "-r", r1, "-m")
    lbxdp("-a", "-t", service, "-r", r2, "-m")
    held = {}
    for _ in range(4):
        conn = topo.hold(port=port)
        held.setdefault(conn.exchange(1), []).append(conn)
    assert {k: len(v) for k, v in held.items()} == {"r1": 2, "r2": 2}
    conns = [c for cs in held.values() for c in cs]
    with Talker(conns) as talker:
        talker.wait_rounds(5)

        # -a: the new real is in the very next rr cycle.
        lbxdp("-a", "-t", service, "-r", r3, "-m")
        answers = new_connections(topo, port, 6)
        assert tally(answers) == {"r1": 2, "r2": 2, "r3": 2}, answers
        talker.wait_rounds(5)

        # -e -w 0: r1 drains. No new connection lands on it; its established ones keep talking.
        lbxdp("-e", "-t", service, "-r", r1, "-m", "-w", "0")
        answers = new_connections(topo, port, 6)
        assert tally(answers) == {"r2": 3, "r3": 3}, answers
        talker.wait_rounds(5)

        # -E to wrr and -e -w 3 on r2: whole wrr cycles are exactly 3:1 from the first connection.
        lbxdp("-E", "-t", service, "-s", "wrr")
        lbxdp("-e", "-t", service, "-r", r2, "-m", "-w", "3")
        answers = new_connections(topo, port, 8)
        assert tally(answers) == {"r2": 6, "r3": 2}, answers
        talker.wait_rounds(5)

        # -e -w 1 on r1: back in, at once.
        lbxdp("-e", "-t", service, "-r", r1, "-m", "-w", "1")
        answers = new_connections(topo, port, 10)
        assert tally(answers) == {"r1": 2, "r2": 6, "r3": 2}, answers
        talker.wait_rounds(5)

        # -d r2 (no health check configured: dead flows expire, the default). r2's connections
        # are told to stop first: they belong to a real that does not stay.
        for conn in held["r2"]:
            talker.exclude(conn)
        lbxdp("-d", "-t", service, "-r", r2)
        answers = new_connections(topo, port, 4)
        assert tally(answers) == {"r1": 2, "r3": 2}, answers
        talker.wait_rounds(10)
    assert talker.errors == {}, talker.errors
    # Traffic really flowed the whole time, and over XDP (first packets are few).
    assert talker.rounds >= 40, talker.rounds
    assert [c.exchange(2) for c in held["r1"]] == ["r1", "r1"]
    listing = lbxdp.conns(service)
    assert set(listing) == {r1, r3}, listing
    assert listing[r1][2] == 2, listing  # r1's two held connections are still active
    for conn in conns:
        conn.close()


def test_delete_with_dead_flows_kept_drains(world: Lab, lbxdp: Lbxdp) -> None:
    """`-d` follows the dead-flows option: with `keep` the deleted real's established
    connections go on working and it gets no new ones."""
    topo, port = world.topo, 9002
    service = world.vip(port)
    lbxdp.service(service, "rr", world.reals(TCP_PORT))
    lbxdp("health", "-t", service, "--check", "none", "--dead-flows", "keep")
    held = hold_on_each(topo, port, 1)
    conns = [c for cs in held.values() for c in cs]
    with Talker(conns) as talker:
        talker.wait_rounds(5)
        lbxdp("-d", "-t", service, "-r", world.rip("r2", TCP_PORT))
        answers = new_connections(topo, port, 6)
        assert tally(answers) == {"r1": 3, "r3": 3}, answers
        talker.wait_rounds(10)
    assert talker.errors == {}, talker.errors
    assert held["r2"][0].exchange(3) == "r2"
    for conn in conns:
        conn.close()


def test_expire_on_delete_breaks_only_the_deleted_reals_flows(world: Lab, lbxdp: Lbxdp) -> None:
    """The default (expire) on `-d`: the deleted real's flows are removed from the table, so its
    clients' next segments are dropped (they reconnect elsewhere); everyone else is untouched."""
    topo, port = world.topo, 9004
    service = world.vip(port)
    lbxdp.service(service, "rr", world.reals(TCP_PORT))
    held = hold_on_each(topo, port, 1)
    before = status_json(lbxdp)["first_path_events"].get("no_flow_not_syn", 0)
    lbxdp("-d", "-t", service, "-r", world.rip("r3", TCP_PORT))
    held["r3"][0].sock.settimeout(1.0)
    held["r3"][0].timeout = 1.0
    with pytest.raises((OSError, ConnectionError)):
        held["r3"][0].exchange(1)
    assert status_json(lbxdp)["first_path_events"].get("no_flow_not_syn", 0) > before
    assert held["r1"][0].exchange(3) == "r1"
    assert held["r2"][0].exchange(3) == "r2"
    assert set(new_connections(topo, port, 4)) == {"r1", "r2"}
    for conns in held.values():
        for conn in conns:
            conn.close()
