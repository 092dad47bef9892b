"""Issue 14, items 3 and 4: what happens while no daemon runs, and a saved state that can be wrong.

- First packets with no daemon are dropped by default (fail-closed); `attach --queue-bypass` lets
  them go on through the lb's stack (fail-open). The NFQUEUE rule's counter shows the packet reached
  it either way; fail-closed, the client's SYN gets no answer at all; fail-open, the lb's kernel
  routes it as if there were no balancer, finds no route for the VIP (it is no address of the lb)
  and answers ICMP unreachable: the client's connect fails at once with ENETUNREACH, and the lb's
  IpExtInNoRoutes counter (nstat) moves. The choice survives a daemon restart.
- A state.json that is truncated, garbage, of another format or whose real ids are swapped never
  maps the flows left in the pinned maps to the wrong reals: the daemon says so in one line and
  starts with an empty configuration and a fresh flow table. state.json and the log are 0600.
- `lbxdp detach` after a SIGKILL removes XDP, the rules, the maps and the run directory; run
  directories of deleted namespaces go too.

One two-arm lab for the module; the tests run in file order and each leaves the lab detached.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lbxdp_helpers import FIRST_PATH, Lbxdp, assert_torn_down, lbxdp_processes, nothing_left, xdp_attached
from pyroute2 import netns

from lb.datapath.testbed import Topology, two_arm, wait_until

pytestmark = [pytest.mark.root, pytest.mark.e2e]

UDP_PORT = 5353
TCP_PORT = 9001


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=2) as topo:
        topo.start_udp_servers(port=UDP_PORT)
        topo.start_tcp_servers(port=TCP_PORT)
        lbxdp = Lbxdp(topo)
        try:
            yield topo, lbxdp
        finally:
            lbxdp("detach", check=False)
    assert_torn_down(topo)


@pytest.fixture
def topo(lab: tuple[Topology, Lbxdp]) -> Topology:
    return lab[0]


@pytest.fixture
def lbxdp(lab: tuple[Topology, Lbxdp]) -> Iterator[Lbxdp]:
    yield lab[1]
    print(lab[1].log_tail(60))  # shown only when the test failed


# -- helpers ---------------------------------------------------------------------------------------


def no_routes(topo: Topology) -> int:
    """The lb's IpExtInNoRoutes: packets its kernel routed and found no route for."""
    for line in topo.run("lb", ["nstat", "-az", "IpExtInNoRoutes"]).stdout.splitlines():
        if line.startswith("IpExtInNoRoutes"):
            return int(line.split()[1])
    raise AssertionError("no IpExtInNoRoutes in nstat")


def first_packet_with_no_daemon(topo: Topology) -> tuple[str, int, int]:
    """Connect to the VIP while no daemon runs: what the client saw, and how much the NFQUEUE
    rule's counter and the lb's IpExtInNoRoutes moved."""
    queue_rule = f"--dport {TCP_PORT} -j NFQUEUE"
    queued, unrouted = packets_of(topo, queue_rule), no_routes(topo)
    try:
        topo.hold(port=TCP_PORT, timeout=2.5).close()
        seen = "connected"
    except TimeoutError:
        seen = "no answer"
    except OSError as exc:
        seen = os.strerror(exc.errno) if exc.errno else repr(exc)
    return seen, packets_of(topo, queue_rule) - queued, no_routes(topo) - unrouted


def packets_of(topo: Topology, words: str) -> int:
    """The packet counter of the one rule whose text contains `words` (iptables-save -c)."""
    found = [line for line in topo.run("lb", ["iptables-save", "-c"]).stdout.splitlines()
             if words in line]
    assert len(found) == 1, found
    m = re.match(r"^\[(\d+):\d+\]", found[0])
    assert m, found[0]
    return int(m[1])


def status_json(lbxdp: Lbxdp) -> dict[str, object]:
    return json.loads(lbxdp("status", "--json").stdout)  # type: ignore[no-any-return]


def kill_daemon(topo: Topology, lbxdp: Lbxdp) -> None:
    pid = int(status_json(lbxdp)["pid"])  # type: ignore[arg-type]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not lbxdp_processes(topo), timeout=5, what="the daemon gone")
    assert lbxdp("status", check=False).returncode == 3


def configure(topo: Topology, lbxdp: Lbxdp) -> None:
    lbxdp.service(f"{topo.vip}:{UDP_PORT}", "rr", [(f"{r.ip}:{UDP_PORT}", "-m") for r in topo.reals], udp=True)
    lbxdp.service(f"{topo.vip}:{TCP_PORT}", "rr", [(f"{r.ip}:{TCP_PORT}", "-m") for r in topo.reals])


