from ipaddress import IPv4Address as A

import pytest

from lb.balancer.health import CheckKind, DeadFlows, HealthCheck
from lb.config.health import load_rules_file, parse_health, split_rules
from lb.config.savefmt import RulesError
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


# Issue 14: absurd or non-finite values are refused in one line, from the command line, a rules file
# and the control socket's JSON alike. Bounds: interval 0.1..3600 s, timeout 0.05 s..interval,
# rise/fall 1..100, --expect 100..599, --port 1..65535, --path printable ASCII from "/" (≤1024).
CLI_BAD = [
    ("--interval nan", "health: argument --interval: 'nan' is not a number of seconds (a decimal such as 0.5)"),
    ("--interval inf", "health: argument --interval: 'inf' is not a number of seconds (a decimal such as 0.5)"),
    ("--timeout -inf", "health: argument --timeout: expected one argument"),
    ("--interval 1e9", "health: argument --interval: '1e9' is not a number of seconds (a decimal such as 0.5)"),
    ("--interval ٢", "health: argument --interval: '٢' is not a number of seconds (a decimal such as 0.5)"),
    ("--interval 0x10", "health: argument --interval: '0x10' is not a number of seconds (a decimal such as 0.5)"),
    ("--interval 0.05", "health: health check interval 0.05 is out of range (0.1..3600 s)"),
    ("--interval 3601", "health: health check interval 3601 is out of range (0.1..3600 s)"),
    ("--interval 0 --timeout 0", "health: health check interval and timeout must be positive (interval 0.1..3600 s, timeout 0.05 s..interval)"),
    ("--interval 1 --timeout 0.01", "health: health check timeout 0.01 is too short (at least 0.05 s)"),
    ("--interval 1 --timeout 1.5", "health: health check timeout must not exceed its interval"),
    ("--rise 0", "health: health check rise and fall must be at least 1 and at most 100"),
    ("--fall 101", "health: health check rise and fall must be at least 1 and at most 100"),
    ("--fall ３", "health: argument --fall: '３' is not a whole number (ASCII digits 0-9)"),
    ("--rise 2.5", "health: argument --rise: '2.5' is not a whole number (ASCII digits 0-9)"),
    ("--expect 99", "health: health check expect 99 is no HTTP status (100..599)"),
    ("--expect 600", "health: health check expect 600 is no HTTP status (100..599)"),
    ("--port 0", "health: port 0 is out of range (1..65535)"),
    ("--port ٨٠", "health: argument --port: '٨٠' is not a whole number (ASCII digits 0-9)"),
    ("--path healthz", "health: health check path must start with /"),
    ("-h", "health: unrecognized arguments: -h"),  # in a rules file -h is an error, not a help page and exit
]
PATH_REFUSED = "health: health check path must be printable ASCII without spaces or control characters (percent-encode others, e.g. %20)"


