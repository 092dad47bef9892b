"""Persistence in XDP, end to end: an `rr -p` service's connections are scheduled by the XDP
program, which keeps each client on the real its template names (the `templates` map), with no
packet through NFQUEUE; rr still spreads different clients. Timeouts and refresh rules are in
tests/e2e/test_liveness_persistence.py (now on this same path); the rules against the model in
tests/bpf/test_persist_xdp.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached

from lb.datapath.testbed import Topology, two_arm

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
VPORT = 80
CLIENTS = 6
ROUNDS = 4  # connections per client


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3, client_aliases=CLIENTS) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        with attached(topo) as lbxdp:
            yield topo, lbxdp
    assert_torn_down(topo)


def test_rr_persistent_clients_stay_on_their_real_without_nfqueue(lab: tuple[Topology, Lbxdp]) -> None:
    topo, lbxdp = lab
    service = f"{topo.vip}:{VPORT}"
    lbxdp.service(service, "rr", [(f"{r.ip}:{HTTP_PORT}", "-m") for r in topo.reals], extra=("-p", "300"))
    before = lbxdp.status()
    answers: dict[str, list[str | None]] = {source: [] for source in topo.client_aliases}
    for _ in range(ROUNDS):  # interleaved, so rr's cursor moves between a client's connections
        for source in topo.client_aliases:
            answers[source] += topo.curl(1, port=VPORT, source=source)
    after = lbxdp.status()
    print(lbxdp.log_tail(30))
    for source, got in answers.items():
        assert None not in got and len(set(got)) == 1, (source, answers)
    assert len({got[0] for got in answers.values()}) == 3, answers  # rr spread the clients
    # A client port reused while its closed flow is still in the table comes up as a
    # PASS_FLOW_REUSE; the daemon then reads the same templates. Nothing else goes through NFQUEUE.
    reused = after.reasons.get("pass_flow_reuse", 0) - before.reasons.get("pass_flow_reuse", 0)
    assert after.first_packets - before.first_packets <= reused, after.text
    assert lbxdp.stats(service)[f"TCP {service}"][0] == CLIENTS * ROUNDS
