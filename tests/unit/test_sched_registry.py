"""The scheduler registry and plugin hook (lb/sched/__init__.py, lb/sched/plugins.py)."""

import importlib.metadata
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import lb.sched.registry
from lb.model import ConfigError, FlowKey, Protocol, RealKey
from lb.sched import get_scheduler, load_plugin, plugins, scheduler_class, scheduler_names
from lb.sched.base import Destination

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_scheduler"
BUILTINS = ["dh", "fo", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "wlc", "wrr"]
FLOW = FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), 40000, IPv4Address("10.0.0.100"), 80)


def make(n: int) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=i + 1) for i in range(n)]


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(scheduler_names())
    for name in BUILTINS:
        assert scheduler_class(name).name == name


@pytest.mark.parametrize("name", BUILTINS)
def test_every_scheduler_returns_none_when_nothing_is_available(name):
    s = get_scheduler(name)
    s.update([])
    assert s.schedule(FLOW, []) is None
    dests = make(4)
    s.update(dests)
    dests[0].weight = 0
    dests[1].overloaded = True
    dests[2].healthy = False
    dests[3].weight = 0
    for _ in range(3):
        assert s.schedule(FLOW, dests) is None


@pytest.mark.parametrize("name", BUILTINS)
def test_every_scheduler_schedules_an_available_real(name):
    s = get_scheduler(name)
    dests = make(3)
    s.update(dests)
    for _ in range(5):
        got = s.schedule(FLOW, dests)
        assert got in dests and got.available


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_scheduler("wlcx")
    msg = str(err.value)
    assert msg.startswith("unknown scheduler 'wlcx' (known: ") and "wlc, wrr" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("name", "flags", "message"),
    [
        ("rr", {"sh-port"}, "scheduler rr does not take flag(s): sh-port"),
        ("sh", {"sh-port", "bogus"}, "scheduler sh does not take flag(s): bogus"),
        ("mh", {"sh-fallback"}, "scheduler mh does not take flag(s): sh-fallback"),
    ],
)
def test_bad_flags_are_config_errors(name, flags, message):
    with pytest.raises(ConfigError) as err:
        get_scheduler(name, frozenset(flags))
    assert str(err.value) == message


def test_allowed_flags():
    assert get_scheduler("sh", frozenset({"sh-port", "sh-fallback"})).flags == {"sh-port", "sh-fallback"}
    assert get_scheduler("mh", frozenset({"mh-port", "mh-fallback"})).flags == {"mh-port", "mh-fallback"}


def test_example_plugin_by_module_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    cls = load_plugin("lbxdp_p2c.scheduler:PowerOfTwoChoices")
    assert scheduler_class("p2c") is cls and "p2c" in scheduler_names()
    dests = make(3)
    dests[0].active, dests[1].active, dests[2].active = 50, 0, 0
    s = get_scheduler("p2c")
    chosen = [s.schedule(FlowKey(Protocol.TCP, IPv4Address("10.1.0.1"), p, IPv4Address("10.0.0.100"), 80), dests)
              for p in range(1000, 1200)]
    assert all(d in dests for d in chosen)
    # the loaded real wins only when both choices fall on it (about 1 flow in 9)
    assert chosen.count(dests[0]) < chosen.count(dests[1]) / 2


def test_example_plugin_by_file_path():
    cls = load_plugin(f"{EXAMPLE / 'wrand.py'}:WeightedRandom")
    assert load_plugin(f"{EXAMPLE / 'wrand.py'}:WeightedRandom") is cls  # loading twice is harmless
    s = get_scheduler("wrand", frozenset({"flag-1"}))
    dests = make(2)  # weights 1 and 2
    picks = [s.schedule(FLOW, dests) for _ in range(3000)]
    assert 0.6 < picks.count(dests[1]) / 3000 < 0.73
    dests[1].healthy = False
    assert s.schedule(FLOW, dests) is dests[0]


def test_env_var_loads_plugins_lazily(monkeypatch):
    monkeypatch.setattr(lb.sched.registry, "_env_loaded", False)
    monkeypatch.setenv("LBXDP_SCHEDULERS", f" {EXAMPLE / 'wrand.py'}:WeightedRandom ,")
    assert get_scheduler("wrand").name == "wrand"


def test_env_var_error_names_the_variable(monkeypatch):
    monkeypatch.setattr(lb.sched.registry, "_env_loaded", False)
    monkeypatch.setenv("LBXDP_SCHEDULERS", "no/such/file.py:X")
    with pytest.raises(ConfigError, match=r"^LBXDP_SCHEDULERS: scheduler plugin 'no/such/file.py:X': no such file"):
        get_scheduler("rr")


def test_entry_point(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    ep = importlib.metadata.EntryPoint(
        name="p2c", value="lbxdp_p2c.scheduler:PowerOfTwoChoices", group=plugins.ENTRY_POINT_GROUP
    )
    bad = importlib.metadata.EntryPoint(name="broken", value="no_such_module_x:Y", group=plugins.ENTRY_POINT_GROUP)

    def fake(group, name=None):
        return [e for e in (ep, bad) if e.group == group and (name is None or e.name == name)]

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", fake)
    plugins.entry_point_names.cache_clear()  # the names are cached per process
    assert {"p2c", "broken"} <= set(scheduler_names())
    assert get_scheduler("p2c").name == "p2c"
    with pytest.raises(ConfigError, match=r"^scheduler entry point 'broken' \(no_such_module_x:Y\): ModuleNotFoundError"):
        get_scheduler("broken")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "expected 'module:Class' or 'path/file.py:Class'"),
        ("lb.sched.rr:Nope", "lb.sched.rr has no attribute 'Nope'"),
        ("no_such_module_zz:X", "cannot import no_such_module_zz: ModuleNotFoundError"),
        ("lb.model:FlowKey", "is not a subclass of lb.sched.base.Scheduler"),
        ("lb.sched.rr:RoundRobin", None),  # a built-in class again: same class, harmless
    ],
)
def test_plugin_errors_are_one_line(spec, message):
    if message is None:
        assert load_plugin(spec).name == "rr"
        return
    with pytest.raises(ConfigError) as err:
        load_plugin(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_broken_file_and_name_clash(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(ConfigError, match=r"failed to load: RuntimeError: boom$"):
        load_plugin(f"{broken}:X")
    clash = tmp_path / "clash.py"
    clash.write_text(
        "from lb.sched.base import Scheduler\n"
        "class Fake(Scheduler):\n    name = 'rr'\n    def schedule(self, flow, dests):\n        return None\n"
    )
    with pytest.raises(ConfigError, match=r"scheduler name 'rr' is already taken by lb.sched.rr.RoundRobin"):
        load_plugin(f"{clash}:Fake")
    abstract = tmp_path / "abstract.py"
    abstract.write_text("from lb.sched.base import Scheduler\nclass Half(Scheduler):\n    name = 'half'\n")
    load_plugin(f"{abstract}:Half")
    with pytest.raises(ConfigError, match="scheduler 'half' cannot be created"):
        get_scheduler("half")
