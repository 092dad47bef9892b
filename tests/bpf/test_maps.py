"""DatapathMaps.read_flows(): batched lookups (BPF_MAP_LOOKUP_BATCH) give exactly what the per-key walk
gives, across many batches and on an empty table, and a kernel that refuses batches gets the walk."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address
from types import SimpleNamespace

import fixtures as F
import pytest

from lb.balancer.decide import flow_tables
from lb.balancer.engine import Placement
from lb.datapath import maps as M
from lb.model import FlowKey, Forwarding, Protocol, RealServer, Service
from lb.tables import FlowEntry, RealEntry, ReverseEntry, TcpSeen

pytestmark = [pytest.mark.root, pytest.mark.bpf]

COUNT = 1500  # spread over many batches of the FLOW_BATCH the tests set


def _fill(maps: M.DatapathMaps) -> None:
    maps.write(F.tables_with())
    for i in range(COUNT):
        client = IPv4Address(0x0A030000 + i // 300)
        proto = Protocol.UDP if i % 5 == 0 else Protocol.TCP
        flow = FlowKey(proto, client, 1024 + i, IPv4Address(F.VIP_M), 80)
        maps.set_flow(flow, FlowEntry(i % 60, i % 7, 10**12 + i, TcpSeen(i % 8)))
        if i % 2:
            rkey = FlowKey(proto, IPv4Address("10.1.0.20"), 8080, client, 1024 + i)
            maps.set_reverse(rkey, ReverseEntry(IPv4Address(F.VIP_M), 80 + i % 3, i % 60, i % 7, i, TcpSeen(i % 4)))


@pytest.mark.parametrize("batch", [1, 64, M.FLOW_BATCH])
def test_batched_read_equals_the_walk(datapath, monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    maps = datapath.maps
    _fill(maps)
    monkeypatch.setattr(M, "FLOW_BATCH", batch)
    assert maps._batch_raw("flows") is not None  # this kernel batches LRU hashes: the batched path runs
    flows, reverse = maps.read_flows()
    assert (len(flows), len(reverse)) == (COUNT, COUNT // 2)
    assert (flows, reverse) == maps._read_flows_walk()
    some = FlowKey(Protocol.TCP, IPv4Address("10.3.0.3"), 1024 + 901, IPv4Address(F.VIP_M), 80)
    assert flows[some] == FlowEntry(901 % 60, 901 % 7, 10**12 + 901, TcpSeen(901 % 8))


def test_empty_tables_read_empty(datapath) -> None:
    datapath.maps.write(F.tables_with())
    assert datapath.maps.read_flows() == ({}, {})


@pytest.mark.parametrize("refusal", [errno.EINVAL, errno.EOPNOTSUPP, 524])
def test_a_kernel_without_batches_gets_the_walk(datapath, monkeypatch: pytest.MonkeyPatch, refusal: int) -> None:
    maps = datapath.maps
    maps.write(F.tables_with((F.TCP_M, 1), (F.UDP_M, 2)))
    calls = []

    def refuse(*args: object) -> int:
        calls.append(args)
        return -refusal

    monkeypatch.setattr(M, "_libbpf", lambda: SimpleNamespace(bpf_map_lookup_batch=refuse))
    flows, reverse = maps.read_flows()
    assert calls and set(flows) == {F.TCP_M, F.UDP_M} and len(reverse) == 2


def test_other_errors_are_not_hidden(datapath, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "_libbpf", lambda: SimpleNamespace(bpf_map_lookup_batch=lambda *a: -errno.EFAULT))
    with pytest.raises(M.MapError, match="flows: batched lookup failed"):
        datapath.maps.read_flows()


def _as_entries(records) -> tuple[dict, dict]:
    """Record arrays back to read_flows()'s dicts, to compare the two readings."""
    from lb.daemon.sweep import flow_key_of

    flows = {flow_key_of(k): FlowEntry(int(v["real_id"]), int(v["service_id"]), int(v["last_seen_ns"]),
                                       TcpSeen(int(v["tcp_seen"])))
             for k, v in zip(records.flow_keys, records.flow_values)}
    reverse = {flow_key_of(k): ReverseEntry(IPv4Address(int(v["vip"])), int(v["vport"]), int(v["real_id"]),
                                            int(v["service_id"]), int(v["last_seen_ns"]), TcpSeen(int(v["tcp_seen"])))
               for k, v in zip(records.reverse_keys, records.reverse_values)}
    return flows, reverse


