"""Every fixture row through the XDP program with BPF_PROG_RUN: verdict, bytes, reason counter,
traffic counters and flow stamps. The same rows run through the model in tests/unit."""

from __future__ import annotations

import os
from collections.abc import Iterator

import fixtures as F
import pytest

from lb.datapath import progrun
from lb.model import Protocol
from lb.rewrite import Reason, Verdict, process
from lb.tables import Tables, TcpSeen, Traffic

pytestmark = [pytest.mark.root, pytest.mark.bpf]

IDS = range(64)


@pytest.mark.parametrize("row", F.ROWS, ids=[r.name for r in F.ROWS])
def test_row(datapath, row: F.Row) -> None:
    maps = datapath.maps
    maps.write(row.tables)
    maps.reset_counters(IDS, IDS)
    frame = row.input_frame()

    retval, out, _ = progrun.run(datapath.prog_fd, frame, ingress_ifindex=row.ingress)

    expected = row.expected_frame()
    assert out == expected, f"{row.name}\n{F.describe_mismatch(expected, out)}"
    assert Verdict(retval) is row.verdict
    counts = maps.reason_counts()
    assert counts[row.reason] == 1 and sum(counts.values()) == 1, {r.name: n for r, n in counts.items() if n}
    # the model says which counters the packet adds to, and which entries XDP creates; the program
    # must agree
    model_tables = row.tables.copy()
    model = process(frame, model_tables, F.LAB_FIB, row.ingress)
    _check_created_entries(maps.read(), model_tables, row.tables)
    conns = {k: n for k, n in maps.hash_conns(IDS).items() if n}
    assert conns == ({model.scheduled: 1} if model.scheduled is not None else {}), conns
    services = {k: v for k, v in maps.service_traffic(_reals_by_service(model_tables)).items() if v != Traffic()}
    reals = {k: v for k, v in maps.real_traffic(IDS).items() if v != Traffic()}
    if model.counted is None:
        assert services == {} and reals == {}
    else:
        c = model.counted
        one = Traffic(0, 0, 1, c.ip_bytes) if c.outbound else Traffic(1, c.ip_bytes, 0, 0)
        assert services == {c.service_id: one} and reals == {c.real_id: one}


def _check_created_entries(kernel: Tables, model: Tables, before: Tables) -> None:
    """The flow and reverse entries in the maps are the model's: same keys, same reals and services;
    the entries created by this packet carry a stamp (XDP's clock, the model's is 0) and the TCP bits."""
    def decisions(t: Tables) -> tuple[dict, dict]:
        return ({k: (e.real_id, e.service_id) for k, e in t.flows.items()},
                {k: (e.vip, e.vport, e.real_id, e.service_id) for k, e in t.reverse.items()})

    assert decisions(kernel) == decisions(model)
    assert kernel.hash_budget == model.hash_budget  # XDP counts its budget down as the model does
    # created: new keys, and entries made anew for a reused 5-tuple (a closed flow replaced)
    for key in [k for k, e in model.flows.items() if before.flows.get(k) != e]:
        assert kernel.flows[key].last_seen_ns > 0 and kernel.flows[key].tcp_seen == model.flows[key].tcp_seen
    for key in [k for k, e in model.reverse.items() if before.reverse.get(k) != e]:
        assert kernel.reverse[key].last_seen_ns > 0 and kernel.reverse[key].tcp_seen == TcpSeen.NONE


def _reals_by_service(tables: Tables) -> dict[int, set[int]]:
    """Which real ids each service's traffic is the sum of (from the flows the row installed)."""
    out: dict[int, set[int]] = {}
    for entry in [*tables.flows.values(), *tables.reverse.values()]:
        out.setdefault(entry.service_id, set()).add(entry.real_id)
    return out


def test_flow_hit_stamps_last_seen_and_tcp_flags(datapath) -> None:
    row = next(r for r in F.ROWS if r.name == "masq tcp: FIN")
    datapath.maps.write(row.tables)
    progrun.run(datapath.prog_fd, row.input_frame(), ingress_ifindex=row.ingress)
    entry = datapath.maps.read().flows[F.TCP_M]
    assert entry.tcp_seen == TcpSeen.ESTABLISHED | TcpSeen.FIN
    assert entry.last_seen_ns > 0


def test_reverse_hit_stamps_its_own_entry(datapath) -> None:
    row = next(r for r in F.ROWS if r.name == "masq reverse tcp: padding kept")  # an ACK
    datapath.maps.write(row.tables)
    progrun.run(datapath.prog_fd, row.input_frame(), ingress_ifindex=row.ingress)
    tables = datapath.maps.read()
    (rev,) = tables.reverse.values()
    assert rev.last_seen_ns > 0 and rev.tcp_seen == TcpSeen.ESTABLISHED
    assert tables.flows[F.TCP_M].last_seen_ns == 0  # the forward entry saw nothing


