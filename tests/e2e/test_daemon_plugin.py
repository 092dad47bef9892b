"""A scheduler written as a plugin (examples/plugin_scheduler/pyrr.py, plain round robin) balances
real traffic: XDP cannot run it, so the first packet of every connection goes through NFQUEUE to
the daemon, which schedules it with the plugin, installs the flow and forwards the packet. Exact
rotation for TCP (curl) and UDP, and the plugin sees edits (a quiescent real is skipped).

The plugin is loaded the documented way, from LBXDP_SCHEDULERS in the environment of the CLI and
of the daemon it starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached, tally

from lb.bench.live import PLUGIN_SCHED, PLUGIN_SPEC
from lb.datapath.testbed import Topology, two_arm, wait_until
from lb.sched.registry import ENV_VAR

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
UDP_PORT = 5353


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_VAR, PLUGIN_SPEC)  # the testbed's commands inherit this process's environment
        with two_arm(reals=3) as topo:
            topo.start_http_servers(port=HTTP_PORT)
            topo.start_udp_servers(port=UDP_PORT)
            with attached(topo) as lbxdp:
                yield topo, lbxdp
        assert_torn_down(topo)


@pytest.fixture
def topo(lab: tuple[Topology, Lbxdp]) -> Topology:
    return lab[0]


@pytest.fixture
def lbxdp(lab: tuple[Topology, Lbxdp]) -> Lbxdp:
    return lab[1]


def _first_path(lbxdp: Lbxdp) -> tuple[int, int]:
    """(packets through NFQUEUE, flows the daemon scheduled) from `lbxdp status --json`."""
    data = json.loads(lbxdp("status", "--json").stdout)
    return int(data["first_path_packets"]), int(data["first_path_events"].get("scheduled", 0))


def _queue_left(lbxdp: Lbxdp) -> int:
    """Packets NFQUEUE still holds for the daemon. The daemon sends each original it dropped (it
    transmitted the rewritten copy) in a batch verdict: a lost batch would leave them here, while
    the clients, answered through the copies, would never notice."""
    return int(json.loads(lbxdp("status", "--json").stdout)["first_path_queue"]["waiting"])


def test_plugin_round_robin_gives_exact_rotation_through_nfqueue(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:80"
    lbxdp.service(service, PLUGIN_SCHED, [(f"{r.ip}:{HTTP_PORT}", "-m") for r in topo.reals])
    assert f"{PLUGIN_SCHED}" in lbxdp("-L", "-n", "-t", service).stdout
    packets0, scheduled0 = _first_path(lbxdp)
    answers = topo.curl(30, port=80)
    assert answers[:3] == ["r1", "r2", "r3"], answers  # the plugin starts at the first real added
    assert all(answers[i] == answers[i % 3] for i in range(30)), answers
    packets, scheduled = _first_path(lbxdp)
    assert scheduled - scheduled0 == 30  # every connection scheduled by the daemon, once
    assert packets - packets0 >= 30  # its first packet came up through NFQUEUE
    wait_until(lambda: _queue_left(lbxdp) == 0, timeout=3, what="NFQUEUE empty: every original dropped")


def test_plugin_sees_edits_and_skips_a_quiescent_real(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:81"
    lbxdp.service(service, PLUGIN_SCHED, [(f"{r.ip}:{HTTP_PORT}", "-m") for r in topo.reals])
    assert topo.curl(2, port=81) == ["r1", "r2"]
    lbxdp("-e", "-t", service, "-r", f"{topo.reals[1].ip}:{HTTP_PORT}", "-m", "-w", "0")
    # update() starts the plugin over from the first real; r2 (weight 0) takes nothing new
    assert topo.curl(6, port=81) == ["r1", "r3"] * 3


def test_plugin_round_robin_over_udp(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:53"
    lbxdp.service(service, PLUGIN_SCHED, [(f"{r.ip}:{UDP_PORT}", "-m") for r in topo.reals], udp=True)
    _, scheduled0 = _first_path(lbxdp)
    answers = [topo.udp_query(port=53) for _ in range(9)]
    assert answers == ["r1", "r2", "r3"] * 3, answers
    assert tally(answers) == {"r1": 3, "r2": 3, "r3": 3}
    assert _first_path(lbxdp)[1] - scheduled0 == 9
    wait_until(lambda: _queue_left(lbxdp) == 0, timeout=3, what="NFQUEUE empty: every original dropped")
