"""Issue 14, items 5 and 7 against a live daemon: commands and health checks that arrive on the control
socket as JSON, with values the command line would refuse or types it could never produce, are each
answered with a one-line error; afterwards the configuration is exactly as before and the service
still forwards.

The requests are sent from the balancer's namespace with lb.daemon.client.send (as root), the
channel `lbxdp` itself uses, so they reach the daemon's own decoding, not the CLI's parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lbxdp_helpers import Lbxdp, attached, tally

from lb.daemon.client import send
from lb.datapath.testbed import Topology, in_netns_call

pytestmark = [pytest.mark.root, pytest.mark.e2e]

PORT = 80


@pytest.fixture
def live(testbed: Callable[..., Topology]) -> Iterator[tuple[Topology, Lbxdp]]:
    topo = testbed("two_arm", reals=2)
    topo.start_http_servers(port=PORT)
    with attached(topo) as lbxdp:
        lbxdp.service(f"{topo.vip}:{PORT}", "rr", [(f"{r.ip}:{PORT}", "-m") for r in topo.reals])
        lbxdp("health", "-t", f"{topo.vip}:{PORT}", "--check", "tcp", "--interval", "1", "--timeout", "0.5")
        yield topo, lbxdp
        print(lbxdp.log_tail(60))  # shown only when the test failed


def ask(topo: Topology, message: dict[str, Any]) -> dict[str, Any]:
    return in_netns_call(topo.lb.netns, lambda: send(message, timeout=10.0), timeout=15.0)


def bad_commands(vip: str, rip: str) -> list[tuple[dict[str, Any], str]]:
    service = {"proto": "TCP", "vip": vip, "port": PORT}
    return [
        ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "0.0.0.0", "port": PORT}},
         "illegal virtual server address 0.0.0.0: the unspecified address 0.0.0.0 is no destination a client can send to"),
        ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "224.0.0.9", "port": PORT}},
         "illegal virtual server address 224.0.0.9: a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"),
        ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": 167772161, "port": PORT}},
         "malformed command: service vip must be a string, not int"),
        ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": vip, "port": "٨١"}},
         "malformed command: '٨١' is not an integer"),
        ({"verb": "ADD_REAL", "service": service, "real": {"address": vip, "port": PORT}},
         f"real server {vip}:{PORT}: same address as the virtual service {vip}; a real must be another host "
         "(lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
        ({"verb": "EDIT_REAL", "service": service, "real": {"address": rip, "port": PORT}, "weight": 70000},
         "illegal weight specified: '70000' (must be an integer 0..65535)"),
        ({"verb": "EDIT_SERVICE", "service": service, "scheduler": "rr", "persistence": 10**12},
         "invalid timeout value `1000000000000' specified (must be 1..2678400 seconds)"),
        ({"verb": "SET", "timeouts": [900, -1, 300]}, "invalid timeout value `-1' specified (must be 0..2678400 seconds)"),
        ({"verb": "RESTORE", "commands": [{"verb": "RESTORE", "commands": [{"verb": "CLEAR"}]}]},
         "malformed command: a restore's rules cannot hold another restore"),
    ]


BAD_CHECKS = [
    ({"kind": "tcp", "interval": float("nan")}, "health check interval must be a finite number of seconds, not nan"),
    ({"kind": "tcp", "interval": 1e308 * 10}, "health check interval must be a finite number of seconds, not inf"),
    ({"kind": "tcp", "interval": "2"}, "health check interval must be a number of seconds, not str"),
    ({"kind": "tcp", "rise": [1]}, "health check rise must be a whole number, not list"),
    ({"kind": "tcp", "fall": True}, "health check fall must be a whole number, not bool"),
    ({"kind": "tcp", "interval": 0.001, "timeout": 0.001}, "health check interval 0.001 is out of range (0.1..3600 s)"),
    ({"kind": "http", "path": "/ HTTP/1.0\r\nHost: elsewhere\r\n\r\n"},
     "health check path must be printable ASCII without spaces or control characters (percent-encode others, e.g. %20)"),
    ({"kind": "ping"}, "health check kind must be one of none, tcp, http"),
    ("tcp", "health check must be a JSON object, not str"),
]


def test_bad_json_is_refused_in_one_line_and_changes_nothing(live: tuple[Topology, Lbxdp]) -> None:
    topo, lbxdp = live
    before = lbxdp("-S", "-n").stdout
    listing = lbxdp("-L", "-n").stdout
    assert "Health checks:" in listing and "tcp every 1s timeout 0.5s" in listing, listing

    for command, message in bad_commands(topo.vip, topo.reals[0].ip):
        assert ask(topo, {"op": "ipvsadm", "command": command}) == {"ok": False, "error": message}, command
    service = {"proto": "TCP", "vip": topo.vip, "port": PORT}
    for check, message in BAD_CHECKS:
        assert ask(topo, {"op": "health", "service": service, "check": check}) == {"ok": False, "error": message}, check

    good_check = {"kind": "tcp"}
    for bad_service, message in [
        (None, "malformed command: service must be an object, not NoneType"),
        (f"TCP:{topo.vip}:{PORT}", "malformed command: service must be an object, not str"),
        ({"proto": "TCP", "vip": topo.vip}, "malformed command: service lacks port"),
        ({"proto": "TCP", "vip": topo.vip, "port": 80.5}, "malformed command: 80.5 is not an integer"),
        ({"proto": "SCTP", "vip": topo.vip, "port": PORT}, "malformed command: service proto must be TCP or UDP"),
        ({"proto": "TCP", "vip": "255.255.255.255", "port": PORT},
         "illegal virtual server address 255.255.255.255: the limited broadcast address reaches every host of the link, not a service"),
    ]:
        reply = ask(topo, {"op": "health", "service": bad_service, "check": good_check})
        assert reply == {"ok": False, "error": message}, bad_service
    assert ask(topo, {"op": "health", "service": service}) == {"ok": False, "error": "health check must be a JSON object, not NoneType"}

    assert ask(topo, {"op": "ping"})["ok"]
    assert lbxdp("-S", "-n").stdout == before
    assert lbxdp("-L", "-n").stdout.split("Health checks:")[1].splitlines()[0] == listing.split("Health checks:")[1].splitlines()[0]
    assert tally(topo.curl(4, port=PORT)) == {"r1": 2, "r2": 2}