def map_ids(prog_id: int) -> list[int]:
    """The ids of the maps a loaded program uses (bpf_prog_info), to see them freed afterwards."""
    from lb.datapath.loader import _ProgInfo

    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    fd = lib.bpf_prog_get_fd_by_id(ctypes.c_uint32(prog_id))
    assert fd >= 0, f"program {prog_id} is not loaded"
    try:
        info = _ProgInfo()
        ids = (ctypes.c_uint32 * 64)()
        info.nr_map_ids = len(ids)
        info.map_ids = ctypes.addressof(ids)
        size = ctypes.c_uint32(ctypes.sizeof(info))
        assert lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) == 0
        return list(ids[: min(info.nr_map_ids, len(ids))])
    finally:
        os.close(fd)


def map_alive(map_id: int) -> bool:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    fd = lib.bpf_map_get_fd_by_id(ctypes.c_uint32(map_id))
    if fd < 0:
        return False
    os.close(fd)
    return True


# -- first packets while no daemon runs ------------------------------------------------------------


def test_first_packets_with_no_daemon_are_dropped_unless_queue_bypass(topo: Topology, lbxdp: Lbxdp) -> None:
    # The first packets must reach NFQUEUE for the policy to apply: the daemon decides them (rr would
    # otherwise be decided in XDP, which needs no daemon until the last granted budget is spent).
    out = lbxdp.attach(options=FIRST_PATH)
    assert "eth0: XDP" in out, out
    configure(topo, lbxdp)
    status = lbxdp("status").stdout
    assert "first packets with no daemon: dropped (fail-closed)" in status, status
    assert status_json(lbxdp)["queue_bypass"] is False
    assert all(len(line) <= 80 for line in status.splitlines()), status
    assert topo.udp_query(port=UDP_PORT) in ("r1", "r2")
    assert topo.tcp_exchange(1, port=TCP_PORT) in ("r1", "r2")
    jumps = [line for line in topo.run("lb", ["iptables-save", "-t", "mangle"]).stdout.splitlines()
             if line == "-A PREROUTING -j LBXDP"]
    assert len(jumps) == 1, jumps  # one jump, however many changes were applied

    # Fail-closed: the NFQUEUE rule takes the SYNs and, with nobody listening, drops them.
    kill_daemon(topo, lbxdp)
    seen, queued, unrouted = first_packet_with_no_daemon(topo)
    assert (seen, unrouted) == ("no answer", 0) and queued >= 1, (seen, queued, unrouted)

    # Fail-open, chosen at (re-)attach: the adopted configuration comes back with it.
    lbxdp("attach", *[i.name for i in topo.lb_ifaces], "--queue-bypass", timeout=90.0)
    rules = topo.run("lb", ["iptables-save", "-t", "mangle"]).stdout
    assert f"--dport {UDP_PORT} -j NFQUEUE --queue-num 4711 --queue-bypass" in rules, rules
    assert "fail-open" in lbxdp("status").stdout and status_json(lbxdp)["queue_bypass"] is True
    assert topo.udp_query(port=UDP_PORT) in ("r1", "r2")  # balanced while the daemon runs
    kill_daemon(topo, lbxdp)
    seen, queued, unrouted = first_packet_with_no_daemon(topo)
    # Let through, unbalanced: the lb's kernel has no route for the VIP and says so to the client.
    assert seen == os.strerror(errno.ENETUNREACH) and queued >= 1 and unrouted >= 1, (seen, queued, unrouted)

    # Remembered across a restart without the flag; --no-queue-bypass goes back to fail-closed.
    lbxdp("attach", *[i.name for i in topo.lb_ifaces], timeout=90.0)
    assert status_json(lbxdp)["queue_bypass"] is True
    lbxdp("attach", *[i.name for i in topo.lb_ifaces], "--no-queue-bypass")  # the running daemon
    assert status_json(lbxdp)["queue_bypass"] is False
    assert "--queue-bypass" not in topo.run("lb", ["iptables-save", "-t", "mangle"]).stdout
    assert json.loads(Path(lbxdp.log_path.parent, "state.json").read_text())["queue_bypass"] is False
    # New connections work again.
    assert topo.tcp_exchange(2, port=TCP_PORT) in ("r1", "r2")
    assert topo.udp_query(port=UDP_PORT) in ("r1", "r2")
    lbxdp("detach")
    wait_until(lambda: not lbxdp_processes(topo), timeout=10, what="the daemon stopped")


# -- a saved state that is wrong -------------------------------------------------------------------


