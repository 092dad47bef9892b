"""Runs the health probes off the daemon's packet loop and reports up/down transitions to it.

A background thread probes each target every `interval` seconds (probes are blocking sockets, at most
`timeout` long), feeds the results through keepalived's rise/fall counting (lb.balancer.health), and
queues every change of state. A pipe wakes the daemon's select loop so a transition is acted on at
once, not at the next tick.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

from lb.balancer.health import CheckKind, HealthCheck, HealthState
from lb.datapath.probes import probe
from lb.model import RealKey, ServiceKey

Target = tuple[ServiceKey, RealKey]


class HealthMonitor:
    def __init__(self, workers: int = 8) -> None:
        self._lock = threading.Lock()
        self._targets: dict[Target, tuple[IPv4Address, int, HealthCheck]] = {}
        self._states: dict[Target, HealthState] = {}
        self._due: dict[Target, float] = {}
        self._changes: list[tuple[Target, bool, str]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop = threading.Event()
        # Wakes the probe loop: targets changed, a probe finished, or stop. Between those the loop
        # sleeps until the next probe is due (an idle daemon's thread does not poll, and does not
        # take the GIL from the packet loop to find nothing to do).
        self._kick = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lbxdp-health")
        self._thread = threading.Thread(target=self._loop, name="lbxdp-health", daemon=True)
        self._thread.start()

    def configure(self, targets: dict[Target, tuple[IPv4Address, int, HealthCheck]]) -> None:
        """Set what to probe. Targets that stay keep their counts; new ones start up and unprobed."""
        with self._lock:
            self._targets = {t: v for t, v in targets.items() if v[2].kind is not CheckKind.NONE}
            for target in list(self._states):
                if target not in self._targets:
                    del self._states[target]
                    self._due.pop(target, None)
            for target in self._targets:
                self._states.setdefault(target, HealthState())
                self._due.setdefault(target, 0.0)
        self._kick.set()

    def state(self, target: Target) -> HealthState | None:
        with self._lock:
            return self._states.get(target)

    def states(self) -> dict[Target, HealthState]:
        with self._lock:
            return dict(self._states)

    def results(self) -> list[tuple[Target, bool, str]]:
        """Transitions since the last call: (target, now healthy, last probe's detail)."""
        with self._lock:
            changes, self._changes = self._changes, []
        return changes

    def fileno(self) -> int:
        return self._wake_r

    def drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _loop(self) -> None:
        running: dict[Target, object] = {}
        while not self._stop.is_set():
            self._kick.clear()  # before looking: a kick from here on ends the wait below at once
            for target in [t for t, f in running.items() if f.done()]:  # type: ignore[attr-defined]
                del running[target]
            now = time.monotonic()
            with self._lock:
                due = [t for t, when in self._due.items() if when <= now and t not in running]
                for target in due:
                    address, port, check = self._targets[target]
                    self._due[target] = now + check.interval
                    future = self._pool.submit(self._probe_one, target, address, port, check)
                    # after the future is done, so the loop it wakes sees it done
                    future.add_done_callback(lambda _f: self._kick.set())
                    running[target] = future
                # a running target is not due again until its probe ends (which kicks)
                waiting = [when for t, when in self._due.items() if t not in running]
            self._kick.wait(max(0.0, min(waiting) - now) if waiting else None)

    def _probe_one(self, target: Target, address: IPv4Address, port: int, check: HealthCheck) -> None:
        try:
            ok, detail = probe(address, port, check)
        except Exception as exc:  # noqa: BLE001 - a probe that raises counts as a failed check
            # The pool would keep the exception in a future nobody reads: the real's state would
            # stop changing and no one would know. Count it, and say what happened.
            ok, detail = False, f"probe error: {type(exc).__name__}: {str(exc)[:80]}"
        with self._lock:
            state = self._states.get(target)
            if state is None:
                return
            if state.record(ok, detail, check):
                self._changes.append((target, state.up, detail))
                try:
                    os.write(self._wake_w, b"!")
                except OSError:
                    pass
