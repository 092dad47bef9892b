"""`lbxdp record` end to end, on the smallest scenario: fresh namespaces, lbxdp attached, tcpdump on the
peers; what it writes must load and replay (model) with every packet equal to the recording."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyroute2 import netns

from lb.replay.record import main as record_main
from lb.replay.runner import run_scenario
from lb.replay.scenario import load

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def test_record_udp_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "udp"
    assert record_main(["udp-masq", "--out", str(out)]) == 0
    assert "udp-masq: 12 frames in, 12 out, 6 flows" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"rules", "topology.json", "decisions.json", "in.pcap", "out.pcap", "README"}
    assert "lbxdp record udp-masq" in (out / "README").read_text()
    scenario = load(out)
    assert {str(r) for r in scenario.decisions.values()} == {"10.67.2.11:5353", "10.67.2.12:5353"}
    report = run_scenario(scenario)
    assert report.ok and report.verdict.matched == 12 and report.disagreed == 0
    mine = f"lbx-{os.getpid()}-"
    assert [n for n in netns.listnetns() if n.startswith(mine)] == []  # nothing of ours survived


def test_record_rejects_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert record_main(["nope"]) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err
