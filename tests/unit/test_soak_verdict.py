"""lb.soak.verdict: the sums and the rules that decide whether a soak run passed."""

from __future__ import annotations

import pytest

from lb.soak.report import conn_rows, render, sample_rows
from lb.soak.verdict import ConnRecord, Event, Sample, summarise, within

LABELS = ["tcp rr", "udp rr"]
STAYED = ("r1", "r2", "r3")
MAPS = {"flows": 0, "reverse": 0, "services": 2, "reals": 7, "real_counts": 4096}
FIXED = ("real_counts",)


def rec(real: str | None, outcome: str = "ok", *, service: str = "tcp rr", kind: str = "tcp",
        started: float = 1.0, established: float | None = 1.1, ended: float = 2.0) -> ConnRecord:
    return ConnRecord(service, kind, started, ended, real, outcome, established if real else None)  # type: ignore[arg-type]


def sample(phase: str, pid: int = 100, rss: int = 100_000, **maps: int) -> Sample:
    return Sample(0.0, phase, pid, rss, maps={**MAPS, **maps}, fixed_maps=FIXED)


KILL = Event("kill", 10.0, 25.0, True, "")
GOOD_EVENTS = [Event("edit", 5.0, 5.2, True), Event("flap", 6.0, 9.0, True), KILL]


def good_records() -> list[ConnRecord]:
    return [rec("r1"), rec("r2"), rec("r4", "reset"), rec(None, "refused"),
            rec("r1", service="udp rr", kind="udp"),
            rec("r2", kind="held", started=1.0, established=2.0, ended=40.0)]  # across the kill


def run(records: list[ConnRecord] | None = None, samples: list[Sample] | None = None,
        events: list[Event] | None = None):  # type: ignore[no-untyped-def]
    return summarise(60.0, LABELS, STAYED, good_records() if records is None else records,
                     samples or [sample("idle_start"), sample("load", rss=105_000), sample("idle_end", 200, 150_000)],
                     GOOD_EVENTS if events is None else events)


def verdict(summary, start: str):  # type: ignore[no-untyped-def]
    [found] = [v for v in summary.verdicts if v.name.startswith(start)]
    return found


@pytest.mark.parametrize("start, end, ok", [
    (100, 100, True), (100, 110, True), (100, 90, True), (100, 111, False), (100, 89, False),
    (0, 0, True), (0, 1, False), (None, 5, False), (5, None, False), (11, 12, True),
])
def test_within_ten_percent(start: int | None, end: int | None, ok: bool) -> None:
    assert within(start, end) is ok


def test_a_clean_run_passes_and_resets_on_the_flapper_do_not_count() -> None:
    summary = run()
    assert summary.ok, summary.verdicts
    assert summary.resets_stayed == {"r1": 0, "r2": 0, "r3": 0}
    rr = summary.services[0]
    assert (rr.label, rr.total, rr.ok) == ("tcp rr", 5, 3)
    assert rr.by_real == {"r1": 1, "r2": 2, "r4": 1} and rr.outcomes == {"refused": 1, "reset": 1}
    assert summary.kill_crossers == (1, 0)
    assert summary.events == {"edit": (1, 0), "flap": (1, 0), "kill": (1, 0)}


@pytest.mark.parametrize("outcome", ["reset", "closed"])
def test_a_reset_on_a_real_that_stayed_fails(outcome: str) -> None:
    summary = run(good_records() + [rec("r3", outcome)])
    assert not summary.ok
    assert not verdict(summary, "no resets").ok
    assert summary.resets_stayed["r3"] == 1


def test_a_reset_before_any_real_answered_is_reported_not_attributed() -> None:
    summary = run(good_records() + [rec(None, "reset")])
    assert summary.unattributed_resets == 1 and summary.ok


def test_rss_is_judged_per_daemon_from_its_start_and_not_across_a_restart() -> None:
    restarted = run(samples=[sample("warmup", 100, 50_000), sample("idle_start", 100, 100_000),
                             sample("load", 100, 105_000), sample("load", 200, 150_000),
                             sample("idle_end", 200, 160_000)])
    assert verdict(restarted, "daemon RSS").ok, restarted.verdicts  # 100 → 150 MiB is two processes
    assert restarted.daemons == [(100, 100_000, 105_000, 105_000), (200, 150_000, 160_000, 160_000)]
    assert restarted.rss.start == 100_000 and restarted.rss.end == 160_000  # shown, not judged

    grown = run(samples=[sample("idle_start", 100, 100_000), sample("load", 200, 150_000),
                         sample("idle_end", 200, 166_000)])
    v = verdict(grown, "daemon RSS")
    assert not v.ok and not grown.ok and "pid 200" in v.detail


def test_rss_without_the_last_daemons_idle_end_fails() -> None:
    summary = run(samples=[sample("idle_start", 100, 100_000), sample("load", 200, 100_000)])
    assert not verdict(summary, "daemon RSS").ok


def test_a_map_that_did_not_come_back_fails_naming_it() -> None:
    summary = run(samples=[sample("idle_start"), sample("idle_end", reverse=207)])
    v = verdict(summary, "every map")
    assert not v.ok and "reverse 0→207" in v.detail
    assert [m.name for m in summary.maps if not m.ok] == ["reverse"]
    assert [m.fixed for m in summary.maps if m.name == "real_counts"] == [True]


def test_without_an_idle_end_sample_nothing_can_be_judged_and_the_run_fails() -> None:
    summary = run(samples=[sample("idle_start"), sample("load")])
    assert not verdict(summary, "daemon RSS").ok and not verdict(summary, "every map").ok


def test_a_connection_broken_across_a_kill_fails_and_one_opened_after_is_not_a_crosser() -> None:
    broken = rec("r1", "timeout", kind="held", established=5.0, ended=30.0)
    late = rec("r2", kind="held", started=26.0, established=26.5, ended=60.0)
    summary = run(good_records() + [broken, late])
    assert summary.kill_crossers == (1, 1)
    assert not verdict(summary, "connections established before a SIGKILL").ok


def test_kills_without_any_crossing_connection_prove_nothing_and_fail() -> None:
    summary = run([rec("r1"), rec("r1", service="udp rr", kind="udp")])
    assert summary.kill_crossers == (0, 0)
    assert not verdict(summary, "connections established before a SIGKILL").ok


def test_a_failed_action_or_a_silent_service_fails() -> None:
    failed = run(events=GOOD_EVENTS + [Event("edit", 30.0, 30.1, False, "refused")])
    assert not verdict(failed, "every edit").ok
    silent = run([r for r in good_records() if r.service != "udp rr"])
    assert not verdict(silent, "every service answered").ok


def test_report_renders_and_flattens() -> None:
    summary = run()
    assert render(summary) is not None
    rows = sample_rows([sample("idle_start")])
    assert rows[0]["map:reverse"] == 0 and rows[0]["phase"] == "idle_start" and "maps" not in rows[0]
    assert conn_rows(good_records())[0]["real"] == "r1"
