"""Maglev in XDP, end to end: an mh service's new connections are scheduled by the XDP program from
the ring the daemon wrote, without a round trip through NFQUEUE, and land where Python's
MaglevHashing would send them; with mh-fallback a quiesced real's slots keep naming it, and XDP
walks on from them (real_sched says it is unavailable) to where Python's walk goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached

from lb.datapath.testbed import Topology, two_arm
from lb.model import FlowKey, Protocol, RealKey
from lb.sched.base import Destination
from lb.sched.mh import MaglevHashing

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
ALIASES = 30
VPORT = 80


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3, client_aliases=ALIASES) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        with attached(topo) as lbxdp:
            yield topo, lbxdp
    assert_torn_down(topo)


def _scheduled_in_xdp(lbxdp: Lbxdp) -> int:
    m = re.search(r"flows scheduled in XDP: (\d+)", lbxdp.status().text)
    assert m, lbxdp.status().text
    return int(m[1])


def _python_picks(topo: Topology, weights: list[int]) -> dict[str, str | None]:
    """Source address → the real name lb.sched.mh picks (mh-fallback), after the weight changes
    `weights` went through update() as the daemon's would (a real at 0 keeps its slots)."""
    sched = MaglevHashing(frozenset({"mh-fallback"}))
    dests = [Destination(RealKey(IPv4Address(r.ip), HTTP_PORT), 1) for r in topo.reals]
    sched.update(dests)
    for dest, weight in zip(dests, weights, strict=True):
        dest.weight = weight
    sched.update(dests)
    name = {IPv4Address(r.ip): r.name for r in topo.reals}
    picks = {}
    for source in topo.client_aliases:
        # without mh-port the client port does not matter
        dest = sched.schedule(FlowKey(Protocol.TCP, IPv4Address(source), 1, IPv4Address(topo.vip), VPORT), dests)
        picks[source] = name[dest.key.address] if dest else None
    return picks


def test_mh_flows_are_scheduled_in_xdp_and_walk_past_a_quiesced_real_there(
        topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:{VPORT}"
    reals = [(f"{r.ip}:{HTTP_PORT}", "-m", "-w", "1") for r in topo.reals]
    lbxdp.service(service, "mh", reals, extra=("-b", "mh-fallback"))

    # 1. thirty connections from thirty addresses: XDP schedules them, the daemon sees none
    expected = _python_picks(topo, [1, 1, 1])
    assert len(set(expected.values())) == 3, expected  # all three reals are in play
    before, in_xdp = lbxdp.status(), _scheduled_in_xdp(lbxdp)
    answers = {source: topo.curl(1, port=VPORT, source=source)[0] for source in topo.client_aliases}
    after = lbxdp.status()
    assert answers == expected
    # "almost": a client port reused within the tcpfin timeout is a PASS_FLOW_REUSE for the daemon
    assert after.first_packets - before.first_packets <= 2, after.text
    assert _scheduled_in_xdp(lbxdp) - in_xdp >= ALIASES - 2, after.text
    stats = lbxdp.stats(service)
    assert stats[f"TCP {service}"][0] == ALIASES, stats  # Conns counts what XDP scheduled

    # 2. r2 quiesced: its slots still name it; XDP reads it unavailable and walks on (mh-fallback)
    r2 = topo.real("r2")
    lbxdp("-e", "-t", service, "-r", f"{r2.ip}:{HTTP_PORT}", "-m", "-w", "0")
    moved = _python_picks(topo, [1, 0, 1])
    walked = [s for s in topo.client_aliases if expected[s] == "r2"]
    assert walked and all(moved[s] not in (None, "r2") for s in walked), moved
    before, in_xdp = lbxdp.status(), _scheduled_in_xdp(lbxdp)
    answers = {source: topo.curl(1, port=VPORT, source=source)[0] for source in topo.client_aliases}
    after = lbxdp.status()
    assert answers == moved
    # a walk of three reals with one down ends within XDP's 64 probes (about 3^-64 it would not)
    assert after.first_packets - before.first_packets <= 2, after.text
    assert _scheduled_in_xdp(lbxdp) - in_xdp >= ALIASES - 2, after.text
    assert after.reasons.get("pass_hash_empty", 0) == before.reasons.get("pass_hash_empty", 0), after.text
