"""Every recorded scenario in pcaps/ through the rewrite model and the first-packet path: all equal to
out.pcap. The corpus contract holds for the model too. And the checks can fail: a model whose
checksum update is broken makes both fail loudly, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

import lb.replay as replay
from lb.config.savefmt import load_rules
from lb.replay.corpus import run_corpus
from lb.replay.runner import run_scenario
from lb.replay.scenario import ScenarioError, load
from lb.rewrite import checksum

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"
CORPUS = REPO.parent / "shared" / "corpus"
SCENARIOS = sorted(p.parent.name for p in PCAPS.glob("*/in.pcap"))
REQUIRED = {"rr-masq", "wrr-masq", "sh-masq", "mh-masq", "dr", "ipip", "udp-masq", "long-flow", "fin-rst"}


def test_every_required_scenario_is_recorded() -> None:
    assert set(SCENARIOS) >= REQUIRED
    assert sum(f.stat().st_size for f in PCAPS.glob("*/*.pcap")) < 600_000  # small enough to keep in git


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_through_the_model(name: str) -> None:
    report = run_scenario(load(PCAPS / name))
    assert report.ok, "\n".join(m.render() for m in report.verdict.mismatches[:3])
    assert report.verdict.matched > 0
    assert report.disagreed == 0  # the daemon's scheduler, replayed, picks what the recording shows


def _broken_replace_4_2(check: int, from32: int, to32: int, from16: int, to16: int) -> int:
    return check  # "forgot" the checksum update


def test_a_broken_checksum_update_fails_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksum, "replace_4_2", _broken_replace_4_2)
    report = run_scenario(load(PCAPS / "rr-masq"))
    assert not report.ok
    text = report.verdict.mismatches[0].render()
    assert "IP.chksum: expected" in text and "TCP.chksum: expected" in text


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert replay.main(["--model", "udp-masq"]) == 0
    assert "udp-masq (model)" in capsys.readouterr().out
    assert replay.main([]) == 2
    assert replay.main(["--model", "no-such-scenario"]) == 2
    assert "no such scenario folder" in capsys.readouterr().err
    assert replay.main(["--corpus", str(PCAPS)]) == 2  # --rules missing
    monkeypatch.setattr(checksum, "replace_4_2", _broken_replace_4_2)
    assert replay.main(["--model", "udp-masq"]) == 1


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="rules: missing"):
        load(tmp_path)


@pytest.mark.parametrize("corpus", ["zeek", "tcpreplay"])
def test_corpus_contract_through_the_model(corpus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (CORPUS / corpus).is_dir():
        pytest.skip(f"{CORPUS / corpus} is absent (CI has ../shared/corpus beside the clone)")
    table = load_rules((PCAPS / "corpus-rules" / f"{corpus}.rules").read_text())
    reports = run_corpus(CORPUS / corpus, table, None)
    assert [v for r in reports for v in r.violations] == []
    assert sum(r.rewritten for r in reports) > 0  # the rules did make some flows VIP traffic
    monkeypatch.setattr(checksum, "replace_4_2", _broken_replace_4_2)
    broken = run_corpus(CORPUS / corpus, table, None)
    assert any("checksum was right and is now bad" in v for r in broken for v in r.violations)
