"""sh in XDP, end to end: an sh service's new connections are decided by the XDP program from the
bucket table the daemon wrote, none through NFQUEUE, and land where Python's SourceHashing sends
them; with sh-fallback a quiesced real's clients walk on to another real in XDP too.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached

from lb.datapath.testbed import Topology, two_arm
from lb.model import FlowKey, Protocol, RealKey
from lb.sched.base import Destination
from lb.sched.sh import SourceHashing

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
ALIASES = 24
VPORT = 80


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3, client_aliases=ALIASES) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        with attached(topo) as lbxdp:
            yield topo, lbxdp
    assert_torn_down(topo)


def _python_picks(topo: Topology, weights: list[int]) -> dict[str, str | None]:
    """Source address → the real name lb.sched.sh picks (sh-fallback) with these weights."""
    sched = SourceHashing(frozenset({"sh-fallback"}))
    dests = [Destination(RealKey(IPv4Address(r.ip), HTTP_PORT), w) for r, w in zip(topo.reals, weights, strict=True)]
    sched.update(dests)
    name = {IPv4Address(r.ip): r.name for r in topo.reals}
    picks = {}
    for source in topo.client_aliases:
        dest = sched.schedule(FlowKey(Protocol.TCP, IPv4Address(source), 1, IPv4Address(topo.vip), VPORT), dests)
        picks[source] = name[dest.key.address] if dest else None
    return picks


def test_sh_flows_are_decided_in_xdp_with_and_after_a_quiesced_real(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:{VPORT}"
    # weights 1: the buckets go r1, r2, r3, r1, … so every real has clients among the aliases
    reals = [(f"{r.ip}:{HTTP_PORT}", "-m", "-w", "1") for r in topo.reals]
    lbxdp.service(service, "sh", reals, extra=("-b", "sh-fallback"))

    expected = _python_picks(topo, [1, 1, 1])
    assert len(set(expected.values())) == 3, expected
    before = lbxdp.status()
    answers = {source: topo.curl(1, port=VPORT, source=source)[0] for source in topo.client_aliases}
    after = lbxdp.status()
    assert answers == expected
    # "almost": a client port reused within the tcpfin timeout is a PASS_FLOW_REUSE for the daemon
    assert after.first_packets - before.first_packets <= 2, after.text

    # r2 quiesced: its buckets still name it, XDP reads it unavailable and walks on (sh-fallback)
    r2 = topo.real("r2")
    lbxdp("-e", "-t", service, "-r", f"{r2.ip}:{HTTP_PORT}", "-m", "-w", "0")
    moved = _python_picks(topo, [1, 0, 1])
    walked = [s for s in topo.client_aliases if expected[s] == "r2"]
    assert walked and all(moved[s] not in (None, "r2") for s in walked), moved
    before = lbxdp.status()
    answers = {source: topo.curl(1, port=VPORT, source=source)[0] for source in topo.client_aliases}
    after = lbxdp.status()
    assert answers == moved
    assert after.first_packets - before.first_packets <= 2, after.text
    assert after.reasons.get("pass_hash_empty", 0) == before.reasons.get("pass_hash_empty", 0), after.text
