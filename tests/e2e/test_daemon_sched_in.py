"""Issue 13, end to end: with `--sched-in xdp` (the default) XDP decides the first packets of rr,
wrr, wlc, sh, persistent and UDP services, so real traffic (curl, UDP sockets) passes ZERO packets
through NFQUEUE (`first_path_packets` of `lbxdp status --json`), and the schedulers still give
exact rr thirds and exact 3:2:1 wrr cycles; with `--sched-in daemon` every first packet goes to the
Python schedulers, and the same tests pass. `lbxdp -L` and `status` say which, per service.

Each test runs twice, once per lab: a topology whose daemon was attached with `--sched-in xdp`,
and one with `--sched-in daemon` (two attaches for the module: bcc compiles for seconds). Each test
owns a VIP port and its own client source address, so no test's flows or reverse entries (real:port
→ client:port, which XDP never overwrites) meet another's.

"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from lbxdp_helpers import ATTACH_TIMEOUT, Lbxdp, assert_torn_down, lbxdp_processes, tally

from lb.datapath.testbed import Topology, two_arm, wait_until

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
UDP_PORT = 5353
ALIASES = 21
BOTH = pytest.mark.parametrize("lab", ["xdp", "daemon"], indirect=True)  # run in the xdp lab and the daemon lab


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[tuple[Topology, Lbxdp]]:
    sched_in = request.param
    with two_arm(reals=3, client_aliases=ALIASES) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        topo.start_udp_servers(port=UDP_PORT)
        lbxdp = Lbxdp(topo)
        lbxdp("attach", *(i.name for i in topo.lb_ifaces), "--sched-in", sched_in, timeout=ATTACH_TIMEOUT)
        try:
            assert status(lbxdp)["sched_in"] == sched_in
            yield topo, lbxdp
        finally:
            lbxdp("detach", check=False)
    assert_torn_down(topo)


def status(lbxdp: Lbxdp) -> dict[str, Any]:
    return json.loads(lbxdp("status", "--json").stdout)  # type: ignore[no-any-return]


def masq_reals(topo: Topology, port: int = HTTP_PORT, weights: tuple[int, ...] = (1, 1, 1)) -> list[tuple[str, ...]]:
    return [(f"{r.ip}:{port}", "-m", "-w", str(w)) for r, w in zip(topo.reals, weights, strict=True)]


class Through:
    """How many packets went through NFQUEUE while the body ran (`first_path_packets`)."""

    def __init__(self, lbxdp: Lbxdp) -> None:
        self.lbxdp = lbxdp
        self.packets = -1

    def __enter__(self) -> Through:
        self.before = status(self.lbxdp)["first_path_packets"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.packets = status(self.lbxdp)["first_path_packets"] - self.before


def where_decided(lbxdp: Lbxdp, proto: str, service: str) -> str:
    """The service's row of `-L -n`'s "First packets decided in:" section, checked against status."""
    listing = lbxdp("-L", "-n").stdout
    _, found, section = listing.partition("First packets decided in:\n")
    assert found, listing
    rows = {" ".join(line.split()[:2]): " ".join(line.split()[2:]) for line in section.splitlines()
            if line.startswith("  ")}
    where = rows[f"{proto} {service}"]
    assert status(lbxdp)["first_packets_decided"][f"{proto} {service}"] == where
    return where


def check_decided(lbxdp: Lbxdp, through: Through, proto: str, service: str, flows: int) -> None:
    """xdp lab: XDP decided every first packet (none through NFQUEUE) and -L says xdp; daemon lab:
    every first packet went through NFQUEUE and -L says why."""
    where = where_decided(lbxdp, proto, service)
    if status(lbxdp)["sched_in"] == "xdp":
        assert (through.packets, where) == (0, "xdp"), lbxdp.status().text
    else:
        assert where == "daemon (--sched-in daemon)"
        assert through.packets >= flows, lbxdp.status().text


@BOTH
def test_rr_gives_exact_thirds(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:80"
    lbxdp.service(service, "rr", masq_reals(topo))
    with Through(lbxdp) as through:
        answers = topo.curl(30, port=80, source=topo.client_aliases[0])
    assert tally(answers) == {"r1": 10, "r2": 10, "r3": 10}, answers
    assert all(answers[i] == answers[i % 3] for i in range(30)), answers  # the same order every cycle
    check_decided(lbxdp, through, "TCP", service, 30)


@BOTH
def test_wrr_gives_exact_3_2_1_over_whole_cycles(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:81"
    lbxdp.service(service, "wrr", masq_reals(topo, weights=(3, 2, 1)))
    with Through(lbxdp) as through:
        answers = topo.curl(24, port=81, source=topo.client_aliases[1])
    for cycle in range(4):
        assert tally(answers[cycle * 6:(cycle + 1) * 6]) == {"r1": 3, "r2": 2, "r3": 1}, answers
    check_decided(lbxdp, through, "TCP", service, 24)


@BOTH
def test_wlc_carries_real_traffic(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:82"
    lbxdp.service(service, "wlc", masq_reals(topo, weights=(2, 1, 1)))
    with Through(lbxdp) as through:
        answers = topo.curl(24, port=82, source=topo.client_aliases[2])
    assert None not in answers and len(set(answers)) >= 2, answers  # balanced, not pinned to one real
    check_decided(lbxdp, through, "TCP", service, 24)


@BOTH
def test_sh_keeps_each_client_address_on_one_real(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:83"
    lbxdp.service(service, "sh", masq_reals(topo))
    sources = topo.client_aliases[8:20]
    with Through(lbxdp) as through:
        seen = {source: set(topo.curl(3, port=83, source=source)) for source in sources}
    assert all(len(reals) == 1 and None not in reals for reals in seen.values()), seen
    assert len(set().union(*seen.values())) > 1, f"12 sources all hashed to one real: {seen}"
    check_decided(lbxdp, through, "TCP", service, 36)


@BOTH
def test_persistence_keeps_a_client_on_its_real(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:84"
    lbxdp.service(service, "rr", masq_reals(topo), extra=("-p", "60"))
    with Through(lbxdp) as through:
        first = topo.curl(9, port=84, source=topo.client_aliases[3])
        second = topo.curl(9, port=84, source=topo.client_aliases[4])
    assert None not in first + second and len(set(first)) == 1 and len(set(second)) == 1, (first, second)
    assert first[0] != second[0], (first, second)  # rr between the templates: the next client, the next real
    check_decided(lbxdp, through, "TCP", service, 18)


@BOTH
def test_udp_rr_gives_exact_thirds(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:53"
    lbxdp.service(service, "rr", masq_reals(topo, UDP_PORT), udp=True)
    with Through(lbxdp) as through:
        # every query from a new socket: a new source port, so a new flow each
        answers = [topo.udp_query(port=53, source=topo.client_aliases[5]) for _ in range(9)]
    assert tally(answers) == {"r1": 3, "r2": 3, "r3": 3}, answers
    check_decided(lbxdp, through, "UDP", service, 9)


@pytest.mark.parametrize("lab", ["xdp"], indirect=True)
def test_the_switch_takes_effect_on_a_running_daemon_is_kept_across_restarts_and_says_why(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:85"
    lbxdp.service(service, "mh", masq_reals(topo))  # decided in XDP before this issue already
    lbxdp.service(f"{topo.vip}:86", "mh", [(f"{r.ip}:{HTTP_PORT}", "-m", "-x", "100") for r in topo.reals])
    assert where_decided(lbxdp, "TCP", service) == "xdp"
    assert where_decided(lbxdp, "TCP", f"{topo.vip}:86") == "daemon (connection thresholds set)"
    with Through(lbxdp) as through:  # a service XDP does not decide still works, through NFQUEUE
        assert None not in topo.curl(3, port=86, source=topo.client_aliases[6])
    assert through.packets >= 3
    ifaces = [i.name for i in topo.lb_ifaces]
    try:
        lbxdp("attach", *ifaces, "--sched-in", "daemon", timeout=ATTACH_TIMEOUT)
        assert status(lbxdp)["sched_in"] == "daemon"
        assert "first packets decided in (--sched-in daemon):" in lbxdp("status").stdout
        assert where_decided(lbxdp, "TCP", service) == "daemon (--sched-in daemon)"
        with Through(lbxdp) as through:
            assert None not in topo.curl(6, port=85, source=topo.client_aliases[7])
        assert through.packets >= 6
        # kept across restarts: SIGTERM keeps the saved state, and a new daemon started without
        # the option takes the saved choice
        os.kill(int(status(lbxdp)["pid"]), signal.SIGTERM)
        wait_until(lambda: not lbxdp_processes(topo), timeout=10, what="the daemon gone")
        lbxdp("attach", *ifaces, timeout=ATTACH_TIMEOUT)
        assert status(lbxdp)["sched_in"] == "daemon"
        assert where_decided(lbxdp, "TCP", service) == "daemon (--sched-in daemon)"
    finally:
        lbxdp("attach", *ifaces, "--sched-in", "xdp", timeout=ATTACH_TIMEOUT)
    assert where_decided(lbxdp, "TCP", service) == "xdp"
    with Through(lbxdp) as through:
        assert None not in topo.curl(6, port=85, source=topo.client_aliases[20])
    assert through.packets == 0, lbxdp.status().text
