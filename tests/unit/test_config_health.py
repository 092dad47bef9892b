from ipaddress import IPv4Address as A

import pytest

from lb.config.health import load_rules_file, parse_health, split_rules
from lb.config.savefmt import RulesError
from lb.daemon.health import CheckKind, DeadFlows, HealthCheck
from lb.model import ConfigError, Protocol, RealKey, ServiceKey
from lb.render import render_health

SVC = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ("-t 10.0.0.100:80 --check tcp", HealthCheck(CheckKind.TCP)),
        (
            "health -t 10.0.0.100:80 --check http --path /healthz --expect 204 --interval 1 --timeout 0.5 --rise 1 --fall 2",
            HealthCheck(CheckKind.HTTP, 1.0, 0.5, 1, 2, "/healthz", 204),
        ),
        ("-t 10.0.0.100:80 --check tcp --port 81 --dead-flows keep", HealthCheck(CheckKind.TCP, port=81, dead_flows=DeadFlows.KEEP)),
    ],
)
def test_parses_checks(argv, expected):
    rule = parse_health(argv.split())
    assert rule.service == SVC
    assert rule.check == expected
    assert parse_health(rule.argv()) == rule  # argv() round-trips


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--check tcp", "one of the arguments -t/--tcp-service -u/--udp-service is required"),
        ("-t 10.0.0.100:80", "the following arguments are required: --check"),
        ("-t 10.0.0.100:80 --check ping", "invalid choice: 'ping'"),
        ("-t 10.0.0.100 --check tcp", "needs a port"),
        ("-t 10.0.0.100:80 --check tcp --interval 1 --timeout 3", "timeout must not exceed its interval"),
        ("-t 10.0.0.100:80 --check tcp --port 70000", "port 70000 is out of range"),
    ],
)
def test_refuses_bad_checks_in_one_line(argv, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_health(argv.split())
    assert "\n" not in str(err.value)


def test_rules_file_keeps_line_numbers_and_checks_the_service_exists():
    text = "-A -t 10.0.0.100:80 -s rr\nhealth -t 10.0.0.100:80 --check tcp\nhealth -t 10.0.0.101:80 --check tcp\n"
    ipvsadm_text, lines = split_rules(text)
    assert ipvsadm_text.splitlines() == ["-A -t 10.0.0.100:80 -s rr", "", ""]
    assert [n for n, _ in lines] == [2, 3]
    with pytest.raises(RulesError) as err:
        load_rules_file(text, "r.rules")
    assert str(err.value).startswith("r.rules:3: ")
    table, rules = load_rules_file(text.rsplit("health", 1)[0], "r.rules")
    assert SVC in table and rules[0].check.kind is CheckKind.TCP


def test_health_section_of_the_listing():
    text = render_health(
        [(SVC, HealthCheck(CheckKind.HTTP, path="/h"), [(RealKey(A("10.0.2.11"), 8080), False, "http /h: status 500, expected 200")])]
    )
    assert text.splitlines() == [
        "Health checks:",
        "TCP  10.0.0.100:80 http GET /h expect 200 every 2s timeout 1s rise 2 fall 3, dead flows expire",
        "  -> 10.0.2.11:8080             DOWN  http /h: status 500, expected 200",
    ]
    assert render_health([]) == ""
