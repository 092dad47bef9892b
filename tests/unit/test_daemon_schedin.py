"""lb.daemon.schedin and what carries it: `--sched-in xdp|daemon` from the command line, the
environment and the saved state to the daemon, and where `-L` and `status` say first packets are
decided (pure: no daemon, no maps)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from lb.config.savefmt import load_rules
from lb.daemon import schedin, statefile
from lb.daemon.attach import attach_parser
from lb.daemon.requests import RequestError, attach as attach_request
from lb.model import Protocol, ServiceKey
from lb.render import render_first_packets


@pytest.mark.parametrize(
    "option, saved, environ, want",
    [
        (None, None, {}, "xdp"),  # the default
        ("daemon", None, {}, "daemon"),
        ("xdp", "daemon", {"LBXDP_KERNEL_HASH": "0"}, "xdp"),  # the option wins over everything
        (None, "daemon", {}, "daemon"),  # kept across restarts
        (None, "xdp", {"LBXDP_KERNEL_HASH": "0"}, "daemon"),  # the variable is the fallback for the option
        (None, "daemon", {"LBXDP_KERNEL_HASH": "1"}, "xdp"),
        (None, None, {"LBXDP_KERNEL_HASH": "off"}, "daemon"),
        (None, "bogus", {}, "xdp"),
    ],
)
def test_the_choice_comes_from_the_option_then_the_environment_then_the_saved_state(
        option: str | None, saved: str | None, environ: dict[str, str], want: str) -> None:
    assert schedin.resolve(option, saved, environ) == want


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="--sched-in must be xdp or daemon"):
        schedin.resolve("kernel", None, {})


def test_attach_teaches_and_takes_the_switch() -> None:
    parser = attach_parser()
    text = parser.format_help()
    assert "--sched-in {xdp,daemon}" in text and "reference path" in text and "LBXDP_KERNEL_HASH" in text
    assert parser.parse_args(["eth0"]).sched_in is None  # unset: the saved choice, else xdp
    assert parser.parse_args(["eth0", "--sched-in", "daemon"]).sched_in == "daemon"
    with pytest.raises(SystemExit):
        parser.parse_args(["eth0", "--sched-in", "python"])


def test_the_saved_state_keeps_the_choice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.json"
    path.write_text(statefile.SavedState(sched_in="daemon").to_json())
    back = statefile.read(path)
    assert back is not None and back.sched_in == "daemon"
    data = json.loads(path.read_text())
    data.pop("sched_in")  # a state from before the switch existed
    path.write_text(json.dumps(data))
    assert statefile.read(path).sched_in == "xdp"  # type: ignore[union-attr]
    path.write_text(json.dumps(dict(data, sched_in="kernel")))
    with pytest.raises(ValueError, match="sched_in: not xdp or daemon"):
        statefile.read(path)


class AttachingDaemon:
    """What the attach request asks of the daemon, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def set_queue_bypass(self, bypass: object) -> None:
        self.calls.append(("queue_bypass", bypass))

    def set_sched_in(self, sched_in: object) -> None:
        self.calls.append(("sched_in", sched_in))

    def save_state(self) -> None:
        self.calls.append(("saved", None))


def test_a_running_daemon_is_told_the_choice_and_a_bad_one_changes_nothing() -> None:
    daemon = AttachingDaemon()
    attach_request(daemon, {"ifaces": [], "sched_in": "daemon"})  # type: ignore[arg-type]
    assert ("sched_in", "daemon") in daemon.calls and daemon.calls[-1] == ("saved", None)
    daemon = AttachingDaemon()
    with pytest.raises(RequestError, match="'sched_in' must be xdp, daemon or null"):
        attach_request(daemon, {"ifaces": [], "sched_in": 1})  # type: ignore[arg-type]
    assert daemon.calls == []


