"""The control channel's pure parts and its socket helpers, without a daemon (lb.daemon.protocol,
lb.daemon.control.read_request/send_reply, the engine's capacity check): credentials, a decoder
that raises nothing but ProtocolError, chunked replies, one deadline per request."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from ipaddress import IPv4Address as A

import pytest
from hypothesis import given, settings, strategies as st

from lb.balancer.engine import Balancer
from lb.config.ipvsadm import Command
from lb.daemon import protocol
from lb.daemon.control import read_request, send_reply
from lb.daemon.protocol import (
    CHUNK_CHARS,
    ProtocolError,
    at_secure,
    cap_eff,
    decode,
    is_partial,
    may_configure,
    reply_error,
    reply_lines,
    reply_ok,
)
from lb.model import ConfigError, Forwarding, Protocol, RealServer, Service, ServiceKey, VirtualService

STATUS = """Name:\tpython3
Umask:\t0022
State:\tS (sleeping)
CapInh:\t0000000000000000
CapPrm:\t{cap}
CapEff:\t{cap}
CapBnd:\t000001ffffffffff
"""


def _auxv(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("@LL", kind, value) for kind, value in pairs)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (_auxv((33, 0x7FFF0000), (23, 1), (0, 0)), True),  # a setuid or file-capability exec
        (_auxv((33, 0x7FFF0000), (23, 0), (0, 0)), False),
        (_auxv((33, 1), (0, 0), (23, 1)), None),  # after AT_NULL nothing counts
        (b"", None),
        (b"\x17\x00", None),  # truncated
    ],
)
def test_at_secure_is_read_from_raw_auxv(raw: bytes, expected: bool | None) -> None:
    assert at_secure(raw) is expected


def test_this_process_was_not_a_privileged_exec() -> None:
    with open("/proc/self/auxv", "rb") as auxv:
        assert at_secure(auxv.read()) is False


@pytest.mark.parametrize(
    "text, expected",
    [
        (STATUS.format(cap="000001ffffffffff"), 0x1FFFFFFFFFF),
        (STATUS.format(cap="0000000000001000"), 1 << 12),
        (STATUS.format(cap="0000000000000000"), 0),
        ("Name:\tx\nCapEff:\tnot-hex\n", None),
        ("Name:\tx\n", None),
        ("", None),
    ],
)
def test_cap_eff_is_read_from_proc_status_text(text: str, expected: int | None) -> None:
    assert cap_eff(text) == expected


OWN, CHILD = 4026531837, 4026532999


@pytest.mark.parametrize(
    "uid, caps, userns, allowed",
    [
        (0, None, None, True),  # root: the uid alone decides
        (0, 0, CHILD, True),
        (1000, 1 << 12, OWN, True),  # CAP_NET_ADMIN in our user namespace (setcap, ambient caps)
        (1000, 1 << 12, CHILD, False),  # "root" of an unprivileged container: not here
        (1000, 0x1FFFFFFFFFF & ~(1 << 12), OWN, False),  # every capability but the one that counts
        (65534, 0, OWN, False),
        (65534, None, OWN, False),  # /proc unreadable: refuse
        (65534, 1 << 12, None, False),
    ],
)
def test_who_may_configure(uid: int, caps: int | None, userns: int | None, allowed: bool) -> None:
    assert may_configure(uid, caps, userns, OWN) is allowed


@pytest.mark.parametrize("elevated, allowed", [(False, True), (True, False), (None, False)])
def test_a_capability_from_a_privileged_exec_does_not_count(elevated: bool | None, allowed: bool) -> None:
    assert may_configure(1000, 1 << 12, OWN, OWN, elevated) is allowed
    assert may_configure(0, 0, OWN, OWN, elevated) is True  # root is root, however it got there


@pytest.mark.parametrize(
    "line, message",
    [
        (b"[" * 100000, "nested too deeply"),
        (b"{\"op\":" * 50000, "nested too deeply"),
        (b"[1,2]", "not a JSON object"),
        (b"\"op\"", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{\"op\": ", "bad control request"),
        (b"", "bad control request"),
        (b"{\"n\": " + b"9" * 5000 + b"}", "bad control request"),  # int() digit limit (CVE-2020-10735)
    ],
)
def test_decoder_turns_every_bad_line_into_one_protocol_error(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(line)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@settings(max_examples=400)
@given(st.binary(max_size=2000))
def test_decoder_raises_nothing_else_on_random_bytes(line: bytes) -> None:
    try:
        assert isinstance(decode(line), dict)
    except ProtocolError:
        pass


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["verb", "service", "proto", "vip", "port", "scheduler", "real", "weight", "forwarding", "commands",
     "persistence", "netmask", "timeouts", "sched_flags", "upper_threshold", "numeric", "connection"]
)


@settings(max_examples=400)
@given(st.dictionaries(FIELDS | st.text(max_size=8), JSON, max_size=6))
def test_command_from_any_json_object_is_a_command_or_a_config_error(data: dict) -> None:
    """The daemon's only parser of `ipvsadm` requests: whatever fields and types a client sends,
    it answers with a Command or a ConfigError (a one-line reply), never another exception."""
    line = json.dumps({"op": "ipvsadm", "command": data}).encode()
    request = decode(line)
    try:
        Command.from_dict(request["command"])
    except ConfigError:
        pass


def test_a_long_reply_is_chunked_and_reassembles() -> None:
    output = "".join(f"TCP 00:59 ESTABLISHED 10.0.1.{i % 250}:{i} 10.0.0.100:80 10.0.2.1:80\n"
                     for i in range(60000))  # ~3.8 MB: four lines
    lines = list(reply_lines(reply_ok(output, data={"x": 1})))
    assert len(lines) == -(-len(output) // CHUNK_CHARS) >= 4
    messages = [json.loads(line) for line in lines]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert all(is_partial(m) and len(m["output"]) == CHUNK_CHARS for m in messages[:-1])
    assert not is_partial(messages[-1]) and messages[-1]["data"] == {"x": 1}
    assert "".join(m["output"] for m in messages) == output


@pytest.mark.parametrize("size", [0, 1, CHUNK_CHARS - 1, CHUNK_CHARS, CHUNK_CHARS + 1, 2 * CHUNK_CHARS])
def test_chunk_edges(size: int) -> None:
    output = "x" * size
    messages = [json.loads(line) for line in reply_lines(reply_ok(output))]
    assert "".join(m["output"] for m in messages) == output
    assert len(messages) == max(1, -(-size // CHUNK_CHARS))
    assert all(m["output"] for m in messages[:-1]) and not is_partial(messages[-1])


def test_errors_are_one_line() -> None:
    (line,) = reply_lines(reply_error("first\nsecond\n" + "x" * 1000))
    message = json.loads(line)["error"]
    assert "\n" not in message and len(message) <= 300 and message.startswith("first second")


# -- the socket helpers on a socketpair --------------------------------------------------------------


def _pair() -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server.setblocking(False)
    return server, client


def test_read_request_stops_at_the_newline() -> None:
    server, client = _pair()
    with server, client:
        client.sendall(b'{"op":"ping"}\n{"ignored": true}\n')
        assert read_request(server, time.monotonic() + 1) == b'{"op":"ping"}'


def test_a_trickling_client_gets_one_deadline_not_one_per_byte() -> None:
    server, client = _pair()
    stop = threading.Event()

    def trickle() -> None:
        for _ in range(40):  # a byte every 50 ms: 2 s if nobody stops it
            if stop.is_set():
                return
            try:
                client.send(b" ")
            except OSError:
                return
            time.sleep(0.05)

    sender = threading.Thread(target=trickle)
    sender.start()
    started = time.monotonic()
    try:
        with pytest.raises(ProtocolError, match="not complete in time"):
            read_request(server, started + 0.5)
        assert time.monotonic() - started < 0.9
    finally:
        stop.set()
        sender.join(5)
        server.close()
        client.close()


def test_read_request_refuses_what_is_too_large() -> None:
    server, client = _pair()
    with server, client:
        client.setblocking(False)
        sender = threading.Thread(target=lambda: _send_some(client, 200_000))
        sender.start()
        with pytest.raises(ProtocolError, match="larger than"):
            read_request(server, time.monotonic() + 2, limit=100_000)
        sender.join(5)


def _send_some(sock: socket.socket, n: int) -> None:
    data = memoryview(b"x" * n)
    deadline = time.monotonic() + 2
    while data and time.monotonic() < deadline:
        try:
            data = data[sock.send(data):]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return


def test_a_request_without_newline_ends_at_eof_and_an_empty_one_is_refused() -> None:
    server, client = _pair()
    with server, client:
        client.sendall(b'{"op":"ping"}')
        client.shutdown(socket.SHUT_WR)
        assert read_request(server, time.monotonic() + 1) == b'{"op":"ping"}'
    server, client = _pair()
    with server, client:
        client.shutdown(socket.SHUT_WR)
        with pytest.raises(ProtocolError, match="empty"):
            read_request(server, time.monotonic() + 1)


def test_send_reply_gives_up_on_a_client_that_does_not_read() -> None:
    server, client = _pair()
    with server, client:
        started = time.monotonic()
        send_reply(server, reply_ok("y" * (4 * CHUNK_CHARS)), started + 0.3)  # far beyond the buffer
        assert time.monotonic() - started < 1.0


def test_send_reply_streams_every_chunk_to_a_reader() -> None:
    server, client = _pair()
    output = "z" * (3 * CHUNK_CHARS + 5)
    received = bytearray()

    def reader() -> None:
        client.settimeout(5)
        while True:
            chunk = client.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    with server:
        send_reply(server, reply_ok(output), time.monotonic() + 10)
    thread.join(10)
    client.close()
    messages = [json.loads(line) for line in bytes(received).splitlines()]
    assert "".join(m["output"] for m in messages) == output and len(messages) == 4


# -- capacity: refused before the engine changes ------------------------------------------------------

KEY = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)


def _vs(key: ServiceKey, n: int) -> VirtualService:
    reals = {}
    for i in range(1, n + 1):
        real = RealServer(A(f"10.0.2.{i}"), 8080, Forwarding.MASQ)
        reals[real.key] = real
    return VirtualService(Service(key, scheduler="rr"), reals)


def test_one_real_too_many_is_a_config_error_and_changes_nothing() -> None:
    balancer = Balancer(max_services=2, max_reals=3)
    balancer.sync([_vs(KEY, 3)])
    before = {k: r.real_id for k, r in balancer.services[KEY].reals.items()}
    with pytest.raises(ConfigError, match="too many real servers: the datapath holds at most 3"):
        balancer.check_capacity([_vs(KEY, 4)])
    other = ServiceKey(Protocol.TCP, A("10.0.0.101"), 80)
    with pytest.raises(ConfigError, match="too many real servers"):
        balancer.check_capacity([_vs(KEY, 3), _vs(other, 1)])
    balancer.check_capacity([_vs(KEY, 2), _vs(other, 0)])  # fits
    assert {k: r.real_id for k, r in balancer.services[KEY].reals.items()} == before


def test_one_service_too_many_is_a_config_error() -> None:
    balancer = Balancer(max_services=2, max_reals=10)
    keys = [ServiceKey(Protocol.TCP, A(f"10.0.0.{100 + i}"), 80) for i in range(3)]
    balancer.sync([_vs(keys[0], 1), _vs(keys[1], 1)])
    with pytest.raises(ConfigError, match="too many virtual services: the datapath holds at most 2"):
        balancer.check_capacity([_vs(k, 1) for k in keys])
    balancer.check_capacity([_vs(keys[0], 1), _vs(keys[2], 1)])  # one replaces another: fits


def test_without_the_check_the_engine_overflows() -> None:
    """What the check guards against: the id pool's own OverflowError, deep in sync()."""
    balancer = Balancer(max_services=2, max_reals=3)
    with pytest.raises(OverflowError):
        balancer.sync([_vs(KEY, 4)])


def test_protocol_docstring_names_the_limits() -> None:
    doc = protocol.__doc__ or ""
    assert "MAX_REQUEST" in doc and "REQUEST_DEADLINE" in doc and '"more": true' in doc
