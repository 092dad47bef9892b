"""Issue 14: nobody without CAP_NET_ADMIN can talk to the daemon, and nothing anyone sends can end,
stall or half-change it.

One two-arm lab (3 reals with HTTP servers, lbxdp attached, an rr service). The attacks run inside
the balancer's namespace: as user 65534 (`setpriv --reuid=65534`) for the unprivileged ones, as
root for those root could send by mistake. After each: the same daemon pid, `-S` unchanged, and a
request through the VIP still lands on a real. The squatting test builds a topology of its own,
since the squatter must hold the name before any daemon starts.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from lbxdp_helpers import LBXDP, Lbxdp, assert_torn_down, lbxdp_processes, nothing_left

from lb.daemon.control import MAX_WORKERS
from lb.daemon.protocol import ADDRESS, BUSY, CHUNK_CHARS, PERMISSION_DENIED
from lb.datapath.testbed import Topology, two_arm
from lb.datapath.testbed.nsenter import in_netns_call, ns_socket

pytestmark = [pytest.mark.root, pytest.mark.e2e]

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, Lbxdp]]:
    with two_arm(reals=3) as topo:
        topo.start_http_servers(port=8080)
        lbxdp = Lbxdp(topo)
        lbxdp.attach()
        try:
            lbxdp.service(f"{topo.vip}:80", "rr", [(f"{r.ip}:8080", "-m") for r in topo.reals])
            yield topo, lbxdp
        finally:
            print(lbxdp.log_tail(80))  # shown when a test failed
            lbxdp("detach", check=False)
    assert_torn_down(topo)


@pytest.fixture
def before(lab: tuple[Topology, Lbxdp]) -> Iterator[tuple[int, str]]:
    """The daemon's pid and `-S -n` before the attack; afterwards, proof that it is unharmed."""
    topo, lbxdp = lab
    (pid,) = lbxdp_processes(topo)
    saved = lbxdp("-S", "-n").stdout
    assert f"-A -t {topo.vip}:80 -s rr" in saved, saved
    yield pid, saved
    assert lbxdp_processes(topo) == [pid], "the daemon died or was replaced"
    assert lbxdp("-S", "-n").stdout == saved, "the configuration changed"
    answers = topo.curl(3, f"http://{topo.vip}/")
    assert None not in answers and set(answers) <= {r.name for r in topo.reals}, answers


def as_nobody(topo: Topology, code: str, timeout: float = 20.0) -> str:
    """Run Python `code` as user 65534 in the lb namespace; its stdout (it must exit 0)."""
    done = topo.run("lb", [*NOBODY, sys.executable, "-c", code], timeout=timeout, check=False)
    assert done.returncode == 0, done
    return done.stdout


# What an attacker's script does: connect, send, print what came back (the server may close
# before reading everything, which is the point).
SEND = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect("\\0lbxdp-control")
try:
    s.sendall({payload!r})
except OSError as exc:
    print("send failed:", type(exc).__name__)
got = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
except OSError as exc:
    print("recv failed:", type(exc).__name__)