TABLE = load_rules(
    """\
-A -t 10.0.0.1:80 -s rr
-A -u 10.0.0.1:53 -s rr
-A -t 10.0.0.1:81 -s wlc
"""
)
WEB = ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 80)
WLC = ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 81)
DNS = ServiceKey(Protocol.UDP, IPv4Address("10.0.0.1"), 53)


def test_the_listing_says_where_each_service_is_decided_in_its_own_section() -> None:
    decided = {WEB: "xdp", DNS: "xdp", WLC: "daemon (connection thresholds set)"}
    assert render_first_packets(TABLE, decided) == (
        "First packets decided in:\n"
        "  TCP  10.0.0.1:80  xdp\n"
        "  TCP  10.0.0.1:81  daemon (connection thresholds set)\n"
        "  UDP  10.0.0.1:53  xdp\n"
    )
    assert render_first_packets(TABLE, decided, service=DNS) == "First packets decided in:\n  UDP  10.0.0.1:53  xdp\n"
    assert render_first_packets(TABLE, {}) == ""  # no service, no section: `-L` of an empty table is unchanged
    # no line of the section reads as ipvsadm's: services start at column 0, reals with "  -> "
    for line in render_first_packets(TABLE, decided).splitlines()[1:]:
        assert line.startswith("  ") and not line.lstrip().startswith("->")


class SchedMaps:
    """The maps KernelSched writes, as dicts (rr/wrr rows, rings, entries)."""

    max_hashed_services = 4
    max_sched_rows = 4

    def __init__(self) -> None:
        self.services: dict[ServiceKey, object] = {}
        self.seqs: dict[int, list[int]] = {}
        self.cursors: dict[int, int] = {}

    def set_seq(self, row: int, ids: list[int]) -> None:
        self.seqs[row] = list(ids)

    def set_cursor(self, row: int, position: int) -> None:
        self.cursors[row] = position

    def read_cursor(self, row: int) -> int:
        return self.cursors.get(row, 0)

    def set_real_sched(self, real_id: int, sched: object) -> None:
        pass

    def set_service(self, key: ServiceKey, entry: object) -> None:
        self.services[key] = entry


def test_where_each_service_is_decided_follows_the_switch_the_rules_and_the_table() -> None:
    from types import SimpleNamespace

    from lb.balancer.engine import Balancer
    from lb.daemon.kernelsched import KernelSched
    from lb.daemon.links import Links
    from lb.daemon.status import first_packets_decided

    table = load_rules(
        """\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m
-A -t 10.0.0.1:81 -s rr
-a -t 10.0.0.1:81 -r 10.0.1.1:80 -m -x 10
"""
    )
    balancer = Balancer()
    balancer.sync(list(table))
    maps = SchedMaps()
    sched = KernelSched(maps)  # type: ignore[arg-type]
    sched.sync(balancer.services, rewrite=True)
    daemon = SimpleNamespace(sched_in="xdp", kernel_sched=sched, balancer=balancer)
    capped = ServiceKey(Protocol.TCP, IPv4Address("10.0.0.1"), 81)
    assert first_packets_decided(daemon) == {WEB: "xdp", capped: "daemon (connection thresholds set)"}  # type: ignore[arg-type]

    Links.set_sched_in(daemon, "daemon")  # type: ignore[arg-type]  # what `attach --sched-in daemon` does
    assert daemon.sched_in == "daemon" and maps.services[WEB].sched == 0  # type: ignore[attr-defined]
    assert set(first_packets_decided(daemon).values()) == {"daemon (--sched-in daemon)"}  # type: ignore[arg-type]
    Links.set_sched_in(daemon, None)  # type: ignore[arg-type]  # not given: unchanged
    assert daemon.sched_in == "daemon"

    Links.set_sched_in(daemon, "xdp")  # type: ignore[arg-type]
    assert maps.services[WEB].sched != 0  # type: ignore[attr-defined]
    sched.set_paused(True, balancer.services)  # the flow table at its limit
    assert first_packets_decided(daemon)[WEB] == "daemon (flow table full)"  # type: ignore[arg-type]