def test_maps_round_trip(datapath) -> None:
    row = next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT"))
    datapath.maps.write(row.tables)
    assert datapath.maps.read() == row.tables
    assert Protocol.TCP in {k.proto for k in row.tables.flows}


def test_short_frame_is_refused_by_prog_run(datapath) -> None:
    with pytest.raises(OSError):
        progrun.run(datapath.prog_fd, b"\x00" * 10, ingress_ifindex=F.A0)
    assert Reason.PASS_NOT_IPV4.verdict is Verdict.PASS


# --- the next-hop cache (docs/datapath.md, "Next-hop cache") ----------------------------------------
REAL1 = "10.1.0.20"  # real 1 of the fixtures: masqueraded, on a0's segment
OTHER_MAC = "02:00:00:01:00:99"


def _masq_hit(datapath) -> bytes:
    row = next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT"))
    retval, out, _ = progrun.run(datapath.prog_fd, row.input_frame(), ingress_ifindex=row.ingress)
    assert Verdict(retval) is Verdict.TX
    return out


def _dst_mac(frame: bytes) -> str:
    return frame[:6].hex(":")


@pytest.fixture
def moved_real(lab):
    """Real 1's neighbour entry answers with another MAC for the test's duration."""
    import subprocess

    balancer = getattr(lab, "balancer", lab)  # the lab yields its namespace (or names with it)

    def neigh(mac: str) -> None:
        subprocess.run(["ip", "-n", balancer, "neigh", "replace", REAL1, "lladdr", mac, "dev", "a0",
                        "nud", "permanent"], check=True, capture_output=True, timeout=10)

    yield neigh
    neigh(F.MAC[REAL1])


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """The next-hop cache is per CPU, and BPF_PROG_RUN runs on the caller's CPU: keep every run of a
    test on one CPU, or a second run may find another CPU's empty cache."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def test_next_hop_is_cached_until_flushed(datapath, moved_real, one_cpu) -> None:
    import time

    datapath.maps.write(next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT")).tables)
    for _attempt in range(5):  # the cache lives 100 jiffies (0.4 s at HZ=250): a loaded machine may be slower
        datapath.maps.flush_next_hops()
        moved_real(F.MAC[REAL1])
        started = time.monotonic()
        assert _dst_mac(_masq_hit(datapath)) == F.MAC[REAL1]
        moved_real(OTHER_MAC)
        cached = _dst_mac(_masq_hit(datapath))
        if time.monotonic() - started < 0.3:
            break
    assert cached == F.MAC[REAL1]  # cached: bpf_fib_lookup() not asked
    datapath.maps.flush_next_hops()
    assert _dst_mac(_masq_hit(datapath)) == OTHER_MAC


def test_next_hop_expires_within_a_second(datapath, moved_real) -> None:
    import time

    datapath.maps.write(next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT")).tables)
    assert _dst_mac(_masq_hit(datapath)) == F.MAC[REAL1]
    moved_real(OTHER_MAC)
    time.sleep(1.05)  # NEXT_HOP_TTL_TICKS = 100 jiffies ≤ 1 s at any HZ
    assert _dst_mac(_masq_hit(datapath)) == OTHER_MAC


def test_cached_next_hop_does_not_skip_the_mtu_check(datapath, one_cpu) -> None:
    small = next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT"))
    big = next(r for r in F.ROWS if r.name == "masq tcp: larger than the egress MTU → PASS unchanged")
    datapath.maps.write(small.tables)
    assert _dst_mac(_masq_hit(datapath)) == F.MAC[REAL1]  # real 1's next hop is now cached
    datapath.maps.reset_counters((), IDS)
    retval, out, _ = progrun.run(datapath.prog_fd, big.input_frame(), ingress_ifindex=big.ingress)
    assert Verdict(retval) is Verdict.PASS and out == big.input_frame()
    assert datapath.maps.reason_counts()[Reason.PASS_FRAG_NEEDED] == 1


def test_service_traffic_is_the_sum_of_its_reals(datapath) -> None:
    row = next(r for r in F.ROWS if r.name.startswith("masq tcp: DNAT"))
    datapath.maps.write(row.tables)
    datapath.maps.reset_counters((), IDS)
    for _ in range(3):
        _masq_hit(datapath)
    ip_bytes = len(row.input_frame()) - 14
    assert datapath.maps.service_traffic({1: [1, 2]}) == {1: Traffic(3, 3 * ip_bytes, 0, 0)}
