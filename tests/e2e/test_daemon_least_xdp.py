"""The least-connection family in XDP, end to end: a wlc service's new connections are decided by the
XDP program (none goes through NFQUEUE), land where lb.sched.wlc would send them given the counts XDP
keeps, and the daemon's sweep rewrites `real_conns` from the flow table, whatever XDP left there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached, lbxdp_processes, tally

from lb.datapath.testbed import Topology, two_arm, wait_until

pytestmark = [pytest.mark.root, pytest.mark.e2e]

TCP_PORT = 7000
VPORT = 9040


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3, client_aliases=4) as topo:
        topo.start_tcp_servers(port=TCP_PORT)
        with attached(topo) as lbxdp:
            yield topo, lbxdp
    assert_torn_down(topo)


# The daemon's maps are pinned in the bpffs its own mount namespace holds: read and written from there.
_CONNS = ("import json, sys; from pathlib import Path; from lb.datapath.maps import DatapathMaps; "
          "maps = DatapathMaps.open_pinned(Path(sys.argv[1])); "
          "sys.argv[2:] and maps.set_conns(*map(int, sys.argv[2:])); "
          "print(json.dumps(sorted(maps.conns_table().values())))")


def _real_conns(lbxdp: Lbxdp, *set_conns: int) -> list[tuple[int, int]]:
    """Every real_conns entry other than (0, 0), sorted; first `set_conns` (real id, active, inactive)."""
    daemon = lbxdp_processes(lbxdp.topo)[0]
    done = lbxdp.topo.run("lb", ["nsenter", "-t", str(daemon), "-m", sys.executable, "-c", _CONNS,
                                 str(lbxdp.pin_dir), *map(str, set_conns)])
    return [tuple(pair) for pair in json.loads(done.stdout)]


def _active(lbxdp: Lbxdp, service: str) -> dict[str, int]:
    """Real address → ActiveConn of `-L -n` (the daemon's count at its last sweep)."""
    return {rip.split(":")[0]: row[2] for rip, row in lbxdp.conns(service).items()}


def test_wlc_is_decided_in_xdp_counted_there_and_reconciled_by_the_sweep(lab: tuple[Topology, Lbxdp]) -> None:
    topo, lbxdp = lab
    service = f"{topo.vip}:{VPORT}"
    weights = (2, 1, 1)
    lbxdp.service(service, "wlc", [(f"{r.ip}:{TCP_PORT}", "-m", "-w", str(w))
                                   for r, w in zip(topo.reals, weights, strict=True)])
    queued = lbxdp.status().first_packets
    # Eight connections back to back, well within one sweep: each counts in XDP as it opens (and is
    # active once its handshake's ACK went through), so they follow the weights 2:1:1.
    held = [topo.hold(port=VPORT) for _ in range(8)]
    names = [conn.exchange(1) for conn in held]
    assert tally(names) == {"r1": 4, "r2": 2, "r3": 2}, names
    assert lbxdp.status().first_packets == queued  # no first packet went up to the daemon
    expected = {r.ip: 4 if r.name == "r1" else 2 for r in topo.reals}
    wait_until(lambda: _active(lbxdp, service) == expected, timeout=5, what=f"ActiveConn {expected}")
    assert _real_conns(lbxdp) == [(2, 0), (2, 0), (4, 0)]

    # Whatever XDP's counts became, the next sweep writes the flow table's count back (real ids are
    # handed out from 1: one of the three).
    assert _real_conns(lbxdp, 1, 100, -7) != [(2, 0), (2, 0), (4, 0)]
    wait_until(lambda: _real_conns(lbxdp) == [(2, 0), (2, 0), (4, 0)], timeout=5,
               what="real_conns rewritten by a sweep")
    # The clients' FINs take the connections off active (XDP sees them; the sweep agrees).
    for conn in held:
        conn.close()  # type: ignore[attr-defined]
    wait_until(lambda: all(active == 0 for active, _ in _real_conns(lbxdp)), timeout=5,
               what="no active connection left in real_conns")
    lbxdp("-D", "-t", service)