@pytest.mark.parametrize("batched", [True, False])
def test_record_arrays_hold_what_read_flows_reads(datapath, monkeypatch: pytest.MonkeyPatch, batched: bool) -> None:
    maps = datapath.maps
    _fill(maps)
    if not batched:
        monkeypatch.setattr(M, "_libbpf", lambda: SimpleNamespace(bpf_map_lookup_batch=lambda *a: -errno.EINVAL))
    records = maps.read_flow_records()
    assert len(records.flow_keys) == COUNT and len(records.reverse_keys) == COUNT // 2
    assert _as_entries(records) == maps._read_flows_walk()


def test_deleting_records_removes_exactly_those_and_skips_the_gone(datapath) -> None:
    from lb.daemon.sweep import flow_key_of

    maps = datapath.maps
    _fill(maps)
    doomed = maps.read_flow_records().flow_keys[::3]
    maps.delete_flow(flow_key_of(doomed[0]))
    assert maps.delete_records("flows", doomed) == len(doomed) - 1  # one was already gone
    flows, reverse = maps.read_flows()
    assert len(flows) == COUNT - len(doomed) and len(reverse) == COUNT // 2
    assert not {flow_key_of(k) for k in doomed} & set(flows)


def test_reason_counts_of_an_older_smaller_map_read_zero_past_its_end(datapath) -> None:
    """A reason_counts map pinned by an older program (a smaller REASON_MAX) is adopted as it is;
    `lbxdp status` must still read it: the reasons it has no slot for count 0."""
    import ctypes
    import os

    from lb.rewrite import Reason

    libbpf = ctypes.CDLL("libbpf.so.1", use_errno=True)
    libbpf.bpf_map_create.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                      ctypes.c_uint32, ctypes.c_void_p]
    percpu_array = 6  # BPF_MAP_TYPE_PERCPU_ARRAY
    fd = libbpf.bpf_map_create(percpu_array, b"old_reasons", 4, 8, len(Reason) - 1, None)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        fds = {**datapath.maps._fds, "reason_counts": fd}
        counts = M.DatapathMaps(fds, datapath.maps.max_reals, datapath.maps.max_tx_ports).reason_counts()
        assert counts == dict.fromkeys(Reason, 0)
    finally:
        os.close(fd)


@pytest.mark.parametrize("forwarding", [Forwarding.MASQ, Forwarding.ROUTE, Forwarding.TUNNEL])
@pytest.mark.parametrize("proto", [Protocol.TCP, Protocol.UDP])
def test_install_new_flow_writes_what_install_flow_writes(datapath, forwarding: Forwarding, proto: Protocol) -> None:
    """The first-packet path's install (no Tables) leaves the maps as install_flow() of the flow's
    flow_tables() does: the same forward entry and, for masquerading, the same reverse entry."""
    maps = datapath.maps
    maps.write(F.tables_with())
    flow = FlowKey(proto, IPv4Address("10.3.0.7"), 40001, IPv4Address(F.VIP_M), 80)
    real = RealServer(IPv4Address("10.1.0.20"), 8080 if forwarding is Forwarding.MASQ else 80, forwarding)
    placement = Placement(Service(flow.service_key, "rr"), 5, real, 17)
    tables = flow_tables(flow, placement, set(), None, 987654321)
    maps.install_flow(tables, flow)
    expected = maps.read_flows()
    assert expected == (tables.flows, tables.reverse)  # what the Tables hold, read back
    assert len(expected[1]) == (1 if forwarding is Forwarding.MASQ else 0)
    maps.write(F.tables_with())
    assert maps.read_flows() == ({}, {})
    maps.install_new_flow(flow, 17, 5, RealEntry(real.address, real.port, forwarding), 987654321)
    assert maps.read_flows() == expected
