from ipaddress import IPv4Address as A

import pytest

from lb.balancer.health import CheckKind, HealthCheck
from lb.config.ipvsadm import parse_command
from lb.config.table import ServiceTable
from lb.daemon import statefile
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
    with pytest.raises(ValueError, match=r"bad.json"):
        statefile.read(bad)


# -- a wrong file: one ValueError line, never another exception (issue 14, item 4) ----------------

import json
import os
import stat

from hypothesis import given, settings, strategies as st

from lb.model import Forwarding
from lb.tables import RealEntry, ServiceEntry


def _good_state() -> statefile.SavedState:
    table = ServiceTable()
    table.apply(parse_command("-A -t 10.0.0.100:80 -s wrr".split()))
    table.apply(parse_command("-a -t 10.0.0.100:80 -r 10.0.2.11:8080 -m -w 3".split()))
    table.apply(parse_command("-a -t 10.0.0.100:80 -r 10.0.2.12:8080 -m".split()))
    r2 = RealKey(A("10.0.2.12"), 8080)
    return statefile.SavedState(
        table=table, service_ids={SVC: 1}, real_ids={(SVC, REAL): 1, (SVC, r2): 2},
        health={SVC: HealthCheck(CheckKind.TCP)}, conns={1: 3}, first_traffic={1: [3, 180]},
        ifaces={"eth0": "generic"}, max_flows=4096, queue_bypass=True,
    )


GOOD = _good_state().to_json()


def _read_text(tmp_path, text: str | bytes):
    path = tmp_path / "state.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return statefile.read(path)


def test_the_file_names_its_format_and_version_and_keeps_the_bypass_choice(tmp_path):
    data = json.loads(GOOD)
    assert data["format"] == statefile.FORMAT == 1 and data["lbxdp"]
    back = _read_text(tmp_path, GOOD)
    assert back is not None and back.queue_bypass is True
    data.pop("queue_bypass")
    assert _read_text(tmp_path, json.dumps(data)).queue_bypass is False  # fail-closed unless chosen


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.update(format=2), "format 2"),
        (lambda d: d.pop("format"), "format None"),
        (lambda d: d.update(format=True), "format True"),
        (lambda d: d.update(table=[]), "table: not an object"),
        (lambda d: d.pop("table"), "no service table"),
        (lambda d: d.update(real_ids=[]), "real_ids: not an object"),
        (lambda d: d["real_ids"]["TCP:10.0.0.100:80"].update({"10.0.2.11:8080": "1"}), "real id: not a count"),
        (lambda d: d["real_ids"]["TCP:10.0.0.100:80"].update({"10.0.2.11:8080": -1}), "real id: not a count"),
        (lambda d: d["real_ids"]["TCP:10.0.0.100:80"].update({"10.0.2.11:8080": 1 << 40}), "out of range"),
        (lambda d: d.update(service_ids={"TCP:10.0.0.100:80": [1]}), "service id: not a count"),
        (lambda d: d.update(service_ids={"TCP:10.0.0.100:²": 1}), "not a port"),
        (lambda d: d.update(conns={"x": 1}), "not an id"),
        (lambda d: d.update(first_traffic={"1": [1]}), "pair"),
        (lambda d: d.update(ifaces={"eth0": 1}), "attach mode"),
        (lambda d: d.update(tunables={"max_flows": "big"}), "max_flows"),
        (lambda d: d.update(queue_bypass="yes"), "queue_bypass"),
        (lambda d: d["health"]["TCP:10.0.0.100:80"].update(interval="2"), "interval"),
        (lambda d: d["health"]["TCP:10.0.0.100:80"].update(bogus=1), "bogus"),
        (lambda d: d["table"]["services"][0].update(reals=[1]), "malformed"),
        # the table's values are held to the types of the control socket's JSON (IPv4Address and int()
        # alone would take 167772161 as 10.0.0.1, True as a netmask, "80" and 80.5 as ports)
        (lambda d: d["table"]["services"][0].update(vip=167772161), "address must be a string, not int"),
        (lambda d: d["table"]["services"][0].update(netmask=True), "address must be a string, not bool"),
        (lambda d: d["table"]["services"][0].update(port="80"), "is not an integer"),
        (lambda d: d["table"]["services"][0]["reals"][0].update(weight=1.5), "is not an integer"),
    ],
)
def test_a_wrong_field_is_one_value_error_line(tmp_path, change, words):
    data = json.loads(GOOD)
    change(data)
    with pytest.raises(ValueError) as info:
        _read_text(tmp_path, json.dumps(data))
    message = str(info.value)
    assert words in message and "state.json" in message and "\n" not in message, message