print("REPLY", got.decode(errors="replace"))
"""


def exchange(topo: Topology, payload: bytes, timeout: float = 20.0) -> list[dict]:
    """Send raw bytes to the daemon as root (a socket made in the lb namespace); the reply lines."""
    sock = ns_socket(topo.lb.netns, socket.AF_UNIX)
    sock.settimeout(timeout)
    with sock:
        sock.connect(ADDRESS)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # a request cut short ends here, not at the deadline
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read everything: its answer is waiting
        got = bytearray()
        try:
            while chunk := sock.recv(1 << 20):
                got += chunk
        except ConnectionResetError:
            pass
    return [json.loads(line) for line in bytes(got).splitlines()]


def test_deep_nesting_from_an_unprivileged_user_is_refused_unread(lab, before) -> None:
    topo, _ = lab
    out = as_nobody(topo, SEND.format(payload=b"[" * 100000 + b"\n"))
    assert PERMISSION_DENIED in out, out


def test_unprivileged_users_cannot_configure_or_list(lab, before) -> None:
    topo, _lbxdp = lab
    for args in (["-A", "-t", f"{topo.vip}:81", "-s", "rr"], ["-C"], ["-L", "-n"], ["status"]):
        done = topo.run("lb", [*NOBODY, LBXDP, *args], check=False)
        assert done.returncode == 1, (args, done)
        assert f"lbxdp: {PERMISSION_DENIED}" == done.stderr.strip(), (args, done.stderr)
        assert done.stdout == ""
    request = {"op": "ipvsadm", "command": {"verb": "CLEAR"}}
    out = as_nobody(topo, SEND.format(payload=json.dumps(request).encode() + b"\n"))
    assert PERMISSION_DENIED in out, out


def test_slow_clients_hold_neither_packets_nor_other_commands(lab, before) -> None:
    """Three root clients trickle a byte a second; an unprivileged one tries the same. Meanwhile
    new connections through the VIP (first packets: the daemon's NFQUEUE loop) and `-L -n`
    answer at once; each slow client gets its one-line error after the request deadline."""
    topo, lbxdp = lab
    replies: list[bytes] = []
    stop = threading.Event()

    def trickle() -> None:
        sock = ns_socket(topo.lb.netns, socket.AF_UNIX)
        sock.settimeout(1.0)
        got = b""
        with sock:
            sock.connect(ADDRESS)
            for _ in range(8):  # at most 8 s
                if stop.is_set():
                    break
                try:
                    sock.send(b" ")
                    got += sock.recv(4096)
                    if got.endswith(b"\n"):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
        replies.append(got)

    slow = [threading.Thread(target=trickle) for _ in range(3)]
    started = time.monotonic()
    for thread in slow:
        thread.start()
    try:
        nobody = topo.run("lb", [*NOBODY, sys.executable, "-c", "import socket, time\n"
                                 "s = socket.socket(socket.AF_UNIX); s.connect('\\0lbxdp-control')\n"
                                 "s.settimeout(3)\ntry: s.send(b'{')\nexcept OSError: pass\nprint(s.recv(4096).decode())"],
                          check=False, timeout=10)
        assert PERMISSION_DENIED in nobody.stdout, nobody
        t0 = time.monotonic()
        answers = topo.curl(5, f"http://{topo.vip}/")
        assert None not in answers and time.monotonic() - t0 < 3.0, answers
        t0 = time.monotonic()
        listing = lbxdp("-L", "-n")
        assert time.monotonic() - t0 < 3.0 and f"{topo.vip}:80 rr" in listing.stdout, listing.stdout
        # All of that happened while the slow clients were still being read: none had its answer.
        assert not replies and all(t.is_alive() for t in slow), "the checks took longer than the deadline"
    finally:
        for thread in slow:
            thread.join(15)
        stop.set()
    elapsed = time.monotonic() - started
    assert len(replies) == 3 and elapsed < 12, (replies, elapsed)
    for got in replies:
        (message,) = [json.loads(line) for line in got.splitlines()]
        assert message == {"ok": False, "error": "bad control request: not complete in time"}, got


MALFORMED = [
    (b"[" * 100000 + b"\n", "nested too deeply"),
    (b'{"op":' * 30000 + b"\n", "nested too deeply"),
    (b"[1, 2]\n", "not a JSON object"),
    (b"42\n", "not a JSON object"),
    (b"\xff\xfe\xfd\n", "not UTF-8"),
    (b'{"op": "status"', "bad control request"),  # no newline, then EOF: JSON cut short
    (b"\n", "bad control request"),
    (b'{"op": "nosuch"}\n', "unknown request 'nosuch'"),
    (b'{"op": ["ipvsadm"]}\n', "unknown request"),
    (b'{"op": null}\n', "unknown request"),
    (b'{"op": "ipvsadm"}\n', "'command' must be an object"),
    (b'{"op": "ipvsadm", "command": "-C"}\n', "'command' must be an object"),
    (b'{"op": "ipvsadm", "command": {"verb": 7}}\n', "malformed command"),
    (b'{"op": "ipvsadm", "command": {}}\n', "malformed command"),
    (b'{"op": "ipvsadm", "command": {"verb": "ADD_SERVICE", "service": {"vip": [], "port": "x"}}}\n', ""),
    (b'{"op": "ipvsadm", "command": {"verb": "RESTORE", "commands": 5}}\n', ""),
    (b'{"op": "ipvsadm", "command": {"verb": "RESTORE", "commands": [{"verb": "CLEAR"}, 3]}}\n', ""),
    (b'{"op": "health"}\n', "service must be an object"),
    (b'{"op": "health", "service": {}, "check": {}}\n', "service lacks"),
    (b'{"op": "health", "service": {"proto": "TCP", "vip": "10.0.0.1", "port": []}, "check": {"kind": 1}}\n', ""),
    (b'{"op": "attach", "ifaces": "eth0"}\n', "list of interface names"),
    (b'{"op": "attach", "ifaces": [], "mode": 3}\n', "'mode' must be"),
    (b'{"op": "attach", "ifaces": [], "config": {"a": 1}}\n', "'config' must be a path"),
    (b'{"op": "detach", "ifaces": [1]}\n', "list of interface names"),
    (b'{"op": "detach", "ifaces": ["nosuchif"]}\n', "not attached to: nosuchif"),
    (b'{"op": "ipvsadm", "n": ' + b"9" * 6000 + b"}\n", "bad control request"),
    (b"x" * (17 * 1024 * 1024), "larger than"),
]


@pytest.mark.parametrize("payload, expected", MALFORMED, ids=[f"{i:02d}" for i in range(len(MALFORMED))])
def test_malformed_requests_from_root_get_one_line_errors(lab, before, payload: bytes, expected: str) -> None:
    topo, _ = lab
    (reply,) = exchange(topo, payload)
    assert reply["ok"] is False and isinstance(reply["error"], str), reply
    assert "\n" not in reply["error"] and expected in reply["error"], reply


# Random requests: raw bytes, and JSON objects naming real ops with random fields. `detach` is left
# out (a well-formed one with no interfaces means "detach everything"), so is `attach` with
# interface names (a random name might exist); everything else may be as odd as it likes.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
FIELDS = st.sampled_from(["command", "service", "check", "mode", "config", "verb", "vip", "port", "proto",
                          "commands", "real", "weight", "scheduler", "kind", "interval"])
OBJECTS = st.builds(
    lambda op, fields: {**fields, "op": op},
    st.sampled_from(["ping", "status", "ipvsadm", "health", "attach", "nosuch"]) | st.text(max_size=8),
    st.dictionaries(FIELDS | st.text(max_size=6), JSON, max_size=5),
).filter(lambda r: r.get("op") != "detach" and not (r.get("op") == "attach" and r.get("ifaces")))
# ipvsadm requests with a real verb and random fields: they get past the verb into the field checks.
# (CLEAR, SET and RESTORE are left out: well-formed, they change the table by design.)
VERBS = st.sampled_from(["LIST", "SAVE", "ZERO", "ADD_SERVICE", "EDIT_SERVICE", "DELETE_SERVICE",
                         "ADD_REAL", "EDIT_REAL", "DELETE_REAL"])
COMMANDS = st.builds(
    lambda verb, fields: {"op": "ipvsadm", "command": {**fields, "verb": verb}},
    VERBS | st.text(max_size=8),
    st.dictionaries(FIELDS, JSON, max_size=6),
)
PAYLOADS = (st.binary(max_size=512).map(lambda b: b + b"\n")
            | OBJECTS.map(lambda r: json.dumps(r).encode() + b"\n")
            | COMMANDS.map(lambda r: json.dumps(r).encode() + b"\n"))
FUZZ_BUDGET = 60.0


def test_fuzzing_the_live_daemon(lab, before) -> None:
    topo, _ = lab
    started = time.monotonic()
    sent = [0]

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(PAYLOADS)
    def one(payload: bytes) -> None:
        if time.monotonic() - started > FUZZ_BUDGET:
            return  # bounded in time as well as in examples
        lines = exchange(topo, payload, timeout=10)
        sent[0] += 1
        assert lines, payload
        *partial, last = lines
        assert all(m.get("more") is True for m in partial) and isinstance(last.get("ok"), bool), lines
        if not last["ok"]:
            assert "\n" not in last["error"], last

    one()
    assert sent[0] >= 50, f"only {sent[0]} requests in {FUZZ_BUDGET:.0f} s"


def test_a_restore_that_fails_half_way_changes_nothing(lab, before) -> None:
    """A `-R` past the datapath's 4095 reals: before issue 14 an OverflowError deep in the engine
    ended the daemon; now the whole restore is refused and the table stays as it was."""
    topo, lbxdp = lab
    _, _saved = before
    extra = f"{topo.vip}:81"
    rules = f"-A -t {extra} -s wrr\n" + "".join(
        f"-a -t {extra} -r 10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}:80 -m -w 1\n" for i in range(4100)
    )
    done = lbxdp("-R", input=rules, check=False, timeout=60)
    assert done.returncode == 1, done
    assert "too many real servers: the datapath holds at most 4095" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    # A restore whose third rule is wrong: refused whole, as ipvsadm -R (nothing half-applied).
    bad = (f"-A -t {topo.vip}:82 -s rr\n-a -t {topo.vip}:82 -r 10.0.9.9:80 -m\n"
           f"-a -t {topo.vip}:83 -r 10.0.9.9:80 -m\n")
    done = lbxdp("-R", input=bad, check=False)
    assert done.returncode == 1 and "restore rule 3" in done.stderr, done


def test_listing_thousands_of_connections_streams_every_line(lab, before) -> None:
    """`-L -c` of more flows than one reply line holds (CHUNK_CHARS) arrives whole."""
    topo, lbxdp = lab
    topo.start_udp_servers(port=5353)
    service = f"{topo.vip}:5353"
    lbxdp.service(service, "rr", [(f"{r.ip}:5353", "-m") for r in topo.reals], udp=True)
    try:
        scheduled_before = _scheduled(lbxdp)
        flows = 15000

        def send_flows() -> int:
            """One datagram from each of `flows` source ports (each a new flow); failures counted."""
            errors = 0
            for start in range(20000, 20000 + flows, 250):  # 250 new flows, then a breath for the queue
                for port in range(start, start + 250):
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                        try:
                            sock.bind((topo.client.ip, port))
                            sock.sendto(b"x", (topo.vip, 5353))
                        except OSError:
                            errors += 1
                time.sleep(0.1)
            return errors

        sock_errors = in_netns_call(topo.client.netns, send_flows, timeout=120)
        time.sleep(1.0)
        scheduled = _scheduled(lbxdp) - scheduled_before
        assert scheduled >= 0.95 * flows - sock_errors, (scheduled, sock_errors)
        listing = lbxdp("-L", "-n", "-c", timeout=60).stdout
        rows = [line.split() for line in listing.splitlines() if f" {service} " in f" {line} "]
        assert len(listing) > CHUNK_CHARS  # more than one reply line was needed
        assert len(rows) == scheduled, (len(rows), scheduled)
        assert all(len(row) == 6 and row[0] == "UDP" for row in rows)
        assert len({row[3] for row in rows}) == len(rows)  # one row per client address:port
    finally:
        lbxdp("-D", "-u", service, check=False)


def _scheduled(lbxdp: Lbxdp) -> int:
    """Flows scheduled so far, by the daemon or by XDP (rr's first packets are decided in XDP)."""
    data = json.loads(lbxdp("status", "--json").stdout)
    return int(data["first_path_events"].get("scheduled", 0)) + int(data["xdp_scheduled"])


# -- squatting: a user takes the name before any daemon runs -----------------------------------------

SQUAT = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\\0lbxdp-control")
s.listen(8)
s.settimeout(0.5)
print("listening", flush=True)
end = time.monotonic() + 120
while time.monotonic() < end:
    try:
        conn, _ = s.accept()
    except TimeoutError:
        continue
    conn.settimeout(2)
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    if data:
        print("RECEIVED", len(data), data[:200], flush=True)
    try:
        conn.sendall(b'{"ok": true, "output": "forged listing\\\\n"}\\n')
    except OSError:
        pass
    conn.close()
"""


def test_a_squatter_gets_nothing_and_attach_leaves_nothing() -> None:
    with two_arm(reals=1) as topo:
        lbxdp = Lbxdp(topo)
        log = topo.workdir / "squatter.out"
        with open(log, "wb") as out:
            squatter = topo.spawn("lb", [*NOBODY, sys.executable, "-c", SQUAT], stdout=out)
        deadline = time.monotonic() + 10
        while b"listening" not in log.read_bytes():
            assert time.monotonic() < deadline and squatter.poll() is None, log.read_text()
            time.sleep(0.05)
        try:
            done = lbxdp("attach", "eth0", "eth1", check=False, timeout=90)
            assert done.returncode == 1, done
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
            assert re.search(r"pid \d+ \(uid 65534\)", done.stderr) and "remove that process" in done.stderr, done
            assert nothing_left(topo, lbxdp) == []
            for args in (["-L", "-n"], ["-C"], ["status"], ["detach"]):
                done = lbxdp(*args, check=False)
                assert done.returncode == 1 and "refusing to send to it" in done.stderr, (args, done)
                assert "uid 65534" in done.stderr and "forged" not in done.stdout, done
            # The daemon itself, started by hand, says who holds its name and touches nothing.
            run = topo.run("lb", [sys.executable, "-m", "lb.daemon.run", "--iface", "eth0"],
                           check=False, timeout=60)
            assert run.returncode == 1 and "uid 65534" in run.stderr and "remove that process" in run.stderr, run
            assert nothing_left(topo, lbxdp) == []
            assert b"RECEIVED" not in log.read_bytes(), log.read_text()
        finally:
            topo.stop(squatter)
    assert_torn_down(topo)


def test_cap_net_admin_is_enough_but_only_in_our_user_namespace(lab, before) -> None:
    """ipvsadm's rule: CAP_NET_ADMIN, not uid 0. A user given the capability (ambient, as a
    systemd unit's AmbientCapabilities= would) may list; the "root" of a user namespace it
    created itself has every capability there, and none here."""
    topo, _ = lab
    with_cap = [*NOBODY, "--inh-caps=+net_admin", "--ambient-caps=+net_admin"]
    done = topo.run("lb", [*with_cap, LBXDP, "-L", "-n"], check=False)
    assert done.returncode == 0 and f"{topo.vip}:80 rr" in done.stdout, done
    userns = topo.run("lb", [*NOBODY, "unshare", "--user", "--map-root-user", "--",
                             sys.executable, "-c", SEND.format(payload=b'{"op": "ping"}\n')], check=False)
    if "Operation not permitted" in userns.stderr or "cannot" in userns.stderr:
        pytest.skip(f"unprivileged user namespaces are disabled here: {userns.stderr.strip()}")
    assert userns.returncode == 0 and PERMISSION_DENIED in userns.stdout, userns


def test_more_slow_clients_than_workers_get_busy_not_a_wait(lab, before) -> None:
    """The worker threads are bounded (MAX_WORKERS): the next root client is told "busy" at once,
    packets keep flowing, and once the slow ones hit their deadline commands work again."""
    topo, lbxdp = lab
    held = []
    try:
        for _ in range(MAX_WORKERS):
            sock = ns_socket(topo.lb.netns, socket.AF_UNIX)
            sock.settimeout(10)
            sock.connect(ADDRESS)
            sock.send(b"{")  # and nothing more
            held.append(sock)
        time.sleep(0.5)  # all admitted by the acceptor
        t0 = time.monotonic()
        (reply,) = exchange(topo, b'{"op": "ping"}\n')
        assert reply == {"ok": False, "error": BUSY} and time.monotonic() - t0 < 2.0, reply
        assert None not in topo.curl(3, f"http://{topo.vip}/")
        for sock in held:  # each gets its one line at the deadline
            (message,) = [json.loads(line) for line in sock.recv(4096).splitlines()]
            assert message["error"] == "bad control request: not complete in time", message
    finally:
        for sock in held:
            sock.close()
    assert lbxdp("-L", "-n").returncode == 0


def test_a_capability_gained_by_exec_after_connecting_does_not_count(lab, before) -> None:
    """The capability is read from /proc, not recorded at connect: an unprivileged process could
    connect, write, then exec a binary with CAP_NET_ADMIN as a file capability. Such an image
    has AT_SECURE set and is refused; here, a copy of the interpreter given the file capability."""
    topo, _ = lab
    if shutil.which("setcap") is None:
        pytest.skip("setcap (libcap2-bin) is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="lbxdp-filecap-"))
    try:
        workdir.chmod(0o755)
        python = workdir / "python-with-net-admin"
        shutil.copy(Path(sys.executable).resolve(), python)
        python.chmod(0o755)
        subprocess.run(["setcap", "cap_net_admin+ep", str(python)], check=True, capture_output=True)
        probe = topo.run("lb", [*NOBODY, str(python), "-c", "print(open('/proc/self/status').read())"])
        assert "CapEff:\t0000000000001000" in probe.stdout, probe.stdout  # it does hold the capability
        done = topo.run("lb", [*NOBODY, str(python), "-c", SEND.format(payload=b'{"op": "ping"}\n')],
                        check=False)
        assert done.returncode == 0 and PERMISSION_DENIED in done.stdout, done
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


FLOOD = """
import socket, time
end = time.monotonic() + {seconds}
n = 0
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\\0lbxdp-control")
        s.recv(256)
        n += 1
    except OSError:
        pass
    finally:
        s.close()
print(n)
"""


def test_a_connection_flood_from_an_unprivileged_user_does_not_stall_packets(lab, before) -> None:
    """Refusals cost the daemon a little (credentials, /proc): four unprivileged processes
    connecting as fast as they can for 4 s must not stop new flows or root's commands."""
    topo, lbxdp = lab
    logs = [topo.workdir / f"flood-{i}.out" for i in range(4)]
    floods = []
    for log in logs:
        with open(log, "wb") as out:
            floods.append(topo.spawn("lb", [*NOBODY, sys.executable, "-c", FLOOD.format(seconds=4)], stdout=out))
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        answers = topo.curl(10, f"http://{topo.vip}/")
        curl_took = time.monotonic() - t0
        t0 = time.monotonic()
        listing = lbxdp("-L", "-n")
        list_took = time.monotonic() - t0
        still_flooding = all(p.poll() is None for p in floods)
    finally:
        for proc in floods:
            proc.wait(15)
    refused = sum(int(log.read_text().strip() or 0) for log in logs)
    print(f"flood: {refused} refused connections; 10 curls took {curl_took:.2f} s, -L {list_took:.2f} s")
    assert still_flooding and refused > 100, refused  # the flood was real and lasted
    assert None not in answers and curl_took < 5.0, (answers, curl_took)
    assert f"{topo.vip}:80 rr" in listing.stdout and list_took < 5.0, list_took


def test_a_rules_file_beyond_the_datapath_fails_attach_in_one_line() -> None:
    """`attach --config` of more reals than the maps hold: one line, and nothing left behind."""
    with two_arm(reals=1) as topo:
        lbxdp = Lbxdp(topo)
        rules = topo.workdir / "too-many.rules"
        rules.write_text(f"-A -t {topo.vip}:80 -s rr\n" + "".join(
            f"-a -t {topo.vip}:80 -r 10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}:80 -m\n" for i in range(4100)))
        try:
            done = lbxdp("attach", "eth0", "eth1", "--config", str(rules), check=False, timeout=120)
            assert done.returncode == 1 and done.stderr.count("\n") == 1, done
            assert "too many real servers" in done.stderr and "Traceback" not in done.stderr, done
            assert nothing_left(topo, lbxdp) == []
        finally:
            lbxdp("detach", check=False)
    assert_torn_down(topo)
