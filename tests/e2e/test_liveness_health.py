"""Issue 5, health checks: a real whose server dies (TCP check) or answers 500 (HTTP check) leaves
scheduling within fall × interval and comes back within rise × interval of recovering; `-L -n`
shows DOWN/UP with the last result; a dead real's established flows are expired (the default, as
IPVS's expire_nodest_conn) or kept (`--dead-flows keep`).

One lab (topology + attach) for the module; each test owns its service port on the VIP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, tally
from liveness_helpers import HTTP_PORT, TCP_PORT, Lab, health_states, lab, status_json, timed

pytestmark = [pytest.mark.root, pytest.mark.e2e]

INTERVAL = 0.5
TIMEOUT = 0.4
RISE = 2
FALL = 2
TICK = 1.0  # the daemon applies health transitions on its 1 s tick (lb/daemon/daemon.py tick())
# A transition needs FALL (RISE) probes after the change; the first of them may come up to one
# interval after it, a probe takes up to TIMEOUT, the daemon acts on its next tick, and observing
# costs a CLI round trip or a few curls.
MARGIN = INTERVAL + TIMEOUT + TICK + 0.6
DOWN_WITHIN = FALL * INTERVAL + MARGIN
UP_WITHIN = RISE * INTERVAL + MARGIN
CHECK = ("--interval", str(INTERVAL), "--timeout", str(TIMEOUT), "--rise", str(RISE), "--fall", str(FALL))


@pytest.fixture(scope="module")
def world() -> Iterator[Lab]:
    with lab() as built:
        yield built


@pytest.fixture
def lbxdp(world: Lab) -> Iterator[Lbxdp]:
    yield world.lbxdp
    print(world.lbxdp.log_tail(60))  # shown only when the test failed


def all_checked_up(lbxdp: Lbxdp, service: str) -> bool:
    rows = health_states(lbxdp, service)
    return len(rows) == 3 and all(state == "UP" and last != "not checked" for state, last in rows.values())


def test_tcp_check_takes_a_dead_server_out_and_brings_it_back(world: Lab, lbxdp: Lbxdp) -> None:
    topo, service = world.topo, world.vip(80)
    lbxdp.service(service, "rr", world.reals(HTTP_PORT))
    lbxdp("health", "-t", service, "--check", "tcp", *CHECK)
    timed(lambda: all_checked_up(lbxdp, service), 5, "every real checked and UP")
    assert tally(topo.curl(6, port=80)) == {"r1": 2, "r2": 2, "r3": 2}
    r1 = world.rip("r1", HTTP_PORT)

    topo.stop(world.http["r1"])
    down_after = timed(lambda: health_states(lbxdp, service)[r1][0] == "DOWN", DOWN_WITHIN, "r1 DOWN")
    # r1's dead server refuses (curl: None); once out of scheduling nothing goes there.
    left_after = timed(lambda: set(topo.curl(3, port=80)) == {"r2", "r3"}, DOWN_WITHIN, "r1 out of scheduling")
    _state, last = health_states(lbxdp, service)[r1]
    assert "tcp" in last and last != "not checked", last
    # Out of scheduling at once: every new connection is answered, by the other two, in turn.
    answers = topo.curl(12, port=80)
    assert tally(answers) == {"r2": 6, "r3": 6}, answers
    assert {s for r, (s, _) in health_states(lbxdp, service).items() if r != r1} == {"UP"}

    world.restart_http("r1")
    up_after = timed(lambda: health_states(lbxdp, service)[r1][0] == "UP", UP_WITHIN, "r1 UP again")
    back_after = timed(lambda: "r1" in topo.curl(3, port=80), UP_WITHIN, "r1 scheduled again")
    answers = topo.curl(6, port=80)
    assert tally(answers) == {"r1": 2, "r2": 2, "r3": 2}, answers
    print(f"r1 DOWN in -L {down_after:.2f} s after its server died, unscheduled {left_after:.2f} s later; "
          f"UP {up_after:.2f} s after it restarted, scheduled {back_after:.2f} s later")


def test_http_check_takes_a_real_answering_500_out_and_back(world: Lab, lbxdp: Lbxdp) -> None:
    topo, service = world.topo, world.vip(81)
    lbxdp.service(service, "rr", world.reals(HTTP_PORT))
    lbxdp("health", "-t", service, "--check", "http", "--path", "/health", "--expect", "200", *CHECK)
    timed(lambda: all_checked_up(lbxdp, service), 5, "every real checked and UP")
    r2 = world.rip("r2", HTTP_PORT)
    sick = topo.fail_file("r2")
    sick.touch()
    try:
        timed(lambda: health_states(lbxdp, service)[r2][0] == "DOWN", DOWN_WITHIN, "r2 DOWN")
        assert "500" in health_states(lbxdp, service)[r2][1]
        timed(lambda: "r2" not in topo.curl(3, port=81), TICK + 0.6, "r2 out of scheduling")
        # r2's server is alive and would answer (500) if asked: no answer from it means no
        # connection reached it.
        answers = topo.curl(12, port=81)
        assert tally(answers) == {"r1": 6, "r3": 6}, answers
        listing = lbxdp("-L", "-n").stdout
        assert "http GET /health expect 200" in listing, listing
    finally:
        sick.unlink(missing_ok=True)
    timed(lambda: health_states(lbxdp, service)[r2][0] == "UP", UP_WITHIN, "r2 UP again")
    assert "200" in health_states(lbxdp, service)[r2][1]
    timed(lambda: "r2" in topo.curl(3, port=81), TICK + 0.6, "r2 scheduled again")
    answers = topo.curl(6, port=81)
    assert tally(answers) == {"r1": 2, "r2": 2, "r3": 2}, answers


@pytest.mark.parametrize("dead_flows, port", [("expire", 9000), ("keep", 9002)])
def test_dead_real_established_flows(world: Lab, lbxdp: Lbxdp, dead_flows: str, port: int) -> None:
    """Held TCP connections to the line-echo servers; the real's health comes from its HTTP server
    (`--port`), so it can be failed while its echo server and connections stay up."""
    topo, service = world.topo, world.vip(port)
    lbxdp.service(service, "rr", world.reals(TCP_PORT))
    lbxdp("health", "-t", service, "--check", "http", "--port", str(HTTP_PORT), "--dead-flows", dead_flows, *CHECK)
    timed(lambda: all_checked_up(lbxdp, service), 5, "every real checked and UP")
    held = [topo.hold(port=port, timeout=1.0) for _ in range(3)]
    by_real = {conn.exchange(2): conn for conn in held}
    assert set(by_real) == {"r1", "r2", "r3"}, by_real
    sick = topo.fail_file("r3")
    sick.touch()
    try:
        timed(lambda: health_states(lbxdp, world.vip(port))[world.rip("r3", TCP_PORT)][0] == "DOWN",
              DOWN_WITHIN, "r3 DOWN")
        time.sleep(TICK + 0.1)  # the daemon acts on the transition at its next tick
        dropped_before = status_json(lbxdp)["first_path_events"].get("no_flow_not_syn", 0)
        assert by_real["r1"].exchange(3) == "r1"
        assert by_real["r2"].exchange(3) == "r2"
        if dead_flows == "expire":
            # The flow is gone: the next segment misses in XDP, and the daemon drops a mid-stream
            # packet it has no flow for (as IPVS does), so the connection to r3 is dead.
            with pytest.raises((OSError, ConnectionError)):
                by_real["r3"].exchange(1)
            events = status_json(lbxdp)["first_path_events"]
            assert events.get("no_flow_not_syn", 0) > dropped_before, events
        else:
            assert by_real["r3"].exchange(3) == "r3"
        new = [topo.tcp_exchange(1, port=port) for _ in range(6)]
        assert tally(new) == {"r1": 3, "r2": 3}, new
    finally:
        sick.unlink(missing_ok=True)
        for conn in held:
            conn.close()
    timed(lambda: health_states(lbxdp, world.vip(port))[world.rip("r3", TCP_PORT)][0] == "UP",
          UP_WITHIN, "r3 UP again")
    time.sleep(TICK + 0.1)  # back in scheduling before the next test fails it again
