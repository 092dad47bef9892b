"""The soak's conductor (`Soak`): the testbed's servers, the daemon attached and configured through
the real `lbxdp` CLI, the load, and the timetable of edits, health flaps and SIGKILL + re-attach
(lb.soak.plan), with witness connections held through each kill. lb.soak.run starts and ends it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from lb.datapath.testbed import HeldConnection, Topology
from lb.soak import plan as P
from lb.soak.load import Load, LoadConfig
from lb.soak.probe import Probe, Sampler
from lb.soak.verdict import ConnRecord, Event, Outcome, Summary, summarise

LBXDP = str(Path(sys.executable).parent / "lbxdp")
ATTACH_TIMEOUT = 120.0  # bcc compiles the program at every attach: tens of seconds on a busy machine
IDLE_TIMEOUT = 90.0  # flows of the stopped load expire: RST/FIN/UDP 10 s, established 30 s


WITNESSES = 3  # connections per TCP service opened before each kill, talked through it


@dataclass
class Witness:
    service: str
    started: float
    conn: HeldConnection | None = None
    real: str | None = None
    established: float | None = None
    outcome: Outcome = "ok"
    detail: str = ""


class SoakError(RuntimeError):
    """The harness could not do its part (attach, configure, reach a service); one line for users."""


class Soak:
    def __init__(self, topo: Topology, load_s: float, warmup_s: float, console: Console) -> None:
        self.topo = topo
        self.load_s = load_s
        self.warmup_s = warmup_s
        self.console = console
        self.timings = P.Timings.for_load(load_s)
        self.t0 = time.monotonic()
        self.ips = {r.name: r.ip for r in topo.reals}
        self.vip = topo.vip
        self.probe = Probe(topo, LBXDP, self.clock)
        self.sampler = Sampler(self.probe, self.timings.sample_every)
        self.events: list[Event] = []
        self.records: list[ConnRecord] = []
        self.tcp_servers: dict[str, Any] = {}
        self.edits_done = 0
        self.attached = False
        self._load: Load | None = None
        ns_inode = topo.run("lb", ["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).stdout.strip()
        self.run_dir = Path("/run/lbxdp") / f"netns-{ns_inode}"  # the daemon's state and log

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{self.clock():7.1f} s[/] {text}")

    # -- lbxdp in the lb namespace -------------------------------------------------------------------

    def lbxdp(self, *words: str, timeout: float = 30.0) -> tuple[bool, str]:
        try:
            done = self.topo.run("lb", [LBXDP, *words], timeout=timeout, check=False)
        except TimeoutError as exc:
            return False, str(exc)
        return done.returncode == 0, (done.stdout if done.returncode == 0 else done.stderr.strip())

    def must(self, *words: str, timeout: float = 30.0) -> str:
        ok, out = self.lbxdp(*words, timeout=timeout)
        if not ok:
            raise SoakError(f"lbxdp {' '.join(words)}: {out.splitlines()[-1] if out else 'failed'}")
        return out

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> Summary:
        self.say(f"testbed {self.topo.prefix}: client {self.topo.client.ip} → VIP {self.vip} → "
                 + ", ".join(f"{n} {ip}" for n, ip in self.ips.items()))
        self.tcp_servers = self.topo.start_tcp_servers(port=P.TCP_REAL_PORT)
        self.topo.start_udp_servers(port=P.UDP_REAL_PORT, reals=["r1", "r2", "r3"])
        self.say("lbxdp attach eth0 eth1 (bcc compiles the XDP program)")
        self.must("attach", *[i.name for i in self.topo.lb_ifaces], timeout=ATTACH_TIMEOUT)
        self.attached = True
        for words in P.setup_commands(self.vip, self.ips):
            self.must(*words)
        self._wait_serving()
        self.say("configured:\n" + self.must("-L", "-n").rstrip())
        self.sampler.start()

        self.sampler.phase = "warmup"
        self.say(f"warm-up: {self.warmup_s:g} s of load")
        warm = self._load_gen()
        warm.start()
        self._sleep(self.warmup_s)
        self._stop_load(warm)
        self.sampler.phase = "settle"  # only _wait_idle's own sample is labelled idle_start
        self._wait_idle("idle_start")

        self.sampler.phase = "load"
        load = self._load = self._load_gen()
        started = time.monotonic()
        self.say(f"load: {self.load_s / 60:.2f} min; actions planned: "
                 + ", ".join(f"{k} {n}" for k, n in self._planned().items()))
        load.start()
        try:
            self._conduct(started)
        finally:
            self.sampler.phase = "drain"
            self._stop_load(load)
            self.records = load.snapshot() + self.records  # the kill witnesses are in already
        self._restore()
        self._wait_idle("idle_end")
        self.sampler.stop()
        return summarise(self.load_s, [s.label for s in P.SERVICES], P.stayed_reals(), self.records,
                         self.sampler.snapshot(), self.events)

    def _load_gen(self) -> Load:
        # Held connections outlast a restart (an attach compiles for 10-30 s); the end of the load
        # closes those still open, as a client would.
        config = LoadConfig(self.vip, self.topo.client.netns, hold_s=(20.0, 60.0))
        return Load(config, P.SERVICES, self.clock)

    def _stop_load(self, load: Load) -> None:
        stuck = load.stop(timeout=P.Timings().flap_down + 50)
        if stuck:
            raise SoakError(f"clients did not stop: {', '.join(stuck)}")

    def _planned(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in P.schedule(self.load_s, self.timings):
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return counts

    def _conduct(self, started: float) -> None:
        """Make the plan's actions one at a time, each at its time or as soon as the one before is done,
        until the load's time is up; then wait for the end of the load."""
        end = started + self.load_s
        for action in P.schedule(self.load_s, self.timings):
            self._sleep(started + action.at - time.monotonic())
            if time.monotonic() >= end:
                break
            if action.kind == "kill":
                self._kill(action.index)
            elif action.kind == "flap":
                self._flap(action.index)
            else:
                self._edit(self.edits_done)
        self._sleep(end - time.monotonic())

    def _event(self, kind: str, began: float, ok: bool, detail: str) -> None:
        self.events.append(Event(kind, began, self.clock(), ok, detail))
        self.say(f"{kind} {'done' if ok else '[red]FAILED[/]'}: {detail}")

    def _edit(self, index: int) -> None:
        began = self.clock()
        words = P.edit_argv(index, self.vip, self.ips)
        ok, out = self.lbxdp(*words)
        self.edits_done += 1
        self._event("edit", began, ok, "lbxdp " + " ".join(words) + ("" if ok else f": {out}"))

    def _flap(self, index: int) -> None:
        """Stop the flapping real's server for flap_down seconds; health must take it out (DOWN)."""
        began = self.clock()
        real = P.FLAPPER
        rip = f"{self.ips[real]}:{P.TCP_REAL_PORT}"
        self.topo.stop(self.tcp_servers[real])
        deadline = time.monotonic() + self.timings.flap_down
        seen_down = False
        while time.monotonic() < deadline:
            ok, out = self.lbxdp("-L", "-n", "-t", P.SERVICES[0].vip_port(self.vip))
            seen_down = seen_down or (ok and health_state(out, rip) == "DOWN")
            self._sleep(min(1.0, deadline - time.monotonic()))
        try:
            self.tcp_servers.update(self.topo.start_tcp_servers(port=P.TCP_REAL_PORT, reals=[real]))
            restarted = True
        except RuntimeError as exc:
            restarted, detail = False, str(exc)
        else:
            detail = f"{real}'s server down {self.timings.flap_down:g} s, " + \
                     ("health saw it DOWN" if seen_down else "health never saw it DOWN")
        self._event("flap", began, restarted and seen_down, detail)

    def _kill(self, index: int) -> None:
        """SIGKILL the daemon; `lbxdp attach` starts a new one, which adopts the maps and the config."""
        began = self.clock()
        status = self.probe.status()
        if status is None:
            self._event("kill", began, False, "no daemon answered before the kill")
            return
        pid = int(status["pid"])
        witnesses = self._open_witnesses()
        os.kill(pid, signal.SIGKILL)
        gone = _wait(lambda: not _alive(pid), 10.0)
        self._talk(witnesses)  # through XDP alone: no daemon runs now
        ok, out = self.lbxdp("attach", *[i.name for i in self.topo.lb_ifaces], timeout=ATTACH_TIMEOUT)
        after = self.probe.status() if ok else None
        self._talk(witnesses)
        self._close_witnesses(witnesses)
        new_pid = after.get("pid") if after else None
        detail = (f"daemon {pid} killed, new daemon {new_pid} after {self.clock() - began:.1f} s"
                  if ok else f"daemon {pid} killed; attach failed: {out}")
        self._event("kill", began, gone and ok and new_pid not in (None, pid), detail)

    def _open_witnesses(self) -> list[Witness]:
        """Connections opened just before a kill, on every TCP service, that must live through it
        (the random held connections may happen not to straddle it)."""
        found = []
        for spec in P.SERVICES:
            for _ in range(WITNESSES if spec.proto == "tcp" else 0):
                w = Witness(spec.label, self.clock())
                try:
                    w.conn = HeldConnection.open(self.topo.client.netns, self.vip, spec.port, timeout=5.0)
                    w.real = w.conn.exchange(1)
                    w.established = self.clock()
                except (OSError, ConnectionError) as exc:
                    w.outcome, w.detail = "error", f"before the kill: {exc}"
                found.append(w)
        return found

    @staticmethod
    def _talk(witnesses: list[Witness]) -> None:
        for w in witnesses:
            if w.conn is None or w.outcome != "ok":
                continue
            try:
                w.conn.exchange(2)
            except ConnectionResetError as exc:
                w.outcome, w.detail = "reset", str(exc)
            except (TimeoutError, OSError, ConnectionError) as exc:
                moved = "moved" in str(exc)
                closed = "closed by peer" in str(exc)
                w.outcome = "moved" if moved else "closed" if closed else "timeout"
                w.detail = str(exc)

    def _close_witnesses(self, witnesses: list[Witness]) -> None:
        for w in witnesses:
            if w.conn is not None:
                w.conn.close()
            self.records.append(ConnRecord(w.service, "held", w.started, self.clock(), w.real,
                                           w.outcome, w.established, w.detail or "kill witness"))

    def _restore(self) -> None:
        """Back to the start's table: undo the edits of the unfinished cycle; the flapper serves."""
        if self.tcp_servers[P.FLAPPER].poll() is not None:
            self.tcp_servers.update(self.topo.start_tcp_servers(port=P.TCP_REAL_PORT, reals=[P.FLAPPER]))
        for index in P.restore_edits(self.edits_done):
            words = P.edit_argv(index, self.vip, self.ips)
            ok, out = self.lbxdp(*words)
            self.say(f"restore: lbxdp {' '.join(words)}" + ("" if ok else f" [red]failed: {out}[/]"))

    def _wait_idle(self, phase: str) -> None:
        """Until a sample finds the flow table empty (bounded): that sample is the idle one of
        `phase`. Only `flows` is waited for: every other map is judged, not waited into shape."""
        self.say(f"waiting for the flows to expire ({phase})")
        began = time.monotonic()
        while True:
            self._sleep(2.0)  # a daemon tick or two between looks
            sample = self.probe.sample(phase)
            if sample.maps.get("flows", 1) == 0 and sample.pid is not None:
                break
            if time.monotonic() - began >= IDLE_TIMEOUT:
                self.say(f"[yellow]flows still in the table after {IDLE_TIMEOUT:g} s[/]")
                break
        self.sampler.add(sample)
        self.say(f"{phase}: daemon {sample.pid}, RSS {sample.rss_kb} kB, maps "
                 + " ".join(f"{k}={v}" for k, v in sorted(sample.maps.items()) if k not in sample.fixed_maps))

    def _wait_serving(self) -> None:
        """One answer from each service, so the warm-up starts on a working table (bounded)."""
        probe = Load(LoadConfig(self.vip, self.topo.client.netns), P.SERVICES, self.clock)
        for spec in P.SERVICES:
            ok = _wait(partial(_answers, probe, spec), 20.0)
            if not ok:
                raise SoakError(f"no answer from {spec.label} at {spec.vip_port(self.vip)} within 20 s")

    @staticmethod
    def _sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def _answers(load: Load, spec: P.ServiceSpec) -> bool:
    before = len(load.records)
    if spec.proto == "tcp":
        load._tcp_once(spec, "tcp", hold=0.0, lines=1)
    else:
        load._udp_once(spec, 1)
    return any(r.outcome == "ok" for r in load.records[before:])


def health_state(listing: str, rip: str) -> str | None:
    """UP/DOWN of `rip` in the "Health checks:" section of `lbxdp -L -n -t VIP:PORT`."""
    _, found, section = listing.partition("Health checks:\n")
    for line in section.splitlines() if found else ():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "->" and parts[1] == rip:
            return parts[2]
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
