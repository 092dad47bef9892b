"""Samples of the balancer while the soak runs: the daemon (pid, RSS from /proc/<pid>/status,
`lbxdp status --json`) and the entry count of every map of the attached program.

The status comes from the real CLI in the lb namespace, as an operator would read it; a failed read
(no daemon while a SIGKILL's restart is under way) gives None fields, not an error. The map counts
come from the program attached to the balancer's eth0 (lb.datapath.mapcount), which outlives
daemons, so they are read during the gap too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lb.datapath.mapcount import MapCountError, map_counts
from lb.datapath.testbed import Topology, in_netns_call
from lb.soak.verdict import Sample


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB (`ip netns exec` starts no PID namespace: the daemon's pid is ours)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Probe:
    def __init__(self, topo: Topology, lbxdp: str, clock: Callable[[], float], ifname: str = "eth0") -> None:
        self.topo = topo
        self.lbxdp = lbxdp
        self.clock = clock
        self.ifname = ifname

    def status(self) -> dict[str, Any] | None:
        try:
            done = self.topo.run("lb", [self.lbxdp, "status", "--json"], timeout=20.0, check=False)
        except TimeoutError:
            return None
        if done.returncode != 0:
            return None
        try:
            data = json.loads(done.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def map_counts(self) -> tuple[dict[str, int], tuple[str, ...]]:
        try:
            counts = in_netns_call(self.topo.lb.netns, lambda: map_counts(self.ifname), timeout=20.0)
        except (MapCountError, OSError, TimeoutError):
            return {}, ()
        return ({name: c.entries for name, c in counts.items()},
                tuple(sorted(name for name, c in counts.items() if c.fixed)))

    def sample(self, phase: str) -> Sample:
        t = self.clock()
        status = self.status()
        maps, fixed = self.map_counts()
        if status is None:
            return Sample(t, phase, None, None, maps=maps, fixed_maps=fixed)
        pid = int(status["pid"])
        queue = status.get("first_path_queue", {})
        return Sample(
            t, phase, pid, rss_kb(pid),
            flows=status.get("flows"),
            first_path_packets=status.get("first_path_packets"),
            xdp_dropped=status.get("xdp_dropped"),
            queue_dropped=int(queue.get("dropped_full", 0)) + int(queue.get("dropped_undelivered", 0)),
            maps=maps, fixed_maps=fixed,
        )


class Sampler:
    """A thread taking a sample every `every` seconds, labelled with the run's current phase."""

    def __init__(self, probe: Probe, every: float) -> None:
        self.probe = probe
        self.every = every
        self.phase = "setup"
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.add(self.probe.sample(self.phase))
            except Exception:  # noqa: BLE001 - a sample lost is a gap in the CSV, not the end of the run
                continue
