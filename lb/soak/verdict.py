"""What a soak run recorded, what it adds up to, and whether it passed. Pure: records in, numbers and
verdicts out, so every rule is tested without namespaces (tests/unit/test_soak_verdict.py).

"Start" and "end" are both idle: the start sample is taken after a warm-up of real load, once its
flows have expired (so the allocator has seen load and the flow table is empty again), the end sample
after the load stopped and its flows expired. Each map's entry count compares idle with idle. RSS
is judged per daemon process, since a SIGKILL replaces it and a new daemon's size after its bcc
compile differs from the first one's by tens of MiB (measured: 246 vs 299 MiB) without any leak:
each daemon's last sample against its first (the idle start for the first daemon, its first sample
under load for a successor). The idle start of the first and idle end of the last are shown too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

TOLERANCE = 0.10  # "back within 10 % of their starting values"

Outcome = Literal["ok", "refused", "connect_timeout", "reset", "timeout", "closed", "moved", "error"]
# Outcomes a client sees before it knows which real it reached, and after.
BEFORE_REAL = ("refused", "connect_timeout")
KindOfConn = Literal["tcp", "held", "udp"]


@dataclass(frozen=True)
class ConnRecord:
    """One TCP connection or one UDP exchange (a socket and its datagrams), as the client saw it."""

    service: str  # ServiceSpec.label
    kind: KindOfConn  # "tcp": short churn; "held": kept open for tens of seconds; "udp"
    started: float  # seconds since the run began
    ended: float
    real: str | None  # who answered (the echo's prefix); None when nobody did
    outcome: Outcome
    established: float | None = None  # when the first answer came (the flow was in place)
    detail: str = ""


@dataclass(frozen=True)
class Sample:
    """The daemon and the maps at one instant. None: not readable then (no daemon during a kill)."""

    t: float
    phase: str  # "warmup", "settle", "idle_start", "load", "drain", "idle_end"
    pid: int | None
    rss_kb: int | None
    flows: int | None = None
    first_path_packets: int | None = None
    xdp_dropped: int | None = None
    queue_dropped: int | None = None  # NFQUEUE: full + undelivered
    maps: Mapping[str, int] = field(default_factory=dict)
    fixed_maps: tuple[str, ...] = ()  # per-CPU arrays: their count is their size


@dataclass(frozen=True)
class Event:
    """An action the conductor made: when it began and ended, and whether it did what it should."""

    kind: str  # "edit", "flap", "kill"
    started: float
    ended: float
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ServiceTally:
    label: str
    total: int
    ok: int
    by_real: dict[str, int]  # answered (any outcome once a real was known)
    outcomes: dict[str, int]  # every outcome but "ok"


@dataclass(frozen=True)
class Comparison:
    name: str
    start: int | None
    end: int | None
    fixed: bool = False

    @property
    def ok(self) -> bool:
        return within(self.start, self.end)

    @property
    def change(self) -> str:
        if self.start is None or self.end is None:
            return "n/a"
        if self.start == 0:
            return "0" if self.end == 0 else f"+{self.end}"
        return f"{100 * (self.end - self.start) / self.start:+.1f} %"


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Summary:
    load_s: float
    services: list[ServiceTally]
    stayed: tuple[str, ...]
    resets_stayed: dict[str, int]
    unattributed_resets: int
    rss: Comparison
    daemons: list[tuple[int, int | None, int | None, int | None]]  # pid, first, last, max RSS (kB)
    maps: list[Comparison]
    events: dict[str, tuple[int, int]]  # kind → (done, failed)
    kill_crossers: tuple[int, int]  # (survived, broke) on stayed reals
    verdicts: list[Verdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


def within(start: int | float | None, end: int | float | None, tolerance: float = TOLERANCE) -> bool:
    """end is within `tolerance` of start (an empty start must stay empty); unknown is not within."""
    if start is None or end is None:
        return False
    return abs(end - start) <= tolerance * abs(start)


def tally(records: Iterable[ConnRecord], labels: Sequence[str]) -> list[ServiceTally]:
    groups: dict[str, list[ConnRecord]] = {label: [] for label in labels}
    for rec in records:
        groups.setdefault(rec.service, []).append(rec)
    out = []
    for label, recs in groups.items():
        by_real = Counter(r.real for r in recs if r.real is not None)
        outcomes = Counter(r.outcome for r in recs if r.outcome != "ok")
        out.append(ServiceTally(label, len(recs), sum(r.outcome == "ok" for r in recs),
                                dict(sorted(by_real.items())), dict(sorted(outcomes.items()))))
    return out


def resets_on(records: Iterable[ConnRecord], reals: Iterable[str]) -> dict[str, int]:
    """Resets (and connections closed under the client) per real, for the given reals."""
    counts = dict.fromkeys(reals, 0)
    for rec in records:
        if rec.real in counts and rec.outcome in ("reset", "closed"):
            counts[rec.real] += 1
    return counts


def kill_crossers(records: Iterable[ConnRecord], kills: Iterable[Event], stayed: Iterable[str]
                  ) -> tuple[int, int, list[ConnRecord]]:
    """Connections on stayed reals established before a kill began and still open when the new
    daemon answered: (survived, broke, the broken ones). XDP alone carries them through the gap."""
    windows = [(k.started, k.ended) for k in kills if k.ok]
    keep = set(stayed)
    survived, broken = 0, []
    for rec in records:
        if rec.real not in keep or rec.established is None:
            continue
        if any(rec.established < start and rec.ended > end for start, end in windows):
            if rec.outcome == "ok":
                survived += 1
            else:
                broken.append(rec)
    return survived, len(broken), broken


def idle_sample(samples: Sequence[Sample], phase: str) -> Sample | None:
    found = [s for s in samples if s.phase == phase]
    return found[-1] if found else None


WARMING = ("setup", "warmup", "settle")


def daemon_lives(samples: Sequence[Sample]) -> list[tuple[int, int | None, int | None, int | None]]:
    """Per daemon process, in order: (pid, first RSS, last RSS, highest RSS) in kB, from the idle
    start sample on (the first daemon's warm-up is not its start)."""
    lives: dict[int, list[int]] = {}
    for s in samples:
        if s.pid is not None and s.rss_kb is not None and s.phase not in WARMING:
            lives.setdefault(s.pid, []).append(s.rss_kb)
    return [(pid, rss[0], rss[-1], max(rss)) for pid, rss in lives.items()]


def compare_maps(start: Sample | None, end: Sample | None) -> list[Comparison]:
    names = sorted(set(start.maps if start else {}) | set(end.maps if end else {}))
    fixed = set(start.fixed_maps if start else ()) | set(end.fixed_maps if end else ())
    return [Comparison(n, start.maps.get(n) if start else None, end.maps.get(n) if end else None, n in fixed)
            for n in names]


def summarise(load_s: float, labels: Sequence[str], stayed: Sequence[str], records: Sequence[ConnRecord],
              samples: Sequence[Sample], events: Sequence[Event]) -> Summary:
    """Everything the final table shows, and the verdicts that decide the exit code."""
    services = tally(records, labels)
    resets = resets_on(records, stayed)
    unattributed = sum(1 for r in records if r.real is None and r.outcome == "reset")
    start, end = idle_sample(samples, "idle_start"), idle_sample(samples, "idle_end")
    rss = Comparison("daemon RSS (kB)", start.rss_kb if start else None, end.rss_kb if end else None)
    maps = compare_maps(start, end)
    kills = [e for e in events if e.kind == "kill"]
    survived, broke, broken = kill_crossers(records, kills, stayed)
    done: dict[str, tuple[int, int]] = {}
    for kind in ("edit", "flap", "kill"):
        mine = [e for e in events if e.kind == kind]
        done[kind] = (sum(e.ok for e in mine), sum(not e.ok for e in mine))

    lives = daemon_lives(samples)
    grown = [(pid, first, last) for pid, first, last, _ in lives if not within(first, last)]
    verdicts = [
        Verdict("daemon RSS back within 10 % (each daemon: its start → its last sample)",
                bool(lives) and end is not None and end.pid == lives[-1][0] and not grown,
                ", ".join(f"pid {pid} {_kb(a)} → {_kb(b)}" for pid, a, b in grown)
                or " · ".join(f"pid {pid} {_kb(a)} → {_kb(b)}" for pid, a, b, _ in lives)),
        Verdict("every map's entries back within 10 %", bool(maps) and all(m.ok for m in maps),
                ", ".join(f"{m.name} {m.start}→{m.end}" for m in maps if not m.ok) or f"{len(maps)} maps"),
        Verdict(f"no resets on reals that stayed ({' '.join(stayed)})", sum(resets.values()) == 0,
                ", ".join(f"{r} {n}" for r, n in resets.items())),
        Verdict("connections established before a SIGKILL survived it",
                not kills or (survived > 0 and broke == 0),
                f"{survived} survived, {broke} broke"
                + (f" (first: {broken[0].real} {broken[0].outcome} {broken[0].detail})" if broken else "")),
        Verdict("every service answered", all(s.ok > 0 for s in services),
                ", ".join(f"{s.label} {s.ok}" for s in services)),
        Verdict("every edit, flap and kill done", all(f == 0 and d > 0 for d, f in done.values()),
                ", ".join(f"{k} {d} ok/{f} failed" for k, (d, f) in done.items())),
    ]
    return Summary(load_s, services, tuple(stayed), resets, unattributed, rss, lives, maps,
                   done, (survived, broke), verdicts)


def _kb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f} MiB"
