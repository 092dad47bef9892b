"""Every recorded scenario in pcaps/ through the real XDP program (BPF_PROG_RUN, in a namespace rebuilt
from the scenario's topology) and the first-packet path: all equal to out.pcap, byte for byte. The
external corpus through the program: no violation of the robustness contract. And a program compiled
with tests/bpf/lb_break_csum.h force-included (its L4 checksum update skipped) makes both fail loudly."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from pyroute2 import netns

import lb.replay as replay
from lb.config.savefmt import load_rules
from lb.datapath.replaylab import gateway_routes, permanent_neighbours
from lb.replay.corpus import lab_topology, run_corpus
from lb.replay.lab import namespace, xdp_datapath
from lb.replay.runner import run_scenario
from lb.replay.scenario import load

pytestmark = [pytest.mark.root, pytest.mark.bpf]

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"
CORPUS = REPO.parent / "shared" / "corpus"
SCENARIOS = sorted(p.parent.name for p in PCAPS.glob("*/in.pcap"))
BROKEN = functools.partial(xdp_datapath, cflags=("-include", str(Path(__file__).parent / "lb_break_csum.h")))


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_through_xdp(name: str) -> None:
    report = run_scenario(load(PCAPS / name), xdp_datapath)
    assert report.ok, "\n".join(m.render() for m in report.verdict.mismatches[:3])
    assert report.verdict.matched > 0 and report.disagreed == 0


def test_cli_replays_through_xdp(capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main(["udp-masq"]) == 0
    assert "udp-masq (xdp)" in capsys.readouterr().out


def _corpus(name: str) -> Path:
    if not (CORPUS / name).is_dir():
        pytest.skip(f"{CORPUS / name} is absent (CI has ../shared/corpus beside the clone)")
    return CORPUS / name


@pytest.mark.parametrize("corpus", ["zeek", "tcpreplay"])
def test_corpus_contract_through_xdp(corpus: str) -> None:
    table = load_rules((PCAPS / "corpus-rules" / f"{corpus}.rules").read_text())
    reports = run_corpus(_corpus(corpus), table, xdp_datapath)
    assert [f"{r.name} {v}" for r in reports for v in r.violations] == []
    assert sum(r.rewritten for r in reports) > 0 and sum(r.passed for r in reports) > 0


def test_broken_program_fails_scenario_replay() -> None:
    report = run_scenario(load(PCAPS / "rr-masq"), BROKEN)
    assert not report.ok
    first = report.verdict.mismatches[0]
    assert first.step is not None and first.recorded is not None
    text = first.render()
    assert "TCP.chksum: expected" in text and "IP.chksum" not in text.split("\n###")[0]


def test_broken_program_fails_the_corpus_contract() -> None:
    table = load_rules((PCAPS / "corpus-rules" / "zeek.rules").read_text())
    reports = run_corpus(_corpus("zeek") / "http-get.pcap", table, BROKEN)
    violations = [v for r in reports for v in r.violations]
    assert any("L4 checksum was right and is now bad" in v for v in violations)
    assert any("XDP says" in v and "the bytes differ" in v for v in violations)


def test_lab_namespace_reads_back_the_facts_it_was_built_from() -> None:
    """What `lbxdp record` reads from a balancer's namespace is what replay rebuilds it from."""
    topology = lab_topology(load_rules((PCAPS / "corpus-rules" / "zeek.rules").read_text()))
    with namespace(topology) as name:
        neighbours = permanent_neighbours(name, topology.tx_ports)
        routes = gateway_routes(name, topology.tx_ports)
    assert sorted(neighbours) == sorted((n.ifindex, n.address, n.mac) for n in topology.neighbours)
    assert routes == [(r.network, r.gateway, r.ifindex) for r in topology.routes] != []
    assert name not in netns.listnetns()
