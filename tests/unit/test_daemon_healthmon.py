"""HealthMonitor's probe loop: probes each target at its interval, sleeps in between (no polling), wakes
at once when targets change, and reports transitions. The probe itself (a socket) is replaced by a
scripted answer: what is tested here is the scheduling, not the network (tests/e2e/test_liveness_health.py
probes real servers)."""

from __future__ import annotations

import itertools
import threading
import time
from ipaddress import IPv4Address

import pytest

from lb.balancer.health import CheckKind, HealthCheck
from lb.daemon import healthmon
from lb.model import Protocol, RealKey, ServiceKey

TARGET = (ServiceKey(Protocol.TCP, IPv4Address("10.0.0.100"), 80), RealKey(IPv4Address("10.0.1.1"), 80))
CHECK = HealthCheck(kind=CheckKind.TCP, interval=0.1, timeout=0.05, rise=1, fall=1)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], dict[str, bool]]:
    calls: list[float] = []
    answer = {"ok": True}

    def fake_probe(address: IPv4Address, port: int, check: HealthCheck) -> tuple[bool, str]:
        calls.append(time.monotonic())
        return answer["ok"], "scripted"

    monkeypatch.setattr(healthmon, "probe", fake_probe)
    return calls, answer


def test_targets_are_probed_at_their_interval(probes) -> None:
    calls, _ = probes
    monitor = healthmon.HealthMonitor()
    try:
        monitor.configure({TARGET: (IPv4Address("10.0.1.1"), 80, CHECK)})
        time.sleep(0.55)
    finally:
        monitor.stop()
    assert 5 <= len(calls) <= 7  # at 0, 0.1, … 0.5 s
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.09


def test_an_idle_monitor_sleeps_and_a_new_target_wakes_it(probes, monkeypatch: pytest.MonkeyPatch) -> None:
    calls, _ = probes
    waits = []
    original = threading.Event.wait

    def counted_wait(self: threading.Event, timeout: float | None = None) -> bool:
        waits.append(timeout)
        return original(self, timeout)

    monitor = healthmon.HealthMonitor()
    try:
        monkeypatch.setattr(monitor._kick, "wait", counted_wait.__get__(monitor._kick))
        monitor._kick.set()  # let the loop go round once more with the counting wait in place
        time.sleep(0.3)
        assert waits and len(waits) <= 2 and waits[-1] is None  # no targets: one wait, no timeout
        start = time.monotonic()
        monitor.configure({TARGET: (IPv4Address("10.0.1.1"), 80, CHECK)})
        deadline = start + 1
        while not calls and time.monotonic() < deadline:
            time.sleep(0.005)
        assert calls and calls[0] - start < 0.05
    finally:
        monitor.stop()


def test_transitions_are_reported_once(probes) -> None:
    _calls, answer = probes
    monitor = healthmon.HealthMonitor()
    try:
        answer["ok"] = False
        monitor.configure({TARGET: (IPv4Address("10.0.1.1"), 80, CHECK)})
        time.sleep(0.25)
        assert [(t, up) for t, up, _ in monitor.results()] == [(TARGET, False)]
        answer["ok"] = True
        time.sleep(0.25)
        assert [(t, up) for t, up, _ in monitor.results()] == [(TARGET, True)]
        assert monitor.results() == []
    finally:
        monitor.stop()


def test_a_probe_that_raises_counts_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_probe(address: IPv4Address, port: int, check: HealthCheck) -> tuple[bool, str]:
        raise ValueError("invalid literal for int() with base 10: '²00'")

    monkeypatch.setattr(healthmon, "probe", broken_probe)
    monitor = healthmon.HealthMonitor()
    try:
        monitor.configure({TARGET: (IPv4Address("10.0.1.1"), 80, CHECK)})
        deadline = time.monotonic() + 2
        changes: list = []
        while not changes and time.monotonic() < deadline:
            changes = monitor.results()
            time.sleep(0.02)
    finally:
        monitor.stop()
    assert changes == [(TARGET, False, "probe error: ValueError: invalid literal for int() with base 10: '²00'")]