@pytest.mark.parametrize("text", [GOOD[: len(GOOD) // 2], "", "\x00\xff", "[" * 100000, "null", "[]", "1e999"])
def test_truncated_or_garbage_is_one_value_error_line(tmp_path, text):
    with pytest.raises(ValueError) as info:
        _read_text(tmp_path, text)
    assert "\n" not in str(info.value)


def test_invalid_utf8_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        _read_text(tmp_path, b"\xff\xfe{}")


def _mutations() -> st.SearchStrategy[str]:
    """The good file truncated, with bytes replaced, or with one JSON value swapped for another."""
    truncated = st.integers(0, len(GOOD)).map(lambda n: GOOD[:n])
    spliced = st.tuples(st.integers(0, len(GOOD) - 1), st.text(max_size=8)).map(
        lambda p: GOOD[: p[0]] + p[1] + GOOD[p[0] + 1 :])
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )

    def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        found = [prefix]
        if isinstance(value, dict):
            for k, v in value.items():
                found += paths(v, (*prefix, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                found += paths(v, (*prefix, i))
        return found

    all_paths = paths(json.loads(GOOD))[1:]

    def replace(args: tuple[tuple[object, ...], object]) -> str:
        where, new = args
        data = json.loads(GOOD)
        node = data
        for step in where[:-1]:
            node = node[step]
        node[where[-1]] = new
        return json.dumps(data)

    swapped = st.tuples(st.sampled_from(all_paths), json_values).map(replace)
    return truncated | spliced | swapped


@settings(max_examples=400, deadline=None)
@given(_mutations())
def test_mutated_state_is_read_or_refused_with_a_value_error(text):
    try:
        statefile.SavedState.from_json(text)
    except ValueError:
        pass  # refused; any other exception fails the test


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_refused_with_a_value_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("s") / "state.json"
    path.write_bytes(raw)
    try:
        statefile.read(path)
    except ValueError as exc:
        assert "\n" not in str(exc)


def test_state_file_and_its_directory_are_private(tmp_path):
    path = tmp_path / "run" / "state.json"
    statefile.write(path, _good_state())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


# -- ids checked against the pinned maps -----------------------------------------------------------


def _pinned(state: statefile.SavedState):
    services = {k: ServiceEntry(v) for k, v in state.service_ids.items()}
    reals = {}
    for (skey, rkey), rid in state.real_ids.items():
        real = next(vs for vs in state.table if vs.service.key == skey).reals[rkey]
        reals[rid] = RealEntry(real.address, real.port, real.forwarding)
    return services, reals


def test_matching_ids_are_adopted():
    state = _good_state()
    services, reals = _pinned(state)
    assert statefile.mismatch(state, services, reals.get, len(reals)) is None
    assert statefile.mismatch(None, {}, {}.get, 0) is None  # nothing saved, nothing pinned


def test_swapped_real_ids_are_refused():
    state = _good_state()
    services, reals = _pinned(state)
    r2 = RealKey(A("10.0.2.12"), 8080)
    state.real_ids[(SVC, REAL)], state.real_ids[(SVC, r2)] = 2, 1
    why = statefile.mismatch(state, services, reals.get, len(reals))
    assert why is not None and "real id" in why and "10.0.2.1" in why, why


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s, r: r.update({1: RealEntry(A("10.0.2.11"), 8081, Forwarding.MASQ)}), "real id 1"),
        (lambda s, r: r.update({1: RealEntry(A("10.0.2.11"), 8080, Forwarding.ROUTE)}), "real id 1"),
        (lambda s, r: r.pop(2), "nothing in the pinned map"),
        (lambda s, r: s.update({SVC: ServiceEntry(7)}), "service TCP:10.0.0.100:80 has id 1"),
        (lambda s, r: s.clear(), "the pinned map none"),
    ],
)
def test_pinned_maps_that_differ_are_refused(edit, words):
    state = _good_state()
    services, reals = _pinned(state)
    edit(services, reals)
    why = statefile.mismatch(state, services, reals.get, len(reals))
    assert why is not None and words in why, why


def test_pinned_maps_without_a_saved_state_are_refused():
    services, reals = _pinned(_good_state())
    why = statefile.mismatch(None, services, reals.get, len(reals))
    assert why is not None and "no saved state" in why


def test_fresh_maps_take_any_saved_state():
    """Nothing pinned (the program was detached by hand): no flow can be misdirected, so the
    configuration comes back."""
    assert statefile.mismatch(_good_state(), {}, {}.get, 0) is None
