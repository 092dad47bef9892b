"""lbxdp verify: a sound real-side capture passes; a corrupt checksum or a flow seen at two reals fails."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lb.replay.scenario import read_pcap
from lb.replay.verify import main, verify

OUT = Path(__file__).resolve().parents[2] / "pcaps" / "rr-masq" / "out.pcap"


def seg(dst: str, flags: str, mac: str = "02:00:00:00:00:0b") -> bytes:
    return bytes(Ether(dst=mac) / IP(src="10.9.1.2", dst=dst) / TCP(sport=40000, dport=8080, flags=flags))


def test_recorded_output_verifies() -> None:
    report = verify([f.data for f in read_pcap(OUT)])
    assert report.ok and report.checked == report.packets and sum(report.flows_per_real.values()) == 6
    assert sorted(report.flows_per_real.values()) == [2, 2, 2]


def test_corrupt_checksum_fails() -> None:
    frames = [f.data for f in read_pcap(OUT)]
    bad = bytearray(frames[3])
    bad[-1] ^= 0x55  # a payload byte: the L4 checksum no longer holds
    report = verify([*frames[:3], bytes(bad), *frames[4:]])
    assert report.bad_l4 == 1 and report.bad_ip == 0 and not report.ok
    assert report.problems[0].startswith("#4: L4 checksum wrong")


def test_flow_at_two_reals_fails() -> None:
    report = verify([seg("10.9.2.11", "S"), seg("10.9.2.12", "A")])
    assert report.split_flows == 1 and "reached 2 reals" in report.problems[0]
    assert verify([seg("10.9.2.11", "S"), seg("10.9.2.11", "A")]).ok


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert main([str(OUT)]) == 0
    assert main([str(tmp_path / "missing.pcap")]) == 2
