"""Issue 4, masquerading in the two-arm topology: every scheduler balances real connections from
curl, wrk and held TCP sockets to Python servers whose port differs from the VIP's, established
flows never move, and `-L -n --stats` / `lbxdp status` count what the client really sent.

One topology and one attach for the whole module (bcc compiles for seconds); each test owns its
own service port on the VIP, so tests do not see each other's flows or counters. The daemon is
attached with `--sched-in daemon`: these tests hold the first-packet path (NFQUEUE) to its counts;
test_daemon_sched_in.py runs the schedulers with XDP deciding.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import struct
from collections.abc import Iterator

import pytest
from lbxdp_helpers import FIRST_PATH, Lbxdp, Traffic, assert_torn_down, attached, capture, tally

from lb.datapath import queuestats
from lb.datapath.testbed import Topology, two_arm, wait_until

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080  # every real's HTTP server; the VIP's ports are 80..89
TCP_PORT = 9001  # line-echo servers for held connections; the VIP's ports are 9000..9099
UDP_PORT = 5353
ALIASES = 30


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3, client_aliases=ALIASES) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        topo.start_tcp_servers(port=TCP_PORT)
        topo.start_udp_servers(port=UDP_PORT)
        with attached(topo, *FIRST_PATH) as lbxdp:
            yield topo, lbxdp
    assert_torn_down(topo)


def masq_reals(topo: Topology, port: int = HTTP_PORT, weights: tuple[int, ...] = (1, 1, 1)
               ) -> list[tuple[str, ...]]:
    return [(f"{r.ip}:{port}", "-m", "-w", str(w)) for r, w in zip(topo.reals, weights, strict=True)]


def vip(topo: Topology, port: int) -> str:
    return f"{topo.vip}:{port}"


def held_counts(lbxdp: Lbxdp, service: str) -> dict[str, int]:
    """Real address → ActiveConn from `-L -n` (the daemon recounts every second)."""
    return {rip.split(":")[0]: row[2] for rip, row in lbxdp.conns(service).items()}


def await_active(lbxdp: Lbxdp, service: str, expected: dict[str, int]) -> None:
    wait_until(lambda: held_counts(lbxdp, service) == expected, timeout=5,
               what=f"ActiveConn {expected} on {service}")


# -- schedulers -----------------------------------------------------------------------------------


def test_rr_gives_exact_thirds(topo: Topology, lbxdp: Lbxdp) -> None:
    lbxdp.service(vip(topo, 80), "rr", masq_reals(topo))
    answers = topo.curl(30, port=80)
    assert tally(answers) == {"r1": 10, "r2": 10, "r3": 10}, answers
    # Round robin: the same order every cycle.
    assert all(answers[i] == answers[i % 3] for i in range(30)), answers


def test_wrr_gives_exact_3_2_1_over_whole_cycles(topo: Topology, lbxdp: Lbxdp) -> None:
    lbxdp.service(vip(topo, 81), "wrr", masq_reals(topo, weights=(3, 2, 1)))
    answers = topo.curl(24, port=81)
    for cycle in range(4):
        assert tally(answers[cycle * 6:(cycle + 1) * 6]) == {"r1": 3, "r2": 2, "r3": 1}, answers


def test_sh_keeps_each_client_address_on_one_real(topo: Topology, lbxdp: Lbxdp) -> None:
    lbxdp.service(vip(topo, 82), "sh", masq_reals(topo))
    seen: dict[str, set[str | None]] = {}
    for source in topo.client_aliases[:12]:
        seen[source] = set(topo.curl(3, port=82, source=source))
    assert all(len(reals) == 1 and None not in reals for reals in seen.values()), seen
    assert len(set().union(*seen.values())) > 1, f"12 sources all hashed to one real: {seen}"


def test_mh_spreads_sources_and_is_stable(topo: Topology, lbxdp: Lbxdp) -> None:
    # Line-echo connections made in this process: 120 connections without 120 curl processes.
    lbxdp.service(vip(topo, 9040), "mh", masq_reals(topo, TCP_PORT))

    def ask(source: str) -> list[str]:
        return [topo.tcp_exchange(1, port=9040, source=source) for _ in range(2)]

    first = {s: ask(s) for s in topo.client_aliases}
    again = {s: ask(s) for s in topo.client_aliases}
    for source in topo.client_aliases:
        answers = first[source] + again[source]
        assert None not in answers and len(set(answers)) == 1, (source, answers)
    spread = tally([first[s][0] for s in topo.client_aliases])
    # 30 sources over 3 reals: each real gets some (a miss has probability 3·(2/3)^30 ≈ 2e-5).
    assert set(spread) == {"r1", "r2", "r3"}, spread


@pytest.mark.parametrize("sched, port, weights", [("lc", 9000, (1, 1, 1)), ("wlc", 9010, (2, 1, 1))])
def test_least_connection_picks_fewest_held(topo: Topology, lbxdp: Lbxdp, sched: str, port: int,
                                            weights: tuple[int, ...]) -> None:
    service = vip(topo, port)
    lbxdp.service(service, sched, masq_reals(topo, TCP_PORT, weights))
    ip_of = {r.name: r.ip for r in topo.reals}
    weight = {r.ip: w for r, w in zip(topo.reals, weights, strict=True)}
    held: dict[str, list[object]] = {r.ip: [] for r in topo.reals}
    expected = {r.ip: 0 for r in topo.reals}
    for _ in range(sum(weights)):
        before = held_counts(lbxdp, service)
        conn = topo.hold(port=port)
        real = ip_of[conn.exchange(3)]
        # wlc compares active/weight (lc: weight 1); the choice must be among the least loaded.
        least = min(before[r] / weight[r] for r in before)
        assert before[real] / weight[real] == least, (before, real)
        held[real].append(conn)
        expected[real] += 1
        await_active(lbxdp, service, expected)
    # Every real ends with connections in proportion to its weight.
    assert [expected[r.ip] for r in topo.reals] == list(weights)
    # Close r2's: the next new connection goes to it, the real with fewest held.
    target = topo.real("r2").ip
    for conn in held[target]:
        conn.close()  # type: ignore[attr-defined]
    expected[target] = 0
    await_active(lbxdp, service, expected)
    assert topo.tcp_exchange(2, port=port) == "r2"
    for conns in held.values():
        for conn in conns:
            conn.close()  # type: ignore[attr-defined]


def test_lc_spreads_a_burst_of_new_connections(topo: Topology, lbxdp: Lbxdp) -> None:
    """Three connections opened back to back (well within the daemon's 1 s recount) must still go
    to three different reals: IPVS binds a new connection to its real at once
    (ip_vs_bind_dest counts it as inactive), so the second SYN already sees the first."""
    service = vip(topo, 9020)
    lbxdp.service(service, "lc", masq_reals(topo, TCP_PORT))
    conns = [topo.hold(port=9020) for _ in range(3)]
    names = sorted(c.exchange(1) for c in conns)
    for conn in conns:
        conn.close()
    assert names == ["r1", "r2", "r3"], names


# -- flow affinity --------------------------------------------------------------------------------


def test_held_connection_stays_while_new_ones_move_and_service_is_edited(
        topo: Topology, lbxdp: Lbxdp) -> None:
    port = 9030
    service = vip(topo, port)
    lbxdp.service(service, "rr", masq_reals(topo, TCP_PORT))
    conn = topo.hold(port=port)
    home = conn.exchange(100)
    others = [r for r in topo.reals if r.name != home]

    moved = [topo.tcp_exchange(1, port=port) for _ in range(6)]
    assert tally(moved) == {"r1": 2, "r2": 2, "r3": 2}, moved
    assert conn.exchange(100) == home

    lbxdp("-E", "-t", service, "-s", "wrr")
    lbxdp("-e", "-t", service, "-r", f"{others[0].ip}:{TCP_PORT}", "-m", "-w", "3")
    assert conn.exchange(100) == home
    after_edit = [topo.tcp_exchange(1, port=port) for _ in range(5)]
    assert tally(after_edit) == {others[0].name: 3, home: 1, others[1].name: 1}, after_edit

    # A weight change on the held connection's own real: to 0 it takes no new flows, but keeps
    # the established one (IPVS's quiescent real).
    lbxdp("-e", "-t", service, "-r", f"{topo.real(home).ip}:{TCP_PORT}", "-m", "-w", "0")
    drained = [topo.tcp_exchange(1, port=port) for _ in range(6)]
    assert home not in drained and None not in drained, drained
    assert conn.exchange(100) == home
    lbxdp("-E", "-t", service, "-s", "sh")
    assert conn.exchange(100) == home
    conn.close()


# -- counters -------------------------------------------------------------------------------------


def _counted(topo: Topology, lbxdp: Lbxdp, port: int, sched: str, client: list[str],
             udp: bool = False) -> tuple[Traffic, dict[str, list[int]], int, int]:
    """Make traffic with `client` ("curl N", "wrk", "udp N") on a fresh service at VIP:port;
    returns what the client's interface saw, `-L --stats`, and the status deltas (first-packet
    path packets, flow misses passed up by XDP)."""
    service = vip(topo, port)
    real_port = UDP_PORT if udp else HTTP_PORT
    lbxdp.service(service, sched, masq_reals(topo, real_port), udp=udp)
    before = lbxdp.status()
    seen: list[Traffic] = []
    with capture(topo, topo.vip, port, udp=udp, result=seen):
        kind, *args = client
        if kind == "curl":
            assert None not in topo.curl(int(args[0]), port=port)
        elif kind == "udp":
            answers = [topo.udp_query(port=port) for _ in range(int(args[0]))]
            assert tally(answers) == {"r1": 3, "r2": 3, "r3": 3}, answers
        else:
            out = topo.run("client", ["wrk", "-t1", "-c4", "-d2s", f"http://{service}/"],
                           timeout=20).stdout
            requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
            assert requests > 20 and "Non-2xx" not in out and "Socket errors" not in out, out
    after = lbxdp.status()
    passed_up = ("pass_flow_miss", "pass_flow_reuse")  # no flow; a SYN reusing a closed flow's port
    return (seen[0], lbxdp.stats(service, udp=udp), after.first_packets - before.first_packets,
            sum(after.reasons.get(r, 0) - before.reasons.get(r, 0) for r in passed_up))


def _check_counters(topo: Topology, traffic: Traffic, stats: dict[str, list[int]],
                    proto: str, port: int, first: int, misses: int) -> None:
    conns, in_pkts, out_pkts, in_bytes, out_bytes = stats[f"{proto} {topo.vip}:{port}"]
    assert conns == first, (stats, traffic, first)
    per_real = [stats[f"{r.ip}:{HTTP_PORT if proto == 'TCP' else UDP_PORT}"][0] for r in topo.reals]
    assert max(per_real) - min(per_real) <= 1 and sum(per_real) == conns, (stats, traffic)
    # Replies all take the fast path (the reverse entry exists before the real answers).
    assert (out_pkts, out_bytes) == (traffic.out_pkts, traffic.out_bytes), (stats, traffic)
    # Only the first packet of each connection reaches user space (a retransmitted SYN finds the
    # flow installed and stays in XDP). A SYN on a flow that saw FIN or RST from the client is
    # scheduled anew (test_reused_client_port_is_a_new_connection): a reused port, or a SYN the
    # client sends again after resetting its first attempt (a real still in TIME_WAIT for that
    # client port, from an earlier service on the same real port, answers the first SYN with an
    # ACK; the client resets and retries with the same ISN). Hence the range; exact with neither.
    assert first == misses and traffic.tuples <= first <= traffic.syns, (first, misses, traffic)
    # ipvsadm's InPkts/InBytes count every packet forwarded to the real, each flow's first one
    # (which took the NFQUEUE path) included: ip_vs_in_stats runs for it too. Bytes are IP lengths.
    assert (in_pkts, in_bytes) == (traffic.in_pkts, traffic.in_bytes), (stats, traffic)


def test_curl_stats_and_first_packet_path(topo: Topology, lbxdp: Lbxdp) -> None:
    traffic, stats, first, misses = _counted(topo, lbxdp, 84, "rr", ["curl", "9"])
    assert traffic.flows == traffic.tuples == 9 and first == 9, (traffic, first)
    _check_counters(topo, traffic, stats, "TCP", 84, first, misses)


def test_wrk_stats_and_first_packet_path(topo: Topology, lbxdp: Lbxdp) -> None:
    traffic, stats, first, misses = _counted(topo, lbxdp, 85, "rr", ["wrk"])
    _check_counters(topo, traffic, stats, "TCP", 85, first, misses)


def test_udp_masquerading_carries_datagrams(topo: Topology, lbxdp: Lbxdp) -> None:
    traffic, stats, first, misses = _counted(topo, lbxdp, 53, "rr", ["udp", "9"], udp=True)
    assert (traffic.flows, traffic.in_pkts, traffic.out_pkts) == (9, 9, 9), traffic
    assert stats[f"UDP {topo.vip}:53"] == [9, 9, 9, traffic.in_bytes, traffic.out_bytes], stats
    assert first == misses == 9


REUSED_PORT = 61001  # above ip_local_port_range (32768-60999): no ephemeral connection holds it


def _request_from_port(topo: Topology, service: str, port: int) -> str:
    """One HTTP request from the client namespace, from a fixed source port; the real that answered."""
    address, vport = service.split(":")
    sock = topo.socket("client")
    try:
        sock.settimeout(3.0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.bind((topo.client.ip, port))
        sock.connect((address, int(vport)))
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    finally:
        sock.close()
    for line in reply.decode(errors="replace").splitlines():
        if line.lower().startswith("x-real-server:"):
            return line.split(":", 1)[1].strip()
    return ""


def test_reused_client_port_is_a_new_connection(topo: Topology, lbxdp: Lbxdp) -> None:
    """Two requests from the exact same client address and port, the second while the balancer still
    holds the first flow as closing: the second is a new connection, scheduled afresh (rr moves on).

    The client socket binds the port with SO_REUSEADDR and closes with an RST (SO_LINGER 0), so no
    TIME_WAIT of the first connection can keep the port from being bound again."""
    service = vip(topo, 87)
    lbxdp.service(service, "rr", masq_reals(topo))
    before = lbxdp.status()
    answers, errors = [], []
    for _ in range(2):
        try:
            answers.append(_request_from_port(topo, service, REUSED_PORT))
        except OSError as exc:
            answers.append("")
            errors.append(str(exc))
    conns = lbxdp.stats(service)[f"TCP {service}"][0]
    first = lbxdp.status().first_packets - before.first_packets
    assert (answers, conns, first) == (["r1", "r2"], 2, 2), errors


# -- the kernel's side of the first-packet queue ----------------------------------------------------


def test_status_shows_first_packets_the_kernel_holds_while_the_daemon_is_stopped(topo: Topology,
                                                                                  lbxdp: Lbxdp) -> None:
    lbxdp.service(vip(topo, 88), "rr", masq_reals(topo))
    pid = json.loads(lbxdp("status", "--json").stdout)["pid"]

    def kernel_queue() -> queuestats.QueueStats:
        text = topo.run("lb", ["cat", str(queuestats.PROC_PATH)]).stdout
        return queuestats.parse(text, 4711)

    sock = topo.socket("client")
    sock.setblocking(False)
    os.kill(pid, signal.SIGSTOP)
    try:
        sock.connect_ex((topo.vip, 88))
        wait_until(lambda: kernel_queue().waiting >= 1, timeout=5, what="the SYN held in NFQUEUE")
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        # the daemon takes the held SYN when it runs again: the connection completes
        _, writable, _ = select.select([], [sock], [], 5)
        assert writable and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    finally:
        sock.close()
    queue = json.loads(lbxdp("status", "--json").stdout)["first_path_queue"]
    assert queue["waiting"] == 0 and queue["length"] == 4096
    assert queue["dropped_full"] == kernel_queue().dropped_full
    assert "NFQUEUE 4711: 0 waiting of 4096, kernel drops: 0 full" in lbxdp("status").stdout
