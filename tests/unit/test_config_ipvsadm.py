"""ipvsadm command lines → Command, or the exact one-line error (rows in sshuttle's test_options style)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.config.ipvsadm import Command, Verb, parse_command
from lb.model import ConfigError, Forwarding, Protocol, RealKey, ServiceKey

VIP = ServiceKey(Protocol.TCP, IPv4Address("207.175.44.110"), 80)
UVIP = ServiceKey(Protocol.UDP, IPv4Address("207.175.44.110"), 53)
RIP = RealKey(IPv4Address("192.168.10.1"), 80)

GOOD = [
    # the seed's own commands
    ("-A -t 207.175.44.110:80 -s rr", Command(Verb.ADD_SERVICE, service=VIP, scheduler="rr")),
    (
        "-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 2",
        Command(Verb.ADD_REAL, service=VIP, real=RIP, forwarding=Forwarding.MASQ, weight=2),
    ),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m", Command(Verb.ADD_REAL, service=VIP, real=RIP, forwarding=Forwarding.MASQ)),
    ("ipvsadm -A -t 207.175.44.110:80 -s rr", Command(Verb.ADD_SERVICE, service=VIP, scheduler="rr")),
    ("-E -t 207.175.44.110:80 -s wlc", Command(Verb.EDIT_SERVICE, service=VIP, scheduler="wlc")),
    ("-D -t 207.175.44.110:80", Command(Verb.DELETE_SERVICE, service=VIP)),
    ("-e -t 207.175.44.110:80 -r 192.168.10.1:80 -w 5", Command(Verb.EDIT_REAL, service=VIP, real=RIP, weight=5)),
    ("-d -t 207.175.44.110:80 -r 192.168.10.1:80", Command(Verb.DELETE_REAL, service=VIP, real=RIP)),
    ("-L -n --stats --rate", Command(Verb.LIST, numeric=True, stats=True, rate=True)),
    ("-S", Command(Verb.SAVE)),
    ("-S -n", Command(Verb.SAVE, numeric=True)),
    ("-R", Command(Verb.RESTORE)),
    ("-C", Command(Verb.CLEAR)),
    ("-Z", Command(Verb.ZERO)),
    ("-Z -t 207.175.44.110:80", Command(Verb.ZERO, service=VIP)),
    # long forms
    ("--add-service --tcp-service 207.175.44.110:80 --scheduler rr", Command(Verb.ADD_SERVICE, service=VIP, scheduler="rr")),
    ("--edit-service --udp-service 207.175.44.110:53", Command(Verb.EDIT_SERVICE, service=UVIP)),
    ("--delete-service -u 207.175.44.110:53", Command(Verb.DELETE_SERVICE, service=UVIP)),
    (
        "--add-server --tcp-service 207.175.44.110:80 --real-server 192.168.10.1:8080 --masquerading --weight 3",
        Command(Verb.ADD_REAL, service=VIP, real=RealKey(RIP.address, 8080), forwarding=Forwarding.MASQ, weight=3),
    ),
    ("--edit-server -t 207.175.44.110:80 -r 192.168.10.1 --gatewaying", Command(Verb.EDIT_REAL, service=VIP, real=RIP, forwarding=Forwarding.ROUTE)),
    ("--edit-server -t 207.175.44.110:80 -r 192.168.10.1 --ipip", Command(Verb.EDIT_REAL, service=VIP, real=RIP, forwarding=Forwarding.TUNNEL)),
    ("--delete-server -t 207.175.44.110:80 -r 192.168.10.1", Command(Verb.DELETE_REAL, service=VIP, real=RIP)),
    ("--clear", Command(Verb.CLEAR)),
    ("--save --numeric", Command(Verb.SAVE, numeric=True)),
    ("--restore", Command(Verb.RESTORE)),
    ("--list --numeric --connection", Command(Verb.LIST, numeric=True, connection=True)),
    ("-l", Command(Verb.LIST)),
    ("--zero", Command(Verb.ZERO)),
    ("-L --exact --stats", Command(Verb.LIST, exact=True, stats=True)),
    ("-L -X --nosort", Command(Verb.LIST, exact=True, nosort=True)),
    ("-L --timeout", Command(Verb.LIST, timeout=True)),
    ("-L -n -t 207.175.44.110:80", Command(Verb.LIST, numeric=True, service=VIP)),
    ("-L --sort", Command(Verb.LIST)),
    # bundling and attached values, as popt allows
    ("-Ln", Command(Verb.LIST, numeric=True)),
    ("-Lnc", Command(Verb.LIST, numeric=True, connection=True)),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -w7", Command(Verb.ADD_REAL, service=VIP, real=RIP, weight=7)),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 --weight=7", Command(Verb.ADD_REAL, service=VIP, real=RIP, weight=7)),
    # the real's port defaults to the service's
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -g", Command(Verb.ADD_REAL, service=VIP, real=RIP, forwarding=Forwarding.ROUTE)),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -i", Command(Verb.ADD_REAL, service=VIP, real=RIP, forwarding=Forwarding.TUNNEL)),
    # thresholds
    (
        "-a -t 207.175.44.110:80 -r 192.168.10.1 -x 100 -y 50",
        Command(Verb.ADD_REAL, service=VIP, real=RIP, upper_threshold=100, lower_threshold=50),
    ),
    (
        "-e -t 207.175.44.110:80 -r 192.168.10.1 --u-threshold 9 --l-threshold 3",
        Command(Verb.EDIT_REAL, service=VIP, real=RIP, upper_threshold=9, lower_threshold=3),
    ),
    # persistence: -p takes the next word only when it is a number
    ("-A -t 207.175.44.110:80 -p", Command(Verb.ADD_SERVICE, service=VIP, persistence=300)),
    ("-A -t 207.175.44.110:80 -p 60", Command(Verb.ADD_SERVICE, service=VIP, persistence=60)),
    ("-A -t 207.175.44.110:80 -p60", Command(Verb.ADD_SERVICE, service=VIP, persistence=60)),
    ("-A -t 207.175.44.110:80 --persistent=60", Command(Verb.ADD_SERVICE, service=VIP, persistence=60)),
    ("-A -t 207.175.44.110:80 --persistent 60 -s sh", Command(Verb.ADD_SERVICE, service=VIP, persistence=60, scheduler="sh")),
    ("-A -t 207.175.44.110:80 -p -s sh", Command(Verb.ADD_SERVICE, service=VIP, persistence=300, scheduler="sh")),
    (
        "-A -t 207.175.44.110:80 -p 30 -M 255.255.255.0",
        Command(Verb.ADD_SERVICE, service=VIP, persistence=30, netmask=IPv4Address("255.255.255.0")),
    ),
    (
        "-A -t 207.175.44.110:80 -p --netmask 255.255.0.0",
        Command(Verb.ADD_SERVICE, service=VIP, persistence=300, netmask=IPv4Address("255.255.0.0")),
    ),
    # port 0 = all ports, allowed for persistent services
    ("-A -t 207.175.44.110 -p", Command(Verb.ADD_SERVICE, service=ServiceKey(Protocol.TCP, VIP.vip, 0), persistence=300)),
    # scheduler flags, with ipvsadm's generic names mapped to the scheduler's
    ("-A -t 207.175.44.110:80 -s sh -b sh-port", Command(Verb.ADD_SERVICE, service=VIP, scheduler="sh", sched_flags=frozenset({"sh-port"}))),
    (
        "-A -t 207.175.44.110:80 -s sh --sched-flags flag-1,flag-2",
        Command(Verb.ADD_SERVICE, service=VIP, scheduler="sh", sched_flags=frozenset({"sh-fallback", "sh-port"})),
    ),
    ("-A -t 207.175.44.110:80 -s mh -b mh-fallback", Command(Verb.ADD_SERVICE, service=VIP, scheduler="mh", sched_flags=frozenset({"mh-fallback"}))),
    # --set
    ("--set 900 120 300", Command(Verb.SET, timeouts=(900, 120, 300))),
    ("--set 0 0 10", Command(Verb.SET, timeouts=(0, 0, 10))),
]


@pytest.mark.parametrize(("line", "expected"), GOOD, ids=[row[0] for row in GOOD])
def test_parses(line: str, expected: Command) -> None:
    assert parse_command(line.split()) == expected


@pytest.mark.parametrize(("line", "expected"), GOOD, ids=[row[0] for row in GOOD])
def test_dict_round_trip(line: str, expected: Command) -> None:
    import json

    command = parse_command(line.split())
    assert Command.from_dict(json.loads(json.dumps(command.to_dict()))) == command
    assert parse_command(command.argv()) == command


@pytest.mark.parametrize("name", ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh", "fo", "ovf"])
def test_every_builtin_scheduler_is_accepted(name: str) -> None:
    assert parse_command(["-A", "-t", "10.0.0.1:80", "-s", name]).scheduler == name


BAD = [
    ("", "no command specified (one of -A -E -D -a -e -d -C -R -S -L -Z --set)"),
    ("-t 207.175.44.110:80", "no command specified (one of -A -E -D -a -e -d -C -R -S -L -Z --set)"),
    ("-A -L", "multiple commands specified"),
    ("-A", "You need to supply the 'service-address' option for the 'add-service' command"),
    ("-a -r 192.168.10.1", "You need to supply the 'service-address' option for the 'add-server' command"),
    ("-a -t 207.175.44.110:80", "You need to supply the 'real-server' option for the 'add-server' command"),
    ("-d -t 207.175.44.110:80", "You need to supply the 'real-server' option for the 'delete-server' command"),
    ("-A -t 207.175.44.110:80 -u 207.175.44.110:80", "multiple 'service-address' options specified"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -m -g", "multiple 'forwarding-method' options specified"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -w 1 -w 2", "multiple 'weight' options specified"),
    ("-A -t 207.175.44.110:80 -m", "Illegal 'forwarding-method' option with the 'add-service' command"),
    ("-A -t 207.175.44.110:80 -r 192.168.10.1", "Illegal 'real-server' option with the 'add-service' command"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -p", "Illegal 'persistent' option with the 'add-server' command"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -s rr", "Illegal 'scheduler' option with the 'add-server' command"),
    ("-D -t 207.175.44.110:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command"),
    ("-d -t 207.175.44.110:80 -r 192.168.10.1 -w 2", "Illegal 'weight' option with the 'delete-server' command"),
    ("-C -t 207.175.44.110:80", "Illegal 'service-address' option with the 'flush' command"),
    ("-S --stats", "Illegal 'stats' option with the 'save' command"),
    ("-A -n -t 207.175.44.110:80", "Illegal 'numeric' option with the 'add-service' command"),
    ("-L -s rr", "Illegal 'scheduler' option with the 'list' command"),
    ("-L -c -t 207.175.44.110:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command"),
    ("-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command"),
    ("-L -c --stats", "options conflicts in the list command"),
    ("-L --timeout --rate", "options conflicts in the list command"),
    ("-A -t 207.175.44.110:80 -s nosuch", "Scheduler not found: 'nosuch' (available: "),
    ("-A -t 207.175.44.110:80 -s", "-s: missing argument"),
    ("-A --tcp-service", "--tcp-service: missing argument"),
    ("-A -t 207.175.44.110:80 --frob", "invalid option `--frob'"),
    ("-A -t 207.175.44.110:80 -q", "invalid option `-q'"),
    ("-L --numeric=yes", "option `--numeric' takes no value"),
    ("-A -t 207.175.44.110:80 extra", "unexpected argument extra"),
    ("-A -t 207.175.44.110:80 -p foo", "unexpected argument foo"),
    ("-A -t 207.175.44.110:80 -p 0", "invalid timeout value `0' specified (must be 1..2678400 seconds)"),
    ("-A -t 207.175.44.110:80 -p 2678401", "invalid timeout value `2678401' specified (must be 1..2678400 seconds)"),
    ("-A -t 207.175.44.110", "Zero port specified for non-persistent service"),
    ("-A -t 207.175.44.110:0", "Zero port specified for non-persistent service"),
    ("-A -t 207.175.44.110:99999", "illegal virtual server address[:port] specified: '207.175.44.110:99999' (port must be a number 0..65535)"),
    ("-A -t 207.175.44.110:http", "illegal virtual server address[:port] specified: '207.175.44.110:http' (port must be a number 0..65535)"),
    ("-A -t www.example.org:80", "illegal virtual server address[:port] specified: 'www.example.org:80' (not an IPv4 address; lbxdp does not resolve names)"),
    ("-A -t [::1]:80", "illegal virtual server address[:port] specified: '[::1]:80' (IPv6 is not supported by lbxdp)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.300", "illegal real server address[:port] specified: '192.168.10.300' (not an IPv4 address; lbxdp does not resolve names)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1:-5 -m", "illegal real server address[:port] specified: '192.168.10.1:-5' (port must be a number 0..65535)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -w 70000", "illegal weight specified: '70000' (must be an integer 0..65535)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -w -1", "illegal weight specified: '-1' (must be an integer 0..65535)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -w two", "illegal weight specified: 'two' (must be an integer 0..65535)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -x 2147483648", "illegal u_threshold specified: '2147483648' (must be an integer 0..2147483647)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -y x", "illegal l_threshold specified: 'x' (must be an integer 0..2147483647)"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1 -x 5 -y 6", "lower threshold is greater than upper threshold"),
    # gatewaying and tunnelling keep the port (ipvsadm rewrites it silently; lbxdp says why it refuses)
    ("-a -t 207.175.44.110:80 -r 192.168.10.1:8080 -g", "real server 192.168.10.1:8080: port differs from the service port 80, which only masquerading (-m) can map; Route keeps the port"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1:8080", "real server 192.168.10.1:8080: port differs from the service port 80, which only masquerading (-m) can map; Route keeps the port"),
    ("-a -t 207.175.44.110:80 -r 192.168.10.1:8080 -i", "real server 192.168.10.1:8080: port differs from the service port 80, which only masquerading (-m) can map; Tunnel keeps the port"),
    ("-e -t 207.175.44.110:80 -r 192.168.10.1:8080 -g", "real server 192.168.10.1:8080: port differs from the service port 80, which only masquerading (-m) can map; Route keeps the port"),
    ("-A -t 207.175.44.110:80 -p -M 255.0.255.0", "illegal virtual server persistent mask specified: '255.0.255.0' (not a contiguous netmask)"),
    ("-A -t 207.175.44.110:80 -p -M banana", "illegal virtual server persistent mask specified: 'banana' (not a dotted netmask)"),
    ("-A -t 207.175.44.110:80 -s rr -b sh-port", "incompatible scheduler flag `sh-port' (scheduler rr takes: no flags)"),
    ("-A -t 207.175.44.110:80 -s sh -b mh-port", "incompatible scheduler flag `mh-port' (scheduler sh takes: sh-fallback, sh-port)"),
    ("-A -t 207.175.44.110:80 -s sh -b warp", "invalid scheduler flag `warp' (scheduler sh takes: sh-fallback, sh-port)"),
    ("-A -t 207.175.44.110:80 -b sh-port", "incompatible scheduler flag `sh-port' (scheduler wlc takes: no flags)"),
    ("-A -t 207.175.44.110:80 -s sh -b sh-port,", "invalid scheduler flag list `sh-port,' (comma-separated names, e.g. sh-port,sh-fallback)"),
    ("--set 1 2", "--set option requires 3 timeout values"),
    ("--set 1 2 x", "invalid timeout value `x' specified (must be 0..2678400 seconds)"),
    ("--set 1 2 3 4", "unexpected argument 4"),
    ("--set 1 2 3 -n", "Illegal 'numeric' option with the 'set' command"),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[row[0] or "<empty>" for row in BAD])
def test_rejects(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_command(line.split())
    text = str(info.value)
    assert "\n" not in text
    if message.endswith("(available: "):
        assert text.startswith(message)
        assert "rr" in text and "wlc" in text
    else:
        assert text == message


def test_service_config_applies_ipvsadm_defaults() -> None:
    service = parse_command("-A -t 10.0.0.1:80".split()).service_config()
    assert (service.scheduler, service.persistence, service.sched_flags) == ("wlc", None, frozenset())
    # the netmask only matters with persistence, so a stray -M does not make a different service
    assert parse_command("-A -t 10.0.0.1:80 -M 255.255.255.0".split()).service_config().netmask == IPv4Address("255.255.255.255")


def test_real_config_applies_ipvsadm_defaults() -> None:
    real = parse_command("-a -t 10.0.0.1:80 -r 10.0.0.2".split()).real_config()
    assert (real.forwarding, real.weight, real.upper_threshold, real.lower_threshold) == (Forwarding.ROUTE, 1, 0, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verb": "NOPE"}, "malformed command: 'NOPE'"),
        ({}, "malformed command: 'verb'"),
        ({"verb": "LIST", "colour": True}, "malformed command: unknown field(s) colour"),
        ({"verb": "ADD_REAL", "service": {"proto": "TCP", "vip": "10.0.0.1", "port": 80}, "real": {"address": "10.0.0.2", "port": 80}, "weight": "2"}, "malformed command: '2' is not an integer"),
        ({"verb": "ADD_SERVICE"}, "You need to supply the 'service-address' option for the 'add-service' command"),
        ({"verb": "RESTORE", "commands": [{"verb": "LIST"}]}, "'-L' cannot be part of a restore (only -A -E -D -a -e -d -C --set)"),
    ],
)
def test_from_dict_validates(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Command.from_dict(data)
    assert str(info.value) == message


# Issue 14, input: numbers only in ASCII digits, VIPs clients can send to, reals that are one other host.
# Python's int() reads '٨٠' (Arabic-Indic) and '８０' (fullwidth) as 80 and raises on '²' (which
# str.isdigit() accepts): each must be refused with ipvsadm's message, never parsed or a traceback.
INPUT_BAD = [
    ("-A -t 1.2.3.4:²", "illegal virtual server address[:port] specified: '1.2.3.4:²' (port must be a number 0..65535, in ASCII digits 0-9)"),
    ("-A -t 1.2.3.4:٨٠", "illegal virtual server address[:port] specified: '1.2.3.4:٨٠' (port must be a number 0..65535, in ASCII digits 0-9)"),
    ("-A -t 1.2.3.4:８０", "illegal virtual server address[:port] specified: '1.2.3.4:８０' (port must be a number 0..65535, in ASCII digits 0-9)"),
    ("-A -t 1.2.3.4:+80", "illegal virtual server address[:port] specified: '1.2.3.4:+80' (port must be a number 0..65535)"),
    ("-A -t ١.2.3.4:80", "illegal virtual server address[:port] specified: '١.2.3.4:80' (not an IPv4 address: write it in ASCII digits 0-9)"),
    ("-A -t １0.0.0.1:80", "illegal virtual server address[:port] specified: '１0.0.0.1:80' (not an IPv4 address: write it in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.٢", "illegal real server address[:port] specified: '10.0.0.٢' (not an IPv4 address: write it in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2:٨٠ -m", "illegal real server address[:port] specified: '10.0.0.2:٨٠' (port must be a number 0..65535, in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w ٢", "illegal weight specified: '٢' (must be an integer 0..65535, in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w ²", "illegal weight specified: '²' (must be an integer 0..65535, in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -x ３", "illegal u_threshold specified: '３' (must be an integer 0..2147483647, in ASCII digits 0-9)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -y ³", "illegal l_threshold specified: '³' (must be an integer 0..2147483647, in ASCII digits 0-9)"),
    ("-A -t 10.0.0.1:80 -p ٣٠", "invalid timeout value `٣٠' specified (must be 1..2678400 seconds, in ASCII digits 0-9)"),
    ("-A -t 10.0.0.1:80 -p²", "invalid timeout value `²' specified (must be 1..2678400 seconds, in ASCII digits 0-9)"),
    ("--set ١ 2 3", "invalid timeout value `١' specified (must be 0..2678400 seconds, in ASCII digits 0-9)"),
    ("-A -t 10.0.0.1:80 -p -M 255.255.٢55.0", "illegal virtual server persistent mask specified: '255.255.٢55.0' (not a dotted netmask)"),
    ("-A -t 10.0.0.1:80 -p -M 255.255.255.1", "illegal virtual server persistent mask specified: '255.255.255.1' (not a contiguous netmask)"),
    # a long number is cut short in the message, and never reaches int()'s 4300-digit limit
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w " + "9" * 5000, "illegal weight specified: '" + "9" * 40 + "…' (must be an integer 0..65535)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536", "illegal weight specified: '65536' (must be an integer 0..65535)"),
    # VIPs a client cannot send a unicast connection to
    ("-A -t 0.0.0.0:80", "illegal virtual server address 0.0.0.0: the unspecified address 0.0.0.0 is no destination a client can send to"),
    ("-A -u 255.255.255.255:53", "illegal virtual server address 255.255.255.255: the limited broadcast address reaches every host of the link, not a service"),
    ("-A -t 224.0.0.1:80", "illegal virtual server address 224.0.0.1: a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"),
    ("-A -u 239.255.255.250:1900", "illegal virtual server address 239.255.255.250: a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"),
    ("-A -t 240.0.0.1:80", "illegal virtual server address 240.0.0.1: a reserved address (240.0.0.0/4) that routers do not forward"),
    ("-E -t 224.0.0.1:80 -s rr", "illegal virtual server address 224.0.0.1: a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"),
    ("-a -t 0.0.0.0:80 -r 10.0.0.2", "illegal virtual server address 0.0.0.0: the unspecified address 0.0.0.0 is no destination a client can send to"),
    # reals that are no single other host
    ("-a -t 10.0.0.1:80 -r 0.0.0.0", "illegal real server address 0.0.0.0: the unspecified address 0.0.0.0 names no host"),
    ("-a -t 10.0.0.1:80 -r 255.255.255.255", "illegal real server address 255.255.255.255: the limited broadcast address is every host of the link, not one real"),
    ("-a -t 10.0.0.1:80 -r 224.0.0.5 -i", "illegal real server address 224.0.0.5: a multicast address (224.0.0.0/4) is a group, not one real"),
    ("-a -t 10.0.0.1:80 -r 127.0.0.1:8080 -m", "illegal real server address 127.0.0.1: a loopback address (127.0.0.0/8): XDP forwards to other hosts, never to this one (no IPVS local node)"),
    # a real at its own service's VIP is the balancer itself, whatever the forwarding method
    ("-a -t 10.0.0.1:80 -r 10.0.0.1", "real server 10.0.0.1:80: same address as the virtual service 10.0.0.1; a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.1 -i", "real server 10.0.0.1:80: same address as the virtual service 10.0.0.1; a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.1:8080 -m", "real server 10.0.0.1:8080: same address as the virtual service 10.0.0.1; a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
    ("-e -u 10.0.0.1:53 -r 10.0.0.1 -w 3", "real server 10.0.0.1:53: same address as the virtual service 10.0.0.1; a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
]


@pytest.mark.parametrize(("line", "message"), INPUT_BAD, ids=[row[0][:60] for row in INPUT_BAD])
def test_rejects_odd_input(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_command(line.split())
    assert str(info.value) == message


INPUT_GOOD = [
    # loopback VIPs stay allowed: the replay corpus balances captures addressed to 127.0.0.1
    ("-A -t 127.0.0.1:80 -s rr", Command(Verb.ADD_SERVICE, service=ServiceKey(Protocol.TCP, IPv4Address("127.0.0.1"), 80), scheduler="rr")),
    # a real in another VIP's address is fine (only its own service's VIP is the balancer for it)
    ("-a -t 10.0.0.1:80 -r 10.0.0.2", Command(Verb.ADD_REAL, service=ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80), real=RealKey(IPv4Address("10.0.0.2"), 80))),
    # deleting names, which does not add one: a real at the VIP can still be asked for (and is not found)
    ("-d -t 10.0.0.1:80 -r 10.0.0.1", Command(Verb.DELETE_REAL, service=ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80), real=RealKey(IPv4Address("10.0.0.1"), 80))),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65535", Command(Verb.ADD_REAL, service=ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80), real=RealKey(IPv4Address("10.0.0.2"), 80), weight=65535)),
    ("-A -t 10.0.0.1:80 -p 2678400", Command(Verb.ADD_SERVICE, service=ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80), persistence=2678400)),
]


@pytest.mark.parametrize(("line", "expected"), INPUT_GOOD, ids=[row[0] for row in INPUT_GOOD])
def test_accepts_edge_input(line: str, expected: Command) -> None:
    assert parse_command(line.split()) == expected


SVC = {"proto": "TCP", "vip": "10.0.0.1", "port": 80}
REAL = {"address": "10.0.0.2", "port": 80}


def _nested_restores(depth: int) -> dict:
    top: dict = {"verb": "RESTORE"}
    inner = top
    for _ in range(depth):
        inner["commands"] = [{"verb": "RESTORE"}]
        inner = inner["commands"][0]
    return top


# The socket's JSON gets the command line's bounds and messages; wrong types are one-line errors.
DICT_BAD = [
    ([1, 2], "malformed command: not a JSON object"),
    ("ADD_SERVICE", "malformed command: not a JSON object"),
    (None, "malformed command: not a JSON object"),
    ({"verb": ["LIST"]}, "malformed command: verb must be a string, not list"),
    ({"verb": "ADD_SERVICE", "service": "10.0.0.1:80"}, "malformed command: service must be an object, not str"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "10.0.0.1"}}, "malformed command: service lacks port"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": 167772161, "port": 80}}, "malformed command: service vip must be a string, not int"),
    ({"verb": "ADD_SERVICE", "service": {"proto": 6, "vip": "10.0.0.1", "port": 80}}, "malformed command: service proto must be a string, not int"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "10.0.0.1", "port": 80.0}}, "malformed command: 80.0 is not an integer"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "SCTP", "vip": "10.0.0.1", "port": 80}}, "malformed command: service proto must be TCP or UDP"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "10.0.0.1", "port": True}}, "malformed command: True is not an integer"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "١0.0.0.1", "port": 80}}, "illegal virtual server address specified: '١0.0.0.1' (not an IPv4 address: write it in ASCII digits 0-9)"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "0.0.0.0", "port": 80}}, "illegal virtual server address 0.0.0.0: the unspecified address 0.0.0.0 is no destination a client can send to"),
    ({"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "10.0.0.1", "port": 70000}}, "service port 70000 is out of range (0..65535)"),
    ({"verb": "ADD_SERVICE", "service": SVC, "persistence": 10**9}, "invalid timeout value `1000000000' specified (must be 1..2678400 seconds)"),
    ({"verb": "ADD_SERVICE", "service": SVC, "persistence": 30, "netmask": "255.0.255.0"}, "illegal virtual server persistent mask specified: '255.0.255.0' (not a contiguous netmask)"),
    ({"verb": "ADD_SERVICE", "service": SVC, "scheduler": ["rr"]}, "malformed command: scheduler must be a string, not list"),
    ({"verb": "ADD_SERVICE", "service": SVC, "scheduler": "sh", "sched_flags": "sh-port"}, "malformed command: sched_flags must be a list, not str"),
    ({"verb": "ADD_REAL", "service": SVC, "real": {"address": "10.0.0.1", "port": 80}}, "real server 10.0.0.1:80: same address as the virtual service 10.0.0.1; a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"),
    ({"verb": "ADD_REAL", "service": SVC, "real": {"address": "239.1.1.1", "port": 80}}, "illegal real server address 239.1.1.1: a multicast address (224.0.0.0/4) is a group, not one real"),
    ({"verb": "DELETE_REAL", "service": SVC, "real": {"address": "10.0.0.2", "port": 10**9}}, "illegal real server address[:port] specified: '10.0.0.2:1000000000' (port must be a number 0..65535)"),
    ({"verb": "ADD_REAL", "service": SVC, "real": REAL, "weight": 65536}, "illegal weight specified: '65536' (must be an integer 0..65535)"),
    ({"verb": "ADD_REAL", "service": SVC, "real": REAL, "weight": -1}, "illegal weight specified: '-1' (must be an integer 0..65535)"),
    ({"verb": "EDIT_REAL", "service": SVC, "real": REAL, "upper_threshold": 2**31}, "illegal u_threshold specified: '2147483648' (must be an integer 0..2147483647)"),
    ({"verb": "EDIT_REAL", "service": SVC, "real": REAL, "lower_threshold": -5}, "illegal l_threshold specified: '-5' (must be an integer 0..2147483647)"),
    ({"verb": "ADD_REAL", "service": SVC, "real": REAL, "forwarding": ["m"]}, "malformed command: forwarding must be a string, not list"),
    ({"verb": "SET", "timeouts": [-1, 5, 10]}, "invalid timeout value `-1' specified (must be 0..2678400 seconds)"),
    ({"verb": "SET", "timeouts": "900 120 300"}, "malformed command: timeouts must be a list, not str"),
    ({"verb": "SET", "timeouts": [1, 2]}, "--set option requires 3 timeout values"),
    ({"verb": "RESTORE", "commands": {"verb": "CLEAR"}}, "malformed command: commands must be a list, not dict"),
    ({"verb": "RESTORE", "commands": [7]}, "malformed command: not a JSON object"),
    # nesting is refused before recursing, so a deep nest costs one level, not the stack
    (_nested_restores(5000), "malformed command: a restore's rules cannot hold another restore"),
]


@pytest.mark.parametrize(("data", "message"), DICT_BAD, ids=[str(i) for i in range(len(DICT_BAD))])
def test_from_dict_refuses_what_the_line_refuses(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Command.from_dict(data)  # type: ignore[arg-type]
    assert str(info.value) == message
