"""What a bench run measured, and the arithmetic on it: medians, ratios, and the verdict per target.

Pure: no clocks, no I/O. The measuring modules produce `Row`s; `__main__` collects them into a
`Results`; `report` renders them. The issue's point (issue 7) is that on a noisy 2-vCPU VM absolute
figures drift while ratios of medians taken in the same run hold, so every comparison here is a
ratio of medians of interleaved runs, never of single samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["met", "missed", "not measured"]


@dataclass(frozen=True)
class Row:
    """One figure of one case: its samples (one per interleaved run) or why it was not measured.

    `check` says how the bench knows the samples measure what the name claims (for the fast path:
    how many BPF_PROG_RUN rounds the program's own counters put under the claimed reason).
    """

    case: str
    name: str
    unit: str
    samples: tuple[float, ...] = ()
    higher_is_better: bool = True
    check: str = ""
    skipped: str | None = None  # "not measured: <reason>" when there are no samples
    failed: tuple[str, ...] = ()  # one reason per run that produced no sample (kept, never dropped)

    @property
    def key(self) -> str:
        return f"{self.case}/{self.name}"

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median: how far the runs disagree, as a fraction."""
        med = self.median
        if med is None or med == 0 or len(self.samples) < 2:
            return None
        return (max(self.samples) - min(self.samples)) / med


def measured(case: str, name: str, unit: str, samples: Iterable[float], *,
             higher_is_better: bool = True, check: str = "", failed: Iterable[str] = ()) -> Row:
    """A row with samples; `failed` holds the reason of each run that gave none (the median is of
    the others, and the page shows both)."""
    return Row(case, name, unit, tuple(float(s) for s in samples), higher_is_better, check, None,
               tuple(failed))


def not_measured(case: str, name: str, unit: str, reason: str, *,
                 higher_is_better: bool = True, failed: Iterable[str] = ()) -> Row:
    return Row(case, name, unit, (), higher_is_better, "", reason, tuple(failed))


def ratio(numerator: Row | None, denominator: Row | None) -> float | None:
    """median(numerator) / median(denominator), or None when either is missing or zero."""
    if numerator is None or denominator is None:
        return None
    a, b = numerator.median, denominator.median
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass(frozen=True)
class Reference:
    """A figure of the same run that a missed target is read against: what the rig itself allows
    (a baseline doing less work than lbxdp), shown in the target's line when the target is missed."""

    label: str
    num: str  # Row.key
    den: str | None = None  # a ratio of two rows' medians, as a target's


@dataclass(frozen=True)
class Target:
    """A goal from issue 7: either a ratio of two rows' medians or one row's median, against a bound.

    `op` is ">=" or "<="; `den` is None for an absolute target.
    """

    figure: str
    num: str  # Row.key
    op: Literal[">=", "<="]
    bound: float
    den: str | None = None
    unit: str = ""  # of an absolute bound
    reference: Reference | None = None

    @property
    def goal(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        if self.den is None:
            return f"{sign} {_fmt(self.bound)} {self.unit}".rstrip()
        return f"{sign} {self.bound:g}×"


@dataclass(frozen=True)
class Verdict:
    figure: str
    goal: str
    measured: str
    status: Status
    why: str = ""

    @property
    def line(self) -> str:
        tail = f" ({self.why})" if self.why else ""
        return f"{self.figure}: target {self.goal}, measured {self.measured} — {self.status}{tail}"


ROUTED = Reference("the same SYNs routed with no balancing", "newflows/routed to one real, no NAT")

# Issue 7, "Targets". Rows are named by the measuring modules; these keys are their contract.
TARGETS: tuple[Target, ...] = (
    Target("forwarding vs iptables DNAT", "forwarding/lbxdp native", ">=", 1.9,
           "forwarding/iptables DNAT (statistic random)",
           reference=Reference("the minimal XDP DNAT forwarder", "forwarding/minimal XDP DNAT native",
                               "forwarding/iptables DNAT (statistic random)")),
    Target("forwarding vs minimal XDP DNAT", "forwarding/lbxdp native", ">=", 0.95,
           "forwarding/minimal XDP DNAT native"),
    Target("fast-path hit vs minimal DNAT program", "fastpath/lbxdp masq forward hit", "<=", 1.3,
           "fastpath/minimal DNAT program"),
    Target("new flows/s through NFQUEUE", "newflows/lbxdp NFQUEUE", ">=", 25_000, unit="flows/s",
           reference=ROUTED),
    Target("new flows/s through NFQUEUE (plugin rr)", "newflows/lbxdp NFQUEUE (plugin rr)", ">=", 10_000,
           unit="flows/s", reference=ROUTED),
    Target("new flows/s through in-kernel hash scheduling (mh)", "newflows/lbxdp in-kernel mh", ">=", 25_000,
           unit="flows/s", reference=ROUTED),
    Target("TCP connections/s vs iptables DNAT (rr: first packets through NFQUEUE)", "tcp/lbxdp conn/s", ">=", 1.0,
           "tcp/iptables DNAT conn/s",
           reference=Reference("direct to one real", "tcp/direct to one real conn/s", "tcp/iptables DNAT conn/s")),
    Target("TCP connections/s vs iptables DNAT (mh: scheduled in XDP)", "tcp/lbxdp mh (in XDP) conn/s", ">=", 1.0,
           "tcp/iptables DNAT conn/s"),
    Target("flow table memory at 1M flows", "scale/flow table at 1M flows", "<=", 256, unit="MB"),
    Target("Maglev build (M=65537, 1000 reals)", "scale/Maglev build", "<=", 100, unit="ms"),
)

# Issue 13: each kind of built-in scheduler decided in XDP, against iptables DNAT in the same run
# (new UDP flows against the UDP chain). The rows are lb.bench.newflows' and lb.bench.tcp's
# in-kernel variants; each row's check says how many packets still went through NFQUEUE.
IN_XDP_NEWFLOWS = ("rr", "wlc", "sh", "rr -p", "udp rr")
IN_XDP_CONNS = ("rr", "wlc")
TARGETS += tuple(
    Target(f"new flows/s vs iptables DNAT ({kind} in XDP)", f"newflows/lbxdp in-kernel {kind}", ">=", 1.0,
           "newflows/iptables DNAT (udp)" if kind.startswith("udp") else "newflows/iptables DNAT",
           reference=None if kind.startswith("udp") else Reference(
               "routed with no balancing", "newflows/routed to one real, no NAT", "newflows/iptables DNAT"))
    for kind in IN_XDP_NEWFLOWS
) + tuple(
    Target(f"TCP connections/s vs iptables DNAT ({kind} in XDP)", f"tcp/lbxdp {kind} (in XDP) conn/s", ">=", 1.0,
           "tcp/iptables DNAT conn/s",
           reference=Reference("direct to one real", "tcp/direct to one real conn/s", "tcp/iptables DNAT conn/s"))
    for kind in IN_XDP_CONNS
)


def evaluate(target: Target, rows: Mapping[str, Row]) -> Verdict:
    """Met, missed, or not measured (with the first missing row's reason)."""
    num = rows.get(target.num)
    den = rows.get(target.den) if target.den is not None else None
    missing = [k for k, r in ((target.num, num), (target.den, den))
               if k is not None and (r is None or r.median is None)]
    if missing:
        first = rows.get(missing[0])
        why = first.skipped if first is not None and first.skipped else f"{missing[0]} not run"
        return Verdict(target.figure, target.goal, "—", "not measured", why)
    assert num is not None
    if target.den is None:
        value = num.median
        shown = f"{_fmt(value)} {num.unit}"  # type: ignore[arg-type]
    else:
        value = ratio(num, den)
        if value is None:
            return Verdict(target.figure, target.goal, "—", "not measured", "denominator is zero")
        shown = f"{value:.2f}×"
    assert value is not None
    ok = value >= target.bound if target.op == ">=" else value <= target.bound
    if ok:
        return Verdict(target.figure, target.goal, shown, "met")
    return Verdict(target.figure, target.goal, shown, "missed", _reference(target.reference, rows))


def _reference(ref: Reference | None, rows: Mapping[str, Row]) -> str:
    """"<label>: <figure>" when the reference's rows were measured, else nothing."""
    if ref is None:
        return ""
    num = rows.get(ref.num)
    if num is None or num.median is None:
        return ""
    if ref.den is None:
        return f"{ref.label}: {_fmt(num.median)} {num.unit}"
    value = ratio(num, rows.get(ref.den))
    return f"{ref.label}: {value:.2f}×" if value is not None else ""


def verdicts(rows: Iterable[Row], targets: Sequence[Target] = TARGETS) -> list[Verdict]:
    by_key = {r.key: r for r in rows}
    return [evaluate(t, by_key) for t in targets]


@dataclass(frozen=True)
class Comparison:
    """A ratio the tables show next to the figures (not a target): num over den, medians."""

    label: str
    num: str
    den: str


# Ratios issue 7 asks to show: against iptables DNAT and against the machine's ceiling.
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("lbxdp native / iptables DNAT", "forwarding/lbxdp native",
               "forwarding/iptables DNAT (statistic random)"),
    Comparison("lbxdp generic / iptables DNAT", "forwarding/lbxdp generic",
               "forwarding/iptables DNAT (statistic random)"),
    Comparison("minimal XDP DNAT / iptables DNAT", "forwarding/minimal XDP DNAT native",
               "forwarding/iptables DNAT (statistic random)"),
    Comparison("nftables numgen / iptables DNAT", "forwarding/nftables numgen DNAT",
               "forwarding/iptables DNAT (statistic random)"),
    Comparison("lbxdp native / ceiling", "forwarding/lbxdp native", "forwarding/ceiling (XDP_DROP at ingress)"),
    Comparison("iptables DNAT / ceiling", "forwarding/iptables DNAT (statistic random)",
               "forwarding/ceiling (XDP_DROP at ingress)"),
    Comparison("lbxdp masq hit / minimal DNAT program (prog)", "fastpath/lbxdp masq forward hit",
               "fastpath/minimal DNAT program"),
    Comparison("lbxdp masq hit / minimal DNAT (live frames)", "fastpath/lbxdp masq forward hit (live)",
               "fastpath/minimal DNAT program (live)"),
    Comparison("lbxdp conn/s / iptables DNAT conn/s", "tcp/lbxdp conn/s", "tcp/iptables DNAT conn/s"),
    Comparison("HAProxy conn/s / iptables DNAT conn/s", "tcp/HAProxy (TCP mode) conn/s",
               "tcp/iptables DNAT conn/s"),
    Comparison("lbxdp conn/s / direct conn/s", "tcp/lbxdp conn/s", "tcp/direct to one real conn/s"),
    Comparison("lbxdp mh (in XDP) conn/s / iptables DNAT conn/s", "tcp/lbxdp mh (in XDP) conn/s",
               "tcp/iptables DNAT conn/s"),
    Comparison("new flows/s: in-kernel mh / NFQUEUE", "newflows/lbxdp in-kernel mh", "newflows/lbxdp NFQUEUE"),
    Comparison("new flows/s: NFQUEUE / iptables DNAT", "newflows/lbxdp NFQUEUE", "newflows/iptables DNAT"),
    Comparison("new flows/s: in-kernel mh / iptables DNAT", "newflows/lbxdp in-kernel mh", "newflows/iptables DNAT"),
    Comparison("new flows/s: in-kernel mh / routed, no NAT", "newflows/lbxdp in-kernel mh",
               "newflows/routed to one real, no NAT"),
    Comparison("lbxdp req/s / iptables DNAT req/s", "tcp/lbxdp req/s", "tcp/iptables DNAT req/s"),
    Comparison("HAProxy req/s / iptables DNAT req/s", "tcp/HAProxy (TCP mode) req/s",
               "tcp/iptables DNAT req/s"),
)

COMPARISONS += tuple(
    Comparison(f"new flows/s: {kind} in XDP / NFQUEUE", f"newflows/lbxdp in-kernel {kind}", "newflows/lbxdp NFQUEUE")
    for kind in IN_XDP_NEWFLOWS
)


def comparisons(rows: Iterable[Row], wanted: Sequence[Comparison] = COMPARISONS
                ) -> list[tuple[str, float]]:
    """The listed ratios whose both rows were measured."""
    by_key = {r.key: r for r in rows}
    out = []
    for c in wanted:
        value = ratio(by_key.get(c.num), by_key.get(c.den))
        if value is not None:
            out.append((c.label, value))
    return out


@dataclass
class Results:
    """A whole run: what was measured, on what, how (quick or full)."""

    mode: str
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    runs: int = 3
    elapsed_s: float = 0.0
    started: str = ""
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. "daemon_profile" (lb.bench.newflows)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "started": self.started, "elapsed_s": round(self.elapsed_s, 1),
            "runs": self.runs, "machine": self.machine,
            "rows": [dict(asdict(r), median=r.median) for r in self.rows],
            "ratios": {label: round(v, 4) for label, v in comparisons(self.rows)},
            "targets": [asdict(v) for v in verdicts(self.rows)],
            **self.extras,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Results:
        rows = [Row(r["case"], r["name"], r["unit"], tuple(r["samples"]), r["higher_is_better"],
                    r.get("check", ""), r.get("skipped"), tuple(r.get("failed", ()))) for r in data["rows"]]
        extras = {k: v for k, v in data.items() if k in ("daemon_profile", "case_seconds")}
        return cls(data["mode"], dict(data["machine"]), rows, data.get("runs", 3),
                   data.get("elapsed_s", 0.0), data.get("started", ""), extras)


def _fmt(value: float) -> str:
    """Figures as people read them: 1.23M, 45.6k, 184, 0.42."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.2f}M"
    if a >= 1e4:
        return f"{value / 1e3:.1f}k"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


fmt = _fmt
