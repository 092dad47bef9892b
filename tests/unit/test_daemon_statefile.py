from ipaddress import IPv4Address as A

import pytest

from lb.config.ipvsadm import parse_command
from lb.config.table import ServiceTable
from lb.daemon import statefile
from lb.daemon.health import CheckKind, HealthCheck
from lb.model import Protocol, RealKey, ServiceKey

SVC = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)
REAL = RealKey(A("10.0.2.11"), 8080)


def test_state_round_trips_through_its_file(tmp_path):
    table = ServiceTable()
    table.apply(parse_command("-A -t 10.0.0.100:80 -s wrr -p 30".split()))
    table.apply(parse_command("-a -t 10.0.0.100:80 -r 10.0.2.11:8080 -m -w 3".split()))
    state = statefile.SavedState(
        table=table,
        service_ids={SVC: 4},
        real_ids={(SVC, REAL): 9},
        health={SVC: HealthCheck(CheckKind.HTTP, path="/h")},
        conns={9: 12},
        first_traffic={9: [12, 720]},
        ifaces={"eth0": "generic"},
        max_flows=4096,
    )
    path = tmp_path / "state.json"
    statefile.write(path, state)
    back = statefile.read(path)
    assert back is not None
    assert back.table == table
    assert (back.service_ids, back.real_ids, back.health) == (state.service_ids, state.real_ids, state.health)
    assert (back.conns, back.first_traffic, back.ifaces, back.max_flows) == ({9: 12}, {9: [12, 720]}, {"eth0": "generic"}, 4096)


def test_missing_file_is_no_state_and_a_corrupt_one_says_where(tmp_path):
    assert statefile.read(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        statefile.read(bad)
