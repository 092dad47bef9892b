"""The testbed itself: topologies route, DR and IPIP reals accept the VIP, servers and clients
report identities, and teardown leaves nothing behind even when the test body raises."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns
from scapy.layers.inet import IP, UDP

from lb.datapath.testbed import RealSpec, Topology, cleanup_stale, decap, pids_in_netns, two_arm
from lb.datapath.testbed.nsenter import in_netns_call, read_sysctl

pytestmark = [pytest.mark.root, pytest.mark.e2e]

KINDS = ["two_arm", "one_arm"]


def _ours(prefix: str) -> list[str]:
    return [n for n in netns.listnetns() if n.startswith(prefix)]


@pytest.mark.parametrize("kind", KINDS)
def test_client_reaches_balancer(testbed, kind: str) -> None:
    topo: Topology = testbed(kind, reals=2)
    topo.start_tcp_servers(port=9000, reals=["lb"])
    assert topo.tcp_exchange(3, dst=topo.lb.ip) == "lb"


@pytest.mark.parametrize("kind", KINDS)
def test_real_traffic_is_routed_through_the_balancer(testbed, kind: str) -> None:
    topo: Topology = testbed(kind, reals=3)
    topo.start_http_servers()
    for real in topo.reals:
        assert topo.curl(2, f"http://{real.ip}/") == [real.name, real.name]
    # Without the balancer nothing answers for the VIP: the testbed adds no shortcut to it.
    assert topo.curl(1, timeout=0.5) == [None]


@pytest.mark.parametrize("kind", KINDS)
def test_topology_description(testbed, kind: str) -> None:
    topo: Topology = testbed(kind, reals=2, client_aliases=2)
    x = topo.net
    assert topo.vip == f"10.{x}.0.100"
    assert topo.client.ip == f"10.{x}.1.2"
    assert topo.client_aliases == (f"10.{x}.1.101", f"10.{x}.1.102")
    assert [r.ip for r in topo.reals] == [f"10.{x}.2.11", f"10.{x}.2.12"]
    assert all(r.gateway == f"10.{x}.2.1" for r in topo.reals)
    expected_lb = ["eth0", "eth1"] if kind == "two_arm" else ["eth0"]
    assert [i.name for i in topo.lb_ifaces] == expected_lb
    lb_ips = {ip for iface in topo.lb_ifaces for ip in iface.ips}
    assert lb_ips == {f"10.{x}.1.1", f"10.{x}.2.1"} and topo.vip not in lb_ips
    assert read_sysctl(topo.lb.netns, "net.ipv4.ip_forward") == "1"
    assert read_sysctl(topo.client.netns, "net.ipv4.ip_forward") == "0"
    for host in topo.hosts.values():
        assert len(host.iface.name) <= 15
        with IPRoute(netns=host.netns, flags=0) as ipr:
            link = ipr.get_links(host.iface.ifindex)[0]
            assert link.get_attr("IFLA_IFNAME") == host.iface.name
            assert link.get_attr("IFLA_ADDRESS") == host.iface.mac
    # Client aliases are real sources: the real sees the alias as the peer.
    topo.start_tcp_servers(reals=["r1"])
    conn = topo.hold(topo.real("r1").ip, source=topo.client_aliases[1])
    assert conn.exchange(2) == "r1" and conn.local[0] == topo.client_aliases[1]


def test_gro_and_tx_checksum_offload_are_off_by_default(two_arm_topo: Topology) -> None:
    for host in ("client", "lb", "r1"):
        out = two_arm_topo.run(host, ["ethtool", "-k", "eth0"]).stdout
        assert "generic-receive-offload: off" in out
        assert "tx-checksumming: off" in out


def _xdp_prog_id(netns_name: str, ifname: str) -> int:
    with IPRoute(netns=netns_name, flags=0) as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
        xdp = link.get_attr("IFLA_XDP")
        return int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0) if xdp else 0


def test_xdp_peers_options(testbed) -> None:
    with_pass = testbed("two_arm", reals=1, xdp_peers="pass")
    for iface in with_pass.lb_ifaces:
        peer = with_pass.host(iface.peer_host)
        assert _xdp_prog_id(peer.netns, iface.peer_ifname) > 0
    assert _xdp_prog_id(with_pass.lb.netns, "eth0") == 0
    with_gro = testbed("one_arm", reals=1, xdp_peers="gro")
    out = with_gro.run("sw", ["ethtool", "-k", with_gro.lb_ifaces[0].peer_ifname]).stdout
    assert "generic-receive-offload: on" in out


def _queues(topo: Topology, host: str, ifname: str) -> tuple[str, str]:
    """(current RX, current TX) channel counts from `ethtool -l`."""
    out = topo.run(host, ["ethtool", "-l", ifname]).stdout
    current = out.split("Current hardware settings:")[1]
    values = dict(line.split(":", 1) for line in current.strip().splitlines() if ":" in line)
    return values["RX"].strip(), values["TX"].strip()


@pytest.mark.parametrize("queues", [1, 2])
def test_queues_option_sets_both_ends_of_every_veth(testbed, queues: int) -> None:
    topo = testbed("two_arm", reals=1, queues=queues)
    want = (str(queues), str(queues))
    for host, ifname in (("client", "eth0"), ("lb", "eth0"), ("lb", "eth1"), ("sw", "p-lb"),
                         ("sw", "p-r1"), ("r1", "eth0")):
        assert _queues(topo, host, ifname) == want, (host, ifname)


def test_direct_routing_real_answers_for_the_vip(testbed) -> None:
    topo: Topology = testbed("one_arm", reals=[RealSpec("r1", dr=True), RealSpec("r2")])
    topo.start_http_servers()
    assert read_sysctl(topo.real("r1").netns, "net.ipv4.conf.all.arp_ignore") == "1"
    assert read_sysctl(topo.real("r1").netns, "net.ipv4.conf.all.arp_announce") == "2"
    # Deliver VIP frames to r1's MAC the way a -g balancer does: a route via r1, in the lb only.
    topo.run("lb", ["ip", "route", "add", f"{topo.vip}/32", "via", topo.real("r1").ip])
    assert topo.curl(3) == ["r1", "r1", "r1"]
    # A real without the VIP on lo drops such frames: the DR set-up is what makes r1 answer.
    topo.run("lb", ["ip", "route", "replace", f"{topo.vip}/32", "via", topo.real("r2").ip])
    assert topo.curl(1, timeout=0.5) == [None]


def _ipip_probe(topo: Topology, real_ip: str, sport: int) -> bytes | None:
    """From the client: an IPIP packet to `real_ip` carrying UDP client:sport -> VIP:5353;
    returns the datagram that comes back to client:sport, if any."""
    c = topo.client.ip
    packet = IP(src=c, dst=real_ip) / IP(src=c, dst=topo.vip) / UDP(sport=sport, dport=5353) / b"ping"
    raw = in_netns_call(topo.client.netns,
                        lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
    answer = topo.socket("client", socket.SOCK_DGRAM)
    try:
        answer.bind((c, sport))
        answer.settimeout(0.7)
        raw.sendto(bytes(packet), (real_ip, 0))
        data, peer = answer.recvfrom(2048)
        assert peer == (topo.vip, 5353), "the reply must come from the VIP"
        return data
    except TimeoutError:
        return None
    finally:
        raw.close()
        answer.close()


def test_ipip_decapsulator_delivers_inner_packet(testbed) -> None:
    topo: Topology = testbed("two_arm", reals=[RealSpec("r1", ipip=True), RealSpec("r2")])
    r1, r2 = topo.real("r1"), topo.real("r2")
    assert r1.xdp in ("native", "generic") and r2.xdp is None
    assert _xdp_prog_id(r1.netns, "eth0") > 0
    topo.start_udp_servers(port=5353)
    before = decap.stats()["decapped"]
    assert _ipip_probe(topo, r1.ip, 40001) == b"r1 ping"
    assert decap.stats()["decapped"] == before + 1
    # r2 has no decapsulator (and this kernel no ipip module): the same packet goes unanswered.
    assert _ipip_probe(topo, r2.ip, 40002) is None
    # Plain traffic to r1 is untouched by its decapsulator.
    assert topo.udp_query(r1.ip) == "r1"


def test_servers_and_clients(testbed) -> None:
    topo: Topology = testbed("two_arm", reals=2)
    topo.start_udp_servers()
    topo.start_tcp_servers()
    nginx = topo.start_nginx("r2", port=8080)
    assert topo.udp_query(topo.real("r1").ip, payload=b"hello") == "r1"
    assert topo.curl(3, f"http://{topo.real('r2').ip}:8080/") == ["r2"] * 3
    held = topo.hold(topo.real("r1").ip)
    assert held.exchange(100) == "r1" and held.sent == 100
    assert topo.tcp_exchange(5, dst=topo.real("r2").ip) == "r2"
    topo.stop(nginx)
    assert topo.curl(1, f"http://{topo.real('r2').ip}:8080/", timeout=0.5) == [None]
    assert held.exchange(1) == "r1"  # the held connection outlived the other traffic


def test_http_fail_file_turns_a_real_sick(testbed) -> None:
    topo: Topology = testbed("two_arm", reals=1)
    topo.start_http_servers(fail_files=True)
    url = f"http://{topo.real('r1').ip}/"
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "1", url]
    assert topo.run("client", argv).stdout == "200"
    topo.fail_file("r1").touch()
    assert topo.run("client", argv).stdout == "500"
    assert topo.curl(1, url) == ["r1"]  # a 500 still names the real that answered


def test_teardown_when_body_raises_leaves_nothing() -> None:
    prefix = ""
    stray: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), two_arm(reals=1) as topo:
        prefix = topo.prefix
        topo.start_http_servers()
        # A process outside any tracked group, as a daemonizing `lbxdp attach` would leave.
        topo.run("lb", ["setsid", "-f", "sleep", "30"])
        stray = pids_in_netns(topo.lb.netns)
        assert stray
        raise RuntimeError("boom")
    assert prefix and _ours(prefix) == []
    time.sleep(0.05)
    for pid in stray:
        assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_build_errors_are_clear_and_leave_nothing() -> None:
    before = set(netns.listnetns())
    with pytest.raises(ValueError, match=r"1..200 reals"):
        two_arm(reals=0)
    with pytest.raises(ValueError, match=r"10.0.0.0/8"):
        two_arm(reals=1, vip="192.168.10.1")
    with pytest.raises(ValueError, match="real name"):
        two_arm(reals=["lb"])
    with pytest.raises(ValueError, match=r"queues must be in 1..16"):
        two_arm(reals=1, queues=0)
    assert set(netns.listnetns()) == before


def test_cleanup_stale_removes_only_dead_runs() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"lbx-{dead.pid}-dead-x"
    alive = f"lbx-{os.getppid()}-live-x"  # pytest's parent shell: alive, and not us
    netns.create(stale)
    netns.create(alive)
    try:
        removed = cleanup_stale()
        assert stale in removed and alive not in removed
        assert stale not in netns.listnetns() and alive in netns.listnetns()
        with pytest.raises(ValueError):
            cleanup_stale("*")
    finally:
        for name in (stale, alive):
            if name in netns.listnetns():
                netns.remove(name)
