"""ServiceTable.apply: ipvsadm's semantics and errors, and a refused edit changes nothing."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.config.ipvsadm import Command, Verb, parse_command
from lb.config.table import Change, ServiceTable, Timeouts
from lb.model import ConfigError, Forwarding, Protocol, RealKey, ServiceKey

VIP = ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80)


def run(table: ServiceTable, *lines: str) -> list[Change]:
    return [table.apply(parse_command(line.split())) for line in lines]


def base() -> ServiceTable:
    table = ServiceTable()
    run(
        table,
        "-A -t 10.0.0.1:80 -s rr -p 60",
        "-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 2 -x 10",
        "-a -t 10.0.0.1:80 -r 10.0.0.12:80 -g",
    )
    return table


def test_add_and_edit_keep_order_and_reals() -> None:
    table = base()
    run(table, "-a -t 10.0.0.1:80 -r 10.0.0.10:80")
    (vs,) = table.services()
    assert [str(k) for k in vs.reals] == ["10.0.0.11:8080", "10.0.0.12:80", "10.0.0.10:80"]
    run(table, "-E -t 10.0.0.1:80 -s wrr")
    (vs,) = table.services()
    # -E replaces the settings (no -p: no longer persistent) and keeps every real
    assert (vs.service.scheduler, vs.service.persistence) == ("wrr", None)
    assert len(vs.reals) == 3


def test_edit_real_changes_only_what_is_given() -> None:
    table = base()
    run(table, "-e -t 10.0.0.1:80 -r 10.0.0.11:8080 -w 0")
    real = table.get(VIP).reals[RealKey(IPv4Address("10.0.0.11"), 8080)]
    assert (real.forwarding, real.weight, real.upper_threshold) == (Forwarding.MASQ, 0, 10)


ERRORS = [
    ("-A -t 10.0.0.1:80", "Service already exists: TCP 10.0.0.1:80"),
    ("-E -t 10.0.0.2:80", "No such service: TCP 10.0.0.2:80"),
    ("-D -u 10.0.0.1:80", "No such service: UDP 10.0.0.1:80"),
    ("-Z -t 10.0.0.2:80", "No such service: TCP 10.0.0.2:80"),
    ("-a -t 10.0.0.2:80 -r 10.0.0.11", "Service not defined: TCP 10.0.0.2:80"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m", "Destination already exists: 10.0.0.11:8080 in TCP 10.0.0.1:80"),
    ("-e -t 10.0.0.1:80 -r 10.0.0.99", "No such destination: 10.0.0.99:80 in TCP 10.0.0.1:80"),
    ("-d -t 10.0.0.1:80 -r 10.0.0.99", "No such destination: 10.0.0.99:80 in TCP 10.0.0.1:80"),
    # a NAT real on another port cannot become direct routing: the port could not be mapped
    (
        "-e -t 10.0.0.1:80 -r 10.0.0.11:8080 -g",
        "real server 10.0.0.11:8080: port differs from the service port 80, which only masquerading (-m) can map; Route keeps the port",
    ),
    ("-e -t 10.0.0.1:80 -r 10.0.0.11:8080 -y 11", "lower threshold is greater than upper threshold"),
]


@pytest.mark.parametrize(("line", "message"), ERRORS, ids=[row[0] for row in ERRORS])
def test_errors_leave_the_table_unchanged(line: str, message: str) -> None:
    table = base()
    before = table.snapshot()
    with pytest.raises(ConfigError) as info:
        run(table, line)
    assert str(info.value) == message
    assert table.snapshot() == before


def test_delete_and_clear_report_removed_services() -> None:
    table = base()
    run(table, "-A -u 10.0.0.1:53 -s sh")
    assert run(table, "-d -t 10.0.0.1:80 -r 10.0.0.12") == [Change(Verb.DELETE_REAL, touched=(VIP,))]
    assert run(table, "-D -t 10.0.0.1:80") == [Change(Verb.DELETE_SERVICE, removed=(VIP,))]
    assert run(table, "-C") == [Change(Verb.CLEAR, removed=(ServiceKey(Protocol.UDP, VIP.vip, 53),))]
    assert len(table) == 0


def test_set_zero_keeps_a_timeout() -> None:
    table = ServiceTable()
    run(table, "--set 100 0 7")
    assert table.timeouts == Timeouts(100, 120, 7)


def test_restore_is_all_or_nothing() -> None:
    table = base()
    before = table.snapshot()
    good = parse_command(["-A", "-u", "10.0.0.5:53"])
    bad = parse_command(["-a", "-t", "10.0.0.9:80", "-r", "10.0.0.1"])
    with pytest.raises(ConfigError) as info:
        table.apply(Command(Verb.RESTORE, commands=(good, bad)))
    assert str(info.value) == "restore rule 2 (-a -t 10.0.0.9:80 -r 10.0.0.1:80): Service not defined: TCP 10.0.0.9:80"
    assert table.snapshot() == before
    change = table.apply(Command(Verb.RESTORE, commands=(parse_command(["-C"]), good)))
    assert change.removed == (VIP,)
    assert [vs.service.key for vs in table] == [good.service]


def test_snapshot_round_trip() -> None:
    import json

    table = base()
    run(table, "-A -u 10.0.0.1:53 -s mh -b mh-port -p 30 -M 255.255.255.0", "--set 10 20 30")
    again = ServiceTable.from_dict(json.loads(json.dumps(table.snapshot())))
    assert again == table
    assert again.timeouts == Timeouts(10, 20, 30)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["services"][0].update(scheduler="nosuch"), "Scheduler not found: 'nosuch'"),
        (lambda d: d["services"][0]["reals"][1].update(port=81), "real server 10.0.0.12:81: port differs"),
        (lambda d: d["services"][0].pop("vip"), "malformed service table: 'vip'"),
    ],
)
def test_from_dict_validates(mutate, message: str) -> None:
    data = base().snapshot()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        ServiceTable.from_dict(data)
    assert str(info.value).startswith(message)


def test_list_and_save_are_not_table_edits() -> None:
    with pytest.raises(ConfigError, match="'-L' does not change the configuration"):
        ServiceTable().apply(parse_command(["-L"]))
