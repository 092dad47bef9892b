"""-L output against hand-written text in ipvsadm's layout (ipvsadm.c print_title / print_service_entry)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.config.ipvsadm import parse_command
from lb.config.savefmt import load_rules
from lb.model import ConfigError, Protocol, RealKey, ServiceKey
from lb.render import largenum, render_command, render_connections, render_list

TABLE = load_rules(
    """\
-A -t 207.175.44.110:80 -s rr
-a -t 207.175.44.110:80 -r 192.168.10.2:80 -m -w 2
-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1
-A -u 10.0.0.1:53 -s sh -b sh-port -p 60 -M 255.255.255.0
-a -u 10.0.0.1:53 -r 10.0.0.21:53 -g -w 0
"""
)
WEB = ServiceKey(Protocol.TCP, IPv4Address("207.175.44.110"), 80)
DNS = ServiceKey(Protocol.UDP, IPv4Address("10.0.0.1"), 53)
R1 = RealKey(IPv4Address("192.168.10.1"), 80)
R2 = RealKey(IPv4Address("192.168.10.2"), 80)
R3 = RealKey(IPv4Address("10.0.0.21"), 53)


def test_list_numeric() -> None:
    reals = {(WEB, R1): {"active": 3, "inactive": 12}, (WEB, R2): {"active": 1}}
    assert render_list(TABLE, real_numbers=reals, size=4096) == (
        "IP Virtual Server version lbxdp-0.1.0 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  207.175.44.110:80 rr\n"
        "  -> 192.168.10.1:80              Masq    1      3          12        \n"
        "  -> 192.168.10.2:80              Masq    2      1          0         \n"
        "UDP  10.0.0.1:53 sh (sh-port) persistent 60 mask 255.255.255.0\n"
        "  -> 10.0.0.21:53                 Route   0      0          0         \n"
    )


def test_list_one_service_has_no_header() -> None:
    assert render_list(TABLE, service=DNS) == (
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "UDP  10.0.0.1:53 sh (sh-port) persistent 60 mask 255.255.255.0\n"
        "  -> 10.0.0.21:53                 Route   0      0          0         \n"
    )
    with pytest.raises(ConfigError, match=r"No such service: TCP 10.0.0.9:80"):
        render_list(TABLE, service=ServiceKey(Protocol.TCP, IPv4Address("10.0.0.9"), 80))


def test_nosort_keeps_insertion_order() -> None:
    text = render_list(TABLE, nosort=True)
    assert text.index("192.168.10.2:80") < text.index("192.168.10.1:80")
    assert text.index("TCP  207") < text.index("UDP  10.0.0.1")


def test_stats_scales_large_numbers() -> None:
    services = {WEB: {"conns": 1234, "inpkts": 123_456_789, "outpkts": 5, "inbytes": 12_345_678_901, "outbytes": 99}}
    reals = {(WEB, R1): {"conns": 600, "inpkts": 60_000_000, "outpkts": 2, "inbytes": 7, "outbytes": 123_456_789_012_345}}
    text = render_list(TABLE, services, reals, stats=True, size=4096)
    assert text.splitlines()[1:5] == [
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
        "  -> RemoteAddress:Port",
        "TCP  207.175.44.110:80                1234  123456K        5   12345M       99",
        "  -> 192.168.10.1:80                   600 60000000        2        7     123T",
    ]


def test_stats_exact() -> None:
    services = {WEB: {"conns": 1234, "inpkts": 123_456_789, "inbytes": 12_345_678_901}}
    line = render_list(TABLE, services, stats=True, exact=True).splitlines()[3]
    assert line == "TCP  207.175.44.110:80                1234 123456789        0 12345678901        0"


def test_rate() -> None:
    services = {WEB: {"cps": 12, "inpps": 340, "outpps": 330, "inbps": 45_000, "outbps": 400_000_000}}
    reals = {(WEB, R2): {"cps": 6, "inpps": 170, "outpps": 165, "inbps": 22_500, "outbps": 200_000_000}}
    lines = render_list(TABLE, services, reals, rate=True).splitlines()
    assert lines[1:6] == [
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
        "  -> RemoteAddress:Port",
        "TCP  207.175.44.110:80                  12      340      330    45000  400000K",
        "  -> 192.168.10.1:80                     0        0        0        0        0",
        "  -> 192.168.10.2:80                     6      170      165    22500  200000K",
    ]


def test_stats_wins_over_rate_as_in_ipvsadm() -> None:
    text = render_command(parse_command("-L -n --stats --rate".split()), TABLE)
    assert "Conns   InPkts" in text and "CPS" not in text


@pytest.mark.parametrize(
    ("value", "exact", "text"),
    [
        (0, False, "        0"),
        (99_999_999, False, " 99999999"),
        (100_000_000, False, "  100000K"),
        (999_999_999, False, "  999999K"),
        (1_000_000_000, False, "    1000M"),
        (99_999_999_999, False, "   99999M"),
        (100_000_000_000, False, "     100G"),
        (100_000_000_000_000, False, "     100T"),
        (12_345_678, True, " 12345678"),
        (123_456_789, True, " 123456789"),
    ],
)
def test_largenum(value: int, exact: bool, text: str) -> None:
    assert largenum(value, exact=exact) == text


def test_connections() -> None:
    rows = [
        {"proto": "TCP", "expire": 899, "state": "ESTABLISHED", "saddr": "10.1.0.5", "sport": 40312,
         "vaddr": "207.175.44.110", "vport": 80, "daddr": "192.168.10.1", "dport": 80},
        {"proto": 17, "expire": 5, "state": "UDP", "saddr": "10.1.0.6", "sport": 5353,
         "vaddr": "10.0.0.1", "vport": 53, "daddr": "10.0.0.21", "dport": 53},
    ]  # fmt: skip
    assert render_connections(rows) == (
        "IPVS connection entries\n"
        "pro expire state       source             virtual            destination\n"
        "TCP 14:59  ESTABLISHED 10.1.0.5:40312     207.175.44.110:80  192.168.10.1:80\n"
        "UDP 00:05  UDP         10.1.0.6:5353      10.0.0.1:53        10.0.0.21:53\n"
    )


def test_render_command_dispatch() -> None:
    assert render_command(parse_command(["-L", "--timeout"]), TABLE) == "Timeout (tcp tcpfin udp): 900 120 300\n"
    assert render_command(parse_command(["-S", "-n"]), TABLE).splitlines()[0] == "-A -t 207.175.44.110:80 -s rr"
    assert render_command(parse_command(["-L", "-c"]), TABLE, connections=[]).startswith("IPVS connection entries\n")
    with pytest.raises(ConfigError):
        render_command(parse_command(["-C"]), TABLE)
