"""Schedulers describe themselves (lb.sched.base's class attributes), and every list of scheduler facts
elsewhere (ipvsadm's flag names and aliases, the CLI's help, kernelhash's choice) comes from them."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

import pytest

from lb.cli import description
from lb.config.ipvsadm import (
    check_sched_flags,
    check_scheduler,
    format_sched_flags,
    normalize_sched_flags,
    parse_command,
)
from lb.model import ConfigError, FlowKey, Protocol, RealKey
from lb.sched import builtin_schedulers, register, scheduler_class, scheduler_names
from lb.sched.base import Destination, Scheduler
from lb.sched.xdpkind import XdpKind

# What IPVS says of its schedulers (ip_vs_*.c, ipvsadm(8)); the classes must say the same.
EXPECTED = {  # name: (flag bits, hashes, how XDP decides its first packets)
    "rr": ((), False, XdpKind.SEQ),
    "wrr": ((), False, XdpKind.SEQ),
    "lc": ((), False, XdpKind.LC),
    "wlc": ((), False, XdpKind.WLC),
    "sed": ((), False, XdpKind.SED),
    "nq": ((), False, XdpKind.NQ),
    "sh": (("sh-fallback", "sh-port"), True, XdpKind.SH),
    "dh": ((), True, XdpKind.DH),
    "mh": (("mh-fallback", "mh-port"), True, XdpKind.MH),
    "fo": ((), False, XdpKind.FO),
    "ovf": ((), False, XdpKind.OVF),
}


def test_the_builtins_in_ipvsadms_order() -> None:
    assert [cls.name for cls in builtin_schedulers()] == list(EXPECTED)


@pytest.mark.parametrize("cls", builtin_schedulers(), ids=lambda c: c.name)
def test_every_builtin_states_its_facts(cls: type[Scheduler]) -> None:
    assert scheduler_class(cls.name) is cls
    bits, hashes, xdp = EXPECTED[cls.name]
    assert (cls.flag_bits, cls.hashes, cls.xdp_kind) == (bits, hashes, xdp)
    assert cls.flags_allowed == frozenset(cls.flag_bits) and len(cls.flag_bits) <= 3
    for flag in (cls.port_flag, cls.fallback_flag):
        assert flag is None or flag in cls.flag_bits
    assert (cls.port_flag is not None) == (cls.fallback_flag is not None) == bool(cls.flag_bits)
    assert cls.rederives_midflow == cls.hashes  # true of every built-in: a hash needs no history


def _dests() -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.0.1.{i}"), 80), weight=i) for i in range(1, 5)]


@pytest.mark.parametrize("cls", [c for c in builtin_schedulers() if c.hashes], ids=lambda c: c.name)
def test_a_hashing_scheduler_gives_a_flow_the_same_real_whatever_else_happened(cls: type[Scheduler]) -> None:
    s = cls()
    dests = _dests()
    s.update(dests)
    flow = FlowKey(Protocol.TCP, IPv4Address("10.3.0.9"), 41000, IPv4Address("10.0.0.100"), 80)
    first = s.schedule(flow, dests)
    for i in range(20):
        other = FlowKey(Protocol.TCP, IPv4Address(f"10.3.1.{i}"), 1000 + i, IPv4Address("10.0.0.100"), 80)
        chosen = s.schedule(other, dests)
        assert chosen is not None
        chosen.active += 1
        assert s.schedule(flow, dests) is first


@pytest.mark.parametrize("cls", [c for c in builtin_schedulers() if c.port_flag], ids=lambda c: c.name)
def test_the_port_flag_is_the_one_that_hashes_the_port(cls: type[Scheduler]) -> None:
    dests = _dests()
    with_port, without = cls(frozenset({cls.port_flag or ""})), cls()
    with_port.update(dests)
    without.update(dests)

    def reals(s: Scheduler) -> Sequence[Destination | None]:
        return [s.schedule(FlowKey(Protocol.TCP, IPv4Address("10.3.0.9"), p, IPv4Address("10.0.0.100"), 80), dests)
                for p in range(1000, 1064)]

    assert len(set(map(id, reals(without)))) == 1 and len(set(map(id, reals(with_port)))) > 1


class _Extra(Scheduler):
    """A stand-in for a new built-in: module and flag bits as lb.sched's own would have them."""

    name = "xtra"
    flag_bits = ("xtra-fallback", "xtra-port")
    flags_allowed = frozenset(flag_bits)
    port_flag, fallback_flag = "xtra-port", "xtra-fallback"

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        return dests[0] if dests else None


def test_help_and_validation_are_read_from_the_registry() -> None:
    names = " ".join(cls.name for cls in builtin_schedulers())
    assert f"schedulers: {names} (and plugins" in description()
    with pytest.raises(ConfigError, match="Scheduler not found: 'xtra'"):
        check_scheduler("xtra")
    _Extra.__module__ = "lb.sched.xtra"  # as if it lived in lb/sched/
    register(_Extra)
    assert "xtra" in scheduler_names() and f"schedulers: {names} xtra (and plugins" in description()
    check_scheduler("xtra")
    assert normalize_sched_flags("xtra", {"flag-1", "flag-2"}) == {"xtra-fallback", "xtra-port"}
    check_sched_flags("xtra", {"xtra-port"})
    with pytest.raises(ConfigError, match="incompatible scheduler flag `xtra-port'"):
        check_sched_flags("sh", {"xtra-port"})
    assert format_sched_flags({"flag-3", "xtra-port", "xtra-fallback"}) == "xtra-fallback,xtra-port,flag-3"
    assert parse_command(["-A", "-t", "10.0.0.1:80", "-s", "xtra", "-b", "flag-2"]).sched_flags == {"xtra-port"}
