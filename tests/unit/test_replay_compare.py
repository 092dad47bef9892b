"""lb.replay.compare: the field-by-field diff names exactly what differs; pairing finds every kind of
disagreement (different bytes, an extra packet, a missing one) and credits kernel-forwarded packets."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from lb.replay.compare import field_diff, judge, side_by_side
from lb.replay.engine import Outcome, Path, Step
from lb.rewrite import Verdict


def pkt(**changes: object) -> bytes:
    ip = dict(src="10.3.0.5", dst="10.1.0.20", id=99, ttl=63)
    tcp = dict(sport=40000, dport=8080, seq=5, flags="PA")
    for k, v in changes.items():
        (tcp if k in ("sport", "dport", "seq", "flags", "chksum") else ip)[k] = v
    return bytes(Ether(src="02:00:00:00:0a:00", dst="02:00:00:01:00:14") / IP(**ip) / TCP(**tcp) / Raw(b"GET /"))


def step(number: int, out: bytes, path: Path = Path.XDP) -> Step:
    return Step(number, out, 10, Outcome(Verdict.TX, out, None), path, out)


def test_field_diff_names_each_differing_field() -> None:
    expected = pkt()
    got = bytearray(expected)
    got[14 + 20 + 16] ^= 0x01  # TCP checksum
    diff = field_diff(expected, bytes(got))
    assert "TCP.chksum" in diff and "IP." not in diff
    diff = field_diff(pkt(), pkt(dport=8081))
    assert "TCP.dport: expected 8080 (0x1f90), got 8081 (0x1f91)" in diff
    assert "TCP.chksum" in diff  # scapy computed a new one for 8081
    assert "≠" in side_by_side(pkt(), pkt(dport=8081))


def test_field_diff_reports_length() -> None:
    assert "length: expected 59, got 60" in field_diff(pkt(), pkt() + b"\x00")


def test_judge_all_equal() -> None:
    verdict = judge([step(1, pkt()), step(2, pkt(seq=6))], [pkt(seq=6), pkt()])  # order does not matter
    assert verdict.ok and verdict.matched == 2


def test_judge_reports_differing_bytes_with_numbers() -> None:
    verdict = judge([step(1, pkt(ttl=62))], [pkt(ttl=63)])
    (m,) = verdict.mismatches
    assert (m.step, m.recorded) == (1, 1)
    assert "IP.ttl: expected 63 (0x3f), got 62 (0x3e)" in m.render()


def test_judge_reports_extra_and_missing_packets() -> None:
    verdict = judge([step(1, pkt(seq=1))], [pkt(seq=2)])
    whats = sorted(m.what for m in verdict.mismatches)
    assert whats == ["emitted by xdp but not in out.pcap", "recorded but never emitted by the replay"]


def test_kernel_forwarded_packets_are_accounted_for() -> None:
    passed = Step(1, pkt(), 10, Outcome(Verdict.PASS, pkt(), None), Path.KERNEL, pkt())
    verdict = judge([passed], [pkt(ttl=62)])  # the kernel decremented the TTL: same identity
    assert verdict.ok and verdict.kernel == 1 and verdict.matched == 0
