"""lb.bench.newflows: when a burst counts as over, and the row names the targets read (pure)."""

from __future__ import annotations

import time

from lb.bench import newflows, tcp
from lb.bench.results import TARGETS


def _counter(schedule: list[tuple[float, int]]):
    """A reading that becomes value v once t seconds have passed, for each (t, v)."""
    start = time.monotonic()

    def read() -> int:
        elapsed = time.monotonic() - start
        return max([v for t, v in schedule if elapsed >= t], default=0)

    return read, start


def test_a_burst_ends_when_every_answer_came() -> None:
    read, start = _counter([(0.05, 40), (0.1, 100)])
    last, t_last = newflows.await_answers(read, 0, 100, deadline=start + 5, quiet_s=0.5)
    assert last == 100
    assert t_last - start < 0.3


def test_an_answer_after_the_quiet_time_is_not_part_of_the_burst() -> None:
    # 90 answers at once, then a resent SYN-ACK's reset a second later: the burst took ~0.05 s
    read, start = _counter([(0.05, 90), (1.0, 91)])
    last, t_last = newflows.await_answers(read, 0, 100, deadline=start + 5, quiet_s=0.3)
    assert last == 90
    assert t_last - start < 0.3


def test_targets_and_their_references_name_rows_the_cases_make() -> None:
    made = {f"newflows/{v.name}" for v in newflows.VARIANTS}
    made |= {f"tcp/{v.name} {unit}" for v in tcp.VARIANTS for unit, _, _ in tcp.MODES if unit in v.units}
    for target in TARGETS:
        for key in (target.num, target.den, target.reference and target.reference.num,
                    target.reference and target.reference.den):
            if key and key.split("/")[0] in ("newflows", "tcp"):
                assert key in made, f"{target.figure}: no case makes {key}"


def test_in_process_syns_are_new_flows_to_the_vip() -> None:
    from lb.balancer.firstpacket import read_packet
    from lb.bench.firstpath_cost import syns

    packets = [read_packet(p) for p in syns("10.9.0.100", 3, 59_999)]
    assert all(q is not None and q.is_syn for q in packets)
    flows = [q.flow for q in packets if q is not None]
    assert len(set(flows)) == 3  # port 61023, then 1024 and 1025 on the next source address
    assert {str(f.daddr) for f in flows} == {"10.9.0.100"} and {f.dport for f in flows} == {80}
    assert [f.sport for f in flows] == [61023, 1024, 1025]


def test_every_in_xdp_target_has_a_row_of_each_case_and_the_issue_13_labels() -> None:
    figures = {t.figure for t in TARGETS}
    for kind in ("rr", "wlc", "sh", "rr -p", "udp rr"):
        assert f"new flows/s vs iptables DNAT ({kind} in XDP)" in figures
    for kind in ("rr", "wlc"):
        assert f"TCP connections/s vs iptables DNAT ({kind} in XDP)" in figures
    udp = next(t for t in TARGETS if t.figure.endswith("(udp rr in XDP)"))
    assert udp.den == f"newflows/{newflows.IPTABLES_UDP_NAME}"  # UDP against UDP


def _xdp_variant(label: str) -> newflows.Variant:
    return next(v for v in newflows.VARIANTS if v.xdp is not None and v.xdp.label == label)


def test_an_in_xdp_row_says_first_how_many_packets_went_through_nfqueue() -> None:
    fact = {"sent": 3000, "answered": 3000, "scheduled": 0, "dropped": 0, "elapsed": 0.1,
            "xdp_scheduled": 3000, "first_path_packets": 0, "busy": 1.0, "cpu_total": 2.0}
    check = newflows._check(_xdp_variant("wlc"), [fact], 1, 3000, live=None, decided="xdp")
    assert "0 packets through NFQUEUE (XDP decided every one); first packets decided: xdp" in check
    assert "-t VIP:84 -s wlc" in check
    slow = dict(fact, xdp_scheduled=0, first_path_packets=3000)
    check = newflows._check(_xdp_variant("udp rr"), [slow], 1, 3000, live=None,
                            decided="daemon (--sched-in daemon)")
    assert "3000 packets through NFQUEUE (NOT decided in XDP)" in check and "-u VIP:53" in check
    assert check.startswith("reals' Udp NoPorts")  # UDP flows are counted where they arrive


def test_the_udp_template_is_a_new_flow_the_generator_can_count_up() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from lb.bench.syn import SYN_FRAME, udp_frame

    frame = udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.9.0.1", "10.9.0.100", 1024, 53)
    packet = Ether(frame)
    assert len(frame) == SYN_FRAME and packet[IP].len == SYN_FRAME - 14  # the IP length covers the frame
    # bench_syn.c changes the port at offset 34 and no UDP checksum: 0 means none (RFC 768)
    assert packet[UDP].chksum == 0 and int.from_bytes(frame[34:36], "big") == 1024


def test_each_xdp_service_has_its_own_real_port() -> None:
    from lb.bench.live import OTHER_PORT, PORT, UDP_OTHER_PORT, XDP_SERVICES

    ports = [(s.udp, s.real_port) for s in XDP_SERVICES] + [(False, PORT), (False, OTHER_PORT), (True, UDP_OTHER_PORT)]
    assert len(set(ports)) == len(ports)
    assert {s.label for s in XDP_SERVICES} >= {"mh", "rr", "wlc", "sh", "rr -p", "udp rr"}