@pytest.mark.parametrize(("extra", "message"), CLI_BAD, ids=[row[0] for row in CLI_BAD])
def test_refuses_absurd_values(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_health(["-t", "10.0.0.100:80", "--check", "http", *extra.split()])
    assert str(err.value) == message


@pytest.mark.parametrize(
    "path",
    ["/a b", "/x HTTP/1.0\r\nHost: evil", "/x\nX-Injected: 1", "/\t", "/\x00", "/\x7f", "/é", "/ｈ"],
)
def test_refuses_paths_that_would_change_the_request_line(path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_health(["-t", "10.0.0.100:80", "--check", "http", "--path", path])
    assert str(err.value) == PATH_REFUSED


def test_path_length_is_bounded() -> None:
    ok = "/" + "a" * 1023
    assert parse_health(["-t", "10.0.0.100:80", "--check", "http", "--path", ok]).check.path == ok
    with pytest.raises(ConfigError) as err:
        parse_health(["-t", "10.0.0.100:80", "--check", "http", "--path", ok + "a"])
    assert str(err.value) == "health: health check path is longer than 1024 characters"


def test_bounds_themselves_are_accepted() -> None:
    low = parse_health("-t 10.0.0.100:80 --check http --interval 0.1 --timeout 0.05 --rise 1 --fall 100 --expect 100 --port 1".split())
    assert low.check == HealthCheck(CheckKind.HTTP, 0.1, 0.05, 1, 100, "/", 100, 1)
    high = parse_health("-t 10.0.0.100:80 --check http --interval 3600 --timeout 3600 --rise 100 --expect 599 --port 65535".split())
    assert high.check == HealthCheck(CheckKind.HTTP, 3600.0, 3600.0, 100, 3, "/", 599, 65535)
    assert parse_health(high.argv()) == high
    assert parse_health("-t 10.0.0.100:80 --check http --path /ok?x=1&y=%20 --interval .5 --timeout .25".split()).check.path == "/ok?x=1&y=%20"


def test_refuses_a_vip_no_service_can_have() -> None:
    with pytest.raises(ConfigError) as err:
        parse_health("-t 224.0.0.1:80 --check tcp".split())
    assert str(err.value) == "health: illegal virtual server address 224.0.0.1: a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"


def test_rules_file_health_lines_get_the_same_checks() -> None:
    text = "-A -t 10.0.0.100:80 -s rr\nhealth -t 10.0.0.100:80 --check tcp --interval nan\n"
    with pytest.raises(RulesError) as err:
        load_rules_file(text, "r.rules")
    assert str(err.value) == "r.rules:2: health: argument --interval: 'nan' is not a number of seconds (a decimal such as 0.5)"
    for line, message in [
        ("health --help", "r.rules:2: health: the following arguments are required: --check"),
        ("health -t 10.0.0.100:80 --check http --path '/a\tb'", f"r.rules:2: {PATH_REFUSED}"),
        ("health -t 10.0.0.100:80 --check 'tcp", "r.rules:2: No closing quotation"),
    ]:
        with pytest.raises(RulesError) as err:
            load_rules_file("-A -t 10.0.0.100:80 -s rr\n" + line + "\n", "r.rules")
        assert str(err.value) == message


# What arrives from the socket: any JSON value. Every wrong one is a ValueError in one line.
DICT_BAD = [
    (None, "health check must be a JSON object, not NoneType"),
    (["tcp"], "health check must be a JSON object, not list"),
    ({"kind": "ping"}, "health check kind must be one of none, tcp, http"),
    ({"kind": ["tcp"]}, "health check kind must be one of none, tcp, http"),
    ({"kind": "tcp", "dead_flows": 1}, "health check dead_flows must be one of expire, keep"),
    ({"kind": "tcp", "colour": "red"}, "health check has unknown field(s) colour"),
    ({"kind": "tcp", "interval": "2"}, "health check interval must be a number of seconds, not str"),
    ({"kind": "tcp", "interval": [2]}, "health check interval must be a number of seconds, not list"),
    ({"kind": "tcp", "interval": True}, "health check interval must be a number of seconds, not bool"),
    ({"kind": "tcp", "interval": None}, "health check interval must be a number of seconds, not NoneType"),
    ({"kind": "tcp", "interval": float("nan")}, "health check interval must be a finite number of seconds, not nan"),
    ({"kind": "tcp", "interval": float("inf")}, "health check interval must be a finite number of seconds, not inf"),
    ({"kind": "tcp", "timeout": float("-inf")}, "health check timeout must be a finite number of seconds, not -inf"),
    ({"kind": "tcp", "interval": 10**400}, "health check interval 10000000000000000000… is out of range (0.1..3600 s)"),
    ({"kind": "tcp", "interval": -1}, "health check interval and timeout must be positive (interval 0.1..3600 s, timeout 0.05 s..interval)"),
    ({"kind": "tcp", "rise": 2.0}, "health check rise must be a whole number, not float"),
    ({"kind": "tcp", "fall": "3"}, "health check fall must be a whole number, not str"),
    ({"kind": "tcp", "fall": False}, "health check fall must be a whole number, not bool"),
    ({"kind": "tcp", "rise": 10**30}, "health check rise and fall must be at least 1 and at most 100"),
    ({"kind": "http", "expect": "200"}, "health check expect must be an HTTP status, not str"),
    ({"kind": "http", "expect": 1000}, "health check expect 1000 is no HTTP status (100..599)"),
    ({"kind": "tcp", "port": "80"}, "health check port must be a whole number, not str"),
    ({"kind": "tcp", "port": 65536}, "health check port 65536 is out of range (1..65535)"),
    ({"kind": "http", "path": 7}, "health check path must be a string, not int"),
    ({"kind": "http", "path": "/x\r\nHost: evil"}, PATH_REFUSED.removeprefix("health: ")),
]


@pytest.mark.parametrize(("data", "message"), DICT_BAD, ids=[str(i) for i in range(len(DICT_BAD))])
def test_from_dict_refuses_wrong_types_and_values(data: object, message: str) -> None:
    with pytest.raises(ValueError) as err:
        HealthCheck.from_dict(data)  # type: ignore[arg-type]
    assert type(err.value) is ValueError
    assert str(err.value) == message


def test_from_dict_accepts_json_integers_for_seconds() -> None:
    assert HealthCheck.from_dict({"kind": "tcp", "interval": 1, "timeout": 1}) == HealthCheck(CheckKind.TCP, 1.0, 1.0)
