"""The save format: ipvsadm -S -n's layout, rules files with FILE:LINE errors, and save∘parse a fixed point."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings, strategies as st

from lb.config.ipvsadm import Command, Verb
from lb.config.savefmt import RulesError, load_rules, parse_rules, save
from lb.config.table import ServiceTable
from lb.model import Forwarding, Protocol, RealKey, ServiceKey

RULES = """\
# web tier
ipvsadm -A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.12:8080 -m -w 1
-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 3   # the big one

-A -u 10.0.0.1:53 -s sh -b flag-2 -p
-a -u 10.0.0.1:53 -r 10.0.0.21 -g -w 2 -x 100 -y 10
-A -t 10.0.0.0:443 -s wlc -p 120 -M 255.255.255.0
-a -t 10.0.0.0:443 -r 10.0.0.31:443 -i
"""

# Services sorted by protocol, address, port and reals by address, port, as ipvsadm -S -n prints.
SAVED = """\
-A -t 10.0.0.0:443 -s wlc -p 120 -M 255.255.255.0
-a -t 10.0.0.0:443 -r 10.0.0.31:443 -i -w 1
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 3
-a -t 10.0.0.1:80 -r 10.0.0.12:8080 -m -w 1
-A -u 10.0.0.1:53 -s sh -p 300 -b sh-port
-a -u 10.0.0.1:53 -r 10.0.0.21:53 -g -w 2 -x 100 -y 10
"""


def test_save_layout() -> None:
    assert save(load_rules(RULES, "rules")) == SAVED


def test_save_of_saved_is_identical() -> None:
    assert save(load_rules(SAVED)) == SAVED


def test_empty_file_is_an_empty_table() -> None:
    assert save(load_rules("# nothing\n\n")) == ""


BAD = [
    ("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", "f.rules:2: Service already exists: TCP 10.0.0.1:80"),
    ("\n\n-a -t 10.0.0.1:80 -r 10.0.0.2\n", "f.rules:3: Service not defined: TCP 10.0.0.1:80"),
    ("-A -t 10.0.0.1:80 -s nosuch\n", "f.rules:1: Scheduler not found: 'nosuch'"),
    ("# ok\n-L -n\n", "f.rules:2: '-L' cannot appear in a rules file (only -A -E -D -a -e -d -C --set)"),
    ("-A -t 10.0.0.1:80 -s 'rr\n", "f.rules:1: cannot split the line into words: No closing quotation"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n", "f.rules:1: illegal weight specified: '70000' (must be an integer 0..65535)"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[row[1] for row in BAD])
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(text, "f.rules")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_parse_rules_keeps_line_numbers() -> None:
    rules = parse_rules(RULES)
    assert [r.line for r in rules] == [2, 3, 4, 6, 7, 8, 9]
    assert all(r.command.verb in (Verb.ADD_SERVICE, Verb.ADD_REAL) for r in rules)


def test_load_rules_leaves_its_base_alone() -> None:
    base = load_rules("-A -t 10.0.0.1:80\n")
    grown = load_rules("-A -t 10.0.0.2:80\n", base=base)
    assert (len(base), len(grown)) == (1, 2)


# --- property: save(parse(save(t))) == save(t) for generated tables ---------------------------------

addresses = st.integers(min_value=0x0A000001, max_value=0x0A0000FE).map(IPv4Address)
ports = st.integers(min_value=1, max_value=65535)
schedulers = st.sampled_from(["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh", "fo", "ovf"])
masks = st.integers(min_value=8, max_value=32).map(lambda n: IPv4Address((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF))


@st.composite
def service_commands(draw: st.DrawFn) -> list[Command]:
    key = ServiceKey(draw(st.sampled_from(list(Protocol))), draw(addresses), draw(ports))
    scheduler = draw(schedulers)
    flags = {"sh": ["sh-port", "sh-fallback"], "mh": ["mh-port", "mh-fallback"]}.get(scheduler, [])
    chosen = frozenset(draw(st.lists(st.sampled_from(flags), unique=True))) if flags else frozenset()
    persistence = draw(st.none() | st.integers(min_value=1, max_value=86400))
    netmask = draw(masks) if persistence is not None else None
    out = [Command(Verb.ADD_SERVICE, service=key, scheduler=scheduler, sched_flags=chosen or None, persistence=persistence, netmask=netmask)]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        forwarding = draw(st.sampled_from(list(Forwarding)))
        port = draw(ports) if forwarding is Forwarding.MASQ else key.port
        upper = draw(st.integers(min_value=0, max_value=1000))
        lower = draw(st.integers(min_value=0, max_value=upper)) if upper else 0
        out.append(
            Command(
                Verb.ADD_REAL,
                service=key,
                real=RealKey(draw(addresses.filter(lambda a: a != key.vip)), port),  # a real is never its VIP
                forwarding=forwarding,
                weight=draw(st.integers(min_value=0, max_value=65535)),
                upper_threshold=upper or None,
                lower_threshold=lower or None,
            )
        )
    return out


@st.composite
def tables(draw: st.DrawFn) -> ServiceTable:
    table = ServiceTable()
    for commands in draw(st.lists(service_commands(), max_size=5)):
        if commands[0].service in table:
            continue
        for command in commands:
            if command.verb is Verb.ADD_REAL and command.real in table.get(command.service).reals:
                continue
            table.apply(command)
    return table


@settings(max_examples=150, deadline=None)
@given(tables())
def test_save_parse_is_a_fixed_point(table: ServiceTable) -> None:
    text = save(table)
    again = load_rules(text)
    assert save(again) == text
    # and nothing is lost: the same services and reals with the same settings
    # (compared as values, not reprs: a frozenset's repr order depends on how it was built)
    assert {vs.service.key: vs.service for vs in again} == {vs.service.key: vs.service for vs in table}
    assert {(vs.service.key, k): r for vs in again for k, r in vs.reals.items()} == {
        (vs.service.key, k): r for vs in table for k, r in vs.reals.items()
    }
