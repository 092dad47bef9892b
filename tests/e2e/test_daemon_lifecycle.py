"""Issue 4, the daemon's life: a bad attach leaves nothing, a command for a missing service gets
ipvsadm's error, a second attach adopts the running instance without breaking flows, and detach
removes everything it made (XDP programs, the NFQUEUE chain, the pins, the daemon).

The tests run in file order on one two-arm topology: before attach, attached, detached.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp, assert_torn_down, lbxdp_processes, nothing_left, xdp_attached

from lb.datapath.testbed import Topology, two_arm, wait_until

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=2) as topo:
        topo.start_tcp_servers(port=9001)
        lbxdp = Lbxdp(topo)
        try:
            yield topo, lbxdp
        finally:
            lbxdp("detach", check=False)
    assert_torn_down(topo)


def test_attach_to_a_missing_interface_fails_in_one_line(topo: Topology, lbxdp: Lbxdp) -> None:
    done = lbxdp("attach", "nosuchif", check=False)
    assert done.returncode == 1, done
    assert done.stderr.strip().count("\n") == 0 and "nosuchif" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert nothing_left(topo, lbxdp) == []
    # Also when one interface of several is wrong: the good one is not attached either.
    done = lbxdp("attach", "eth0", "nosuchif", check=False)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done
    assert nothing_left(topo, lbxdp) == []


def test_commands_without_a_daemon_fail_in_one_line(topo: Topology, lbxdp: Lbxdp) -> None:
    done = lbxdp("-L", "-n", check=False)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done
    assert "Traceback" not in done.stderr


def test_attach_and_ipvsadm_errors(topo: Topology, lbxdp: Lbxdp) -> None:
    out = lbxdp.attach()
    assert "eth0: XDP" in out and "eth1: XDP" in out, out
    assert set(xdp_attached(topo)) == {"eth0", "eth1"}
    assert len(lbxdp_processes(topo)) == 1
    assert "LBXDP" in topo.run("lb", ["iptables-save", "-t", "mangle"]).stdout
    missing = f"{topo.vip}:99"
    done = lbxdp("-a", "-t", missing, "-r", f"{topo.real('r1').ip}:9001", "-m", check=False)
    # ipvsadm says "Service not defined" for a real added to a service that does not exist.
    assert done.returncode == 1 and "Service not defined" in done.stderr, done
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    done = lbxdp("-d", "-t", missing, "-r", f"{topo.real('r1').ip}:9001", check=False)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done
    done = lbxdp("-A", "-t", f"{topo.vip}:80", "-s", "nosuchsched", check=False)
    assert done.returncode == 2 and "nosuchsched" in done.stderr, done
    assert lbxdp("-L", "-n").stdout.count("\n") == 3  # header lines only: nothing was added


def test_second_attach_adopts_and_flows_survive(topo: Topology, lbxdp: Lbxdp) -> None:
    service = f"{topo.vip}:9000"
    lbxdp.service(service, "rr", [(f"{r.ip}:9001", "-m") for r in topo.reals])
    conn = topo.hold(port=9000)
    home = conn.exchange(20)
    pids = lbxdp_processes(topo)
    programs = {name: xdp.get_attr("IFLA_XDP_PROG_ID") for name, xdp in xdp_attached(topo).items()}
    out = lbxdp.attach()
    assert "eth0: already attached (generic), adopted" in out, out
    assert lbxdp_processes(topo) == pids  # the running daemon took it; no second one
    after = {name: xdp.get_attr("IFLA_XDP_PROG_ID") for name, xdp in xdp_attached(topo).items()}
    assert after == programs  # adopted, not reloaded
    assert conn.exchange(200) == home
    assert lbxdp.status().flows >= 1
    conn.close()


def test_detach_leaves_nothing(topo: Topology, lbxdp: Lbxdp) -> None:
    assert xdp_attached(topo)
    done = lbxdp("detach")
    assert done.stderr == "", done
    # The daemon stops after it answered: allow it a moment to exit.
    wait_until(lambda: nothing_left(topo, lbxdp) == [], timeout=5,
               what=f"nothing left after detach: {nothing_left(topo, lbxdp)}")
    assert not lbxdp.log_path.parent.joinpath("daemon.sock").exists()
    # The VIP no longer answers (no stray rule or program forwards it).
    with pytest.raises(OSError):
        topo.tcp_exchange(1, port=9000, timeout=0.5)
