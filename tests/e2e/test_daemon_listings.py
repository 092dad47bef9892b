"""Issue 4's listings against a live daemon: `-S -n` fed to `-R` after `-C` gives the same table, and
`-L --rate` and `-L -c` describe traffic that really flowed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp

from lb.datapath.testbed import Topology, two_arm

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3) as topo:
        topo.start_http_servers(port=8080)
        topo.start_tcp_servers(port=9000)
        lbxdp = Lbxdp(topo)
        lbxdp.attach()
        try:
            yield topo, lbxdp
        finally:
            lbxdp("detach", check=False)


def rules_for(topo: Topology) -> str:
    """A rules file as an operator would write it: ipvsadm's long options, a leading `ipvsadm`."""
    vip = topo.vip
    lines = [f"ipvsadm --add-service --tcp-service {vip}:80 --scheduler wrr", f"-A -t {vip}:9000 -s lc -p 60"]
    for weight, real in enumerate(topo.reals, start=1):
        lines.append(f"-a -t {vip}:80 -r {real.ip}:8080 -m -w {weight}")
        lines.append(f"-a -t {vip}:9000 -r {real.ip}:9000 -m")
    return "\n".join(lines) + "\n"


def test_save_clear_restore_gives_the_same_table(lab: tuple[Topology, Lbxdp]) -> None:
    topo, lbxdp = lab
    lbxdp("-R", input=rules_for(topo))
    saved = lbxdp("-S", "-n").stdout
    listing = lbxdp("-L", "-n").stdout
    assert saved.count("\n-a ") == 6 and "-s wrr" in saved and "-p 60" in saved, saved
    lbxdp("-C")
    assert "TCP " not in lbxdp("-L", "-n").stdout  # the header only
    lbxdp("-R", input=saved)
    assert lbxdp("-S", "-n").stdout == saved
    assert lbxdp("-L", "-n").stdout == listing
    assert topo.curl(6, f"http://{topo.vip}/").count(None) == 0  # and it balances again


def test_connection_table_and_rates_describe_real_traffic(lab: tuple[Topology, Lbxdp]) -> None:
    topo, lbxdp = lab
    vip = topo.vip
    with topo.hold(vip, 9000) as held:
        real = held.exchange(3)
        table = lbxdp("-L", "-n", "-c").stdout
        client = f"{held.local[0]}:{held.local[1]}"
        rows = [line.split() for line in table.splitlines() if client in line]
        assert len(rows) == 1, table
        proto, expire, state, source, virtual, destination = rows[0]
        real_ip = topo.real(real).ip
        assert (proto, state, source, virtual, destination) == (
            "TCP", "ESTABLISHED", client, f"{vip}:9000", f"{real_ip}:9000"
        ), table
        assert re.fullmatch(r"\d\d:\d\d", expire), expire
    # Rates are estimated over the daemon's one-second ticks: send for a little over two.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert None not in topo.curl(5, f"http://{vip}/")
    rate = lbxdp("-L", "-n", "--rate", "-t", f"{vip}:80").stdout
    service = next(line for line in rate.splitlines() if line.startswith("TCP"))
    cps, inpps, outpps, inbps, outbps = (int(v) for v in service.split()[2:7])
    assert cps > 0 and inpps > cps and outpps > 0 and inbps > inpps and outbps > outpps, rate