def _truncate(text: str) -> str:
    return text[: len(text) // 2]


def _garbage(_text: str) -> str:
    return "\x00garbage{[" * 10


def _other_format(text: str) -> str:
    data = json.loads(text)
    data["format"] = 99
    return json.dumps(data)


def _swap_real_ids(text: str) -> str:
    data = json.loads(text)
    for reals in data["real_ids"].values():
        (a, ia), (b, ib) = list(reals.items())[:2]
        reals[a], reals[b] = ib, ia
    return json.dumps(data)


CORRUPTIONS: dict[str, Callable[[str], str]] = {
    "truncated": _truncate, "garbage": _garbage, "other format": _other_format, "swapped real ids": _swap_real_ids,
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_a_wrong_state_file_starts_clean_and_maps_no_flow_to_a_wrong_real(topo: Topology, lbxdp: Lbxdp,
                                                                          how: str) -> None:
    lbxdp.attach()
    configure(topo, lbxdp)
    held = topo.hold(port=TCP_PORT)
    home = held.exchange(2)
    assert status_json(lbxdp)["flows"] >= 1 or lbxdp("-L", "-n", "-c").stdout.count("\n") > 2
    state = lbxdp.log_path.parent / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(lbxdp.log_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    kill_daemon(topo, lbxdp)
    assert held.exchange(1) == home  # XDP alone carries it
    state.write_text(CORRUPTIONS[how](state.read_text()))
    log_before = lbxdp.log_path.stat().st_size

    # Re-attached to eth0 only: the old program, whose maps were refused, must not stay on eth1.
    done = lbxdp("attach", "eth0", timeout=120.0)
    said = [line for line in done.stderr.splitlines() if "unusable" in line]
    assert len(said) == 1 and "starting with an empty configuration and flow table" in said[0], done.stderr
    assert set(xdp_attached(topo)) == {"eth0"}, xdp_attached(topo)
    lbxdp("attach", "eth1")
    assert "Traceback" not in lbxdp.log_path.read_text(errors="replace")[log_before:]
    assert "Traceback" not in done.stderr
    # Nothing adopted: no service, no flow; the held connection has no flow to follow any more.
    assert lbxdp("-L", "-n").stdout.count("\n") == 3, lbxdp("-L", "-n").stdout
    assert lbxdp("-L", "-n", "-c").stdout.count("\n") <= 3, lbxdp("-L", "-n", "-c").stdout
    assert status_json(lbxdp)["flows"] == 0
    with pytest.raises((OSError, ConnectionError)):
        held.exchange(1)
    held.close()
    assert json.loads(state.read_text())["format"] == 1  # written anew, readable
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # And it balances again once configured.
    configure(topo, lbxdp)
    assert topo.tcp_exchange(1, port=TCP_PORT) in ("r1", "r2")
    lbxdp("detach")
    wait_until(lambda: not lbxdp_processes(topo), timeout=10, what="the daemon stopped")


# -- detach with no daemon, and stale instances ----------------------------------------------------


def test_detach_with_no_daemon_removes_everything_and_stale_dirs(topo: Topology, lbxdp: Lbxdp) -> None:
    lbxdp.attach()
    configure(topo, lbxdp)
    assert topo.tcp_exchange(1, port=TCP_PORT) in ("r1", "r2")
    prog_id = int(xdp_attached(topo)["eth0"].get_attr("IFLA_XDP_PROG_ID"))  # type: ignore[attr-defined]
    maps = map_ids(prog_id)
    assert maps and all(map_alive(m) for m in maps)
    # A run directory left by a namespace deleted without a detach.
    gone = f"{topo.prefix}gone"
    netns.create(gone)
    try:
        stale = Path("/run/lbxdp") / f"netns-{os.stat(f'/run/netns/{gone}').st_ino}"
        stale.mkdir(parents=True)
        (stale / "state.json").write_text("{}")
    finally:
        netns.remove(gone)
    assert stale.exists()

    kill_daemon(topo, lbxdp)
    done = lbxdp("detach")
    assert done.stderr == "" and done.stdout.count("\n") == 1, done
    assert "no daemon running" in done.stdout and "eth0" in done.stdout and "eth1" in done.stdout, done.stdout
    assert "LBXDP rules" in done.stdout and str(lbxdp.log_path.parent) in done.stdout, done.stdout
    assert nothing_left(topo, lbxdp, run_dir=True) == []
    wait_until(lambda: not any(map_alive(m) for m in maps), timeout=5, what="the program's maps freed")
    assert not stale.exists()
    # Nothing forwards the VIP any more, and a second detach has nothing to do but says so.
    with pytest.raises(OSError):
        topo.tcp_exchange(1, port=TCP_PORT, timeout=0.5)
    again = lbxdp("detach")
    assert "no XDP was attached; nothing else was left" in again.stdout, again.stdout
