"""Issue 14, floods: TCP segments of no flow that open none (an ACK flood with random ports) to an rr
service are dropped by XDP (DROP_NO_FLOW_NOT_SYN) and never reach the daemon, while a client's real
connections go on working; to an sh service, whose scheduler re-derives a mid-connection packet's
real, the same segments still go up to the daemon (no drop bit), so the bit works both ways.

The floods are bounded (FLOOD segments to rr, SMALL_FLOOD to sh, each within FLOOD_SECONDS) and stay
inside the lab: spoofed sources are unused addresses of the client's own subnet, sent from the client
namespace through a raw socket; nothing answers them.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, attached
from liveness_helpers import _checksum, status_json, timed

from lb.datapath.testbed import Topology, in_netns_call, two_arm

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HTTP_PORT = 8080
RR_PORT, SH_PORT = 80, 81
FLOOD = 3000  # ACKs to the rr service
SMALL_FLOOD = 200  # ACKs to the sh service: each costs the daemon a scheduled flow
FLOOD_SECONDS = 20.0
TCP_ACK = 0x10


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3) as topo:
        topo.start_http_servers(port=HTTP_PORT)
        with attached(topo) as lbxdp:
            reals = [(f"{r.ip}:{HTTP_PORT}", "-m") for r in topo.reals]
            lbxdp.service(f"{topo.vip}:{RR_PORT}", "rr", reals)
            lbxdp.service(f"{topo.vip}:{SH_PORT}", "sh", reals)
            yield topo, lbxdp
    assert_torn_down(topo)


@pytest.fixture
def lbxdp(lab: tuple[Topology, Lbxdp]) -> Iterator[Lbxdp]:
    yield lab[1]
    print(lab[1].log_tail(60))  # shown only when the test failed


def ack_segment(src: str, sport: int, dst: str, dport: int, seq: int, ack: int) -> bytes:
    """An IPv4 TCP ACK without payload (both checksums right), for a raw IP_HDRINCL socket."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, TCP_ACK, 64240, 0, 0)
    csum = _checksum(s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), seq & 0xFFFF, 0, 64, socket.IPPROTO_TCP, 0, s, d)
    return ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:] + tcp


@dataclass
class Flood:
    """ACKs from random spoofed addresses of the client subnet's upper half, each from its own random
    port, to VIP:port, in bursts of `burst` with `gap` s between, at most `count` and at most
    FLOOD_SECONDS; `sent` counts what the socket took (a full qdisc refuses, and that is not counted)."""

    topo: Topology
    port: int
    count: int
    burst: int = 200
    gap: float = 0.02
    sent: int = 0
    seconds: float = 0.0

    def run(self) -> Flood:
        net = list(ipaddress.IPv4Network(self.topo.client_subnet).subnets(1))[1]
        assert net.subnet_of(ipaddress.IPv4Network("10.0.0.0/8")), net
        hosts = [str(h) for h in net.hosts()]
        rng = random.Random(14)
        ports = rng.sample(range(1024, 65536), self.count)  # distinct: no two segments share a 5-tuple
        sock = in_netns_call(self.topo.client.netns,
                             lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
        start = time.monotonic()
        tried = 0
        try:
            while tried < self.count and time.monotonic() - start < FLOOD_SECONDS:
                for _ in range(min(self.burst, self.count - tried)):
                    pkt = ack_segment(rng.choice(hosts), ports[tried], self.topo.vip, self.port,
                                      rng.getrandbits(32), rng.getrandbits(32))
                    tried += 1
                    try:
                        sock.sendto(pkt, (self.topo.vip, 0))
                        self.sent += 1
                    except BlockingIOError:
                        pass
                time.sleep(self.gap)
        finally:
            sock.close()
        self.seconds = time.monotonic() - start
        return self


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    """What the flood and the curls added to the counters the tests judge."""
    return {
        "first_path_packets": after["first_path_packets"] - before["first_path_packets"],
        "dropped_in_xdp": after["xdp_reasons"]["drop_no_flow_not_syn"] - before["xdp_reasons"]["drop_no_flow_not_syn"],
        "flow_misses": after["xdp_reasons"]["pass_flow_miss"] - before["xdp_reasons"]["pass_flow_miss"],
        "no_flow_not_syn": (after["first_path_events"].get("no_flow_not_syn", 0)
                            - before["first_path_events"].get("no_flow_not_syn", 0)),
        "scheduled": after["first_path_events"].get("scheduled", 0) - before["first_path_events"].get("scheduled", 0),
    }


def test_an_ack_flood_to_an_rr_service_is_dropped_in_xdp_and_never_reaches_the_daemon(
        lab: tuple[Topology, Lbxdp], lbxdp: Lbxdp) -> None:
    topo = lab[0]
    assert set(topo.curl(3, port=RR_PORT)) == {r.name for r in topo.reals}  # warm: every real answers
    before = status_json(lbxdp)

    flood = Flood(topo, RR_PORT, FLOOD, gap=0.05)
    sender = threading.Thread(target=flood.run, name="ack-flood", daemon=True)
    sender.start()
    during: list[str | None] = []
    while sender.is_alive() and len(during) < 40:  # real connections while the flood runs
        during += topo.curl(1, port=RR_PORT, timeout=3.0)
    sender.join(FLOOD_SECONDS + 5)
    assert not sender.is_alive(), "the flood did not end in time"
    after_curls = topo.curl(3, port=RR_PORT, timeout=3.0)
    curls = len(during) + len(after_curls)
    assert during and None not in during and None not in after_curls, (during, after_curls)
    assert flood.sent >= FLOOD * 0.95, flood

    def counted() -> dict[str, int]:
        return _delta(status_json(lbxdp), before)

    timed(lambda: counted()["dropped_in_xdp"] >= flood.sent, 5, "every flood segment counted as dropped")
    delta = counted()
    print(f"flood: {flood.sent} ACKs in {flood.seconds:.2f} s, {curls} curls; {delta}")
    assert delta["dropped_in_xdp"] == flood.sent, delta  # each dropped once, nothing else under the reason
    # The daemon saw nothing of the flood, nor of the curls: rr's first packets are decided in XDP.
    assert delta["first_path_packets"] == 0, delta
    assert delta["flow_misses"] <= curls, delta
    assert delta["no_flow_not_syn"] == delta["dropped_in_xdp"], delta  # one policy, one count in status


def test_the_same_flood_to_an_sh_service_still_reaches_the_daemon(
        lab: tuple[Topology, Lbxdp], lbxdp: Lbxdp) -> None:
    """sh re-derives a mid-connection packet's real, so its service has no drop bit: each segment
    goes up (PASS_FLOW_MISS) and the daemon schedules it, as before."""
    topo = lab[0]
    assert topo.curl(1, port=SH_PORT)[0] is not None
    before = status_json(lbxdp)
    flood = Flood(topo, SH_PORT, SMALL_FLOOD).run()
    assert flood.sent == SMALL_FLOOD, flood

    def counted() -> dict[str, int]:
        return _delta(status_json(lbxdp), before)

    timed(lambda: counted()["first_path_packets"] >= flood.sent, 10, "the daemon saw every flood segment")
    delta = counted()
    print(f"flood: {flood.sent} ACKs in {flood.seconds:.2f} s; {delta}")
    assert delta["dropped_in_xdp"] == 0, delta
    assert delta["flow_misses"] == flood.sent == delta["first_path_packets"], delta
    assert delta["scheduled"] == flood.sent, delta  # re-derived by the hash, each its own flow
    assert topo.curl(1, port=SH_PORT)[0] is not None
