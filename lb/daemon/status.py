"""What the daemon shows: `-L --stats/--rate` figures per service and real, health rows for `-L`,
and `lbxdp status` (text and JSON).

Functions over the daemon's parts (`Observed`), reading counters from the maps and the first-packet
path and changing nothing but the rate samples (`Rates`), so the loop in lb.daemon.daemon stays the
one place that decides.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from lb.balancer.engine import Balancer
from lb.balancer.health import HealthCheck
from lb.daemon import instance
from lb.daemon.firstpath import QUEUE_LEN, QUEUE_NUM, FirstPacketPath
from lb.daemon.flows import FlowBook
from lb.daemon.healthmon import HealthMonitor
from lb.daemon.kernelsched import KernelSched
from lb.datapath import queuestats
from lb.datapath.maps import DatapathMaps
from lb.model import RealKey, ServiceKey
from lb.rewrite.verdicts import Reason, Verdict


class Rates:
    """Per-real rates for `-L --rate`, from two samples of the counters a tick apart."""

    def __init__(self) -> None:
        self.by_real: dict[int, dict[str, int]] = {}
        self._last: tuple[float, dict[int, Any]] | None = None

    def of(self, real_id: int) -> dict[str, int]:
        """The real's latest rates (empty until two samples were taken)."""
        return self.by_real.get(real_id, {})

    def forget(self) -> None:
        """`-Z`: the counters restart, so the next sample is a new first one, not a difference."""
        self._last = None

    def sample(self, now: float, sample: dict[int, Any]) -> None:
        """`sample` maps real id → (traffic, conns) read at monotonic time `now`."""
        if self._last is not None:
            then, before = self._last
            dt = max(now - then, 1e-3)
            for rid, (t, conns) in sample.items():
                if rid not in before:
                    continue
                t0, c0 = before[rid]
                # Whole numbers per second, as ipvsadm shows them (lb.render formats integers).
                self.by_real[rid] = {
                    "cps": round((conns - c0) / dt),
                    "inpps": round((t.in_packets - t0.in_packets) / dt),
                    "outpps": round((t.out_packets - t0.out_packets) / dt),
                    "inbps": round((t.in_bytes - t0.in_bytes) / dt),
                    "outbps": round((t.out_bytes - t0.out_bytes) / dt),
                }
        self._last = (now, sample)


class Observed(Protocol):
    """The parts of the daemon (lb.daemon.daemon.Daemon) its listings and status read."""

    started: float
    ifaces: dict[str, str]
    queue_bypass: bool
    maps: DatapathMaps
    balancer: Balancer
    first: FirstPacketPath
    flows: FlowBook
    kernel_sched: KernelSched
    health: HealthMonitor
    health_checks: dict[ServiceKey, HealthCheck]
    rates: Rates


def conns(d: Observed, real_ids: list[int]) -> dict[int, int]:
    """ipvsadm's Conns per real: flows the first-packet path scheduled plus those XDP did."""
    in_kernel = d.maps.hash_conns(real_ids)
    return {rid: d.first.conns.get(rid, 0) + in_kernel[rid] for rid in real_ids}


def sample_rates(d: Observed) -> None:
    """One tick's sample of every real's traffic and Conns, for `Rates`."""
    now = time.monotonic()
    rids = [r.real_id for s in d.balancer.services.values() for r in s.reals.values()]
    traffic = d.maps.real_traffic(rids)
    counts = conns(d, rids)
    d.rates.sample(now, {rid: (traffic[rid], counts[rid]) for rid in rids})


Figures = dict[str, int]  # lb.render's vocabulary: counters and whole rates per second


def numbers(d: Observed) -> tuple[dict[ServiceKey, Figures], dict[tuple[ServiceKey, RealKey], Figures]]:
    """Per-service and per-real figures for `-L --stats/--rate` in lb.render's vocabulary."""
    service_numbers: dict[ServiceKey, Figures] = {}
    real_numbers: dict[tuple[ServiceKey, RealKey], Figures] = {}
    for key, state in d.balancer.services.items():
        total: Figures = {}
        traffic = d.maps.real_traffic([r.real_id for r in state.reals.values()])
        counts = conns(d, [r.real_id for r in state.reals.values()])
        for rkey, rstate in state.reals.items():
            t = traffic[rstate.real_id]
            first_packets, first_bytes = d.first.first_traffic.get(rstate.real_id, (0, 0))
            figures = {
                "active": rstate.dest.active,
                "inactive": rstate.dest.inactive,
                "conns": counts[rstate.real_id],
                "inpkts": t.in_packets + first_packets,
                "outpkts": t.out_packets,
                "inbytes": t.in_bytes + first_bytes,
                "outbytes": t.out_bytes,
                **d.rates.of(rstate.real_id),
            }
            real_numbers[(key, rkey)] = figures
            for name, value in figures.items():
                total[name] = total.get(name, 0) + value
        service_numbers[key] = total
    return service_numbers, real_numbers


def health_rows(d: Observed, only: ServiceKey | None) -> list[tuple[Any, Any, list[tuple[Any, bool, str]]]]:
    """The health section under `-L`: each checked service, its check, and each real's state."""
    rows = []
    states = d.health.states()
    for key, check in d.health_checks.items():
        if (only is not None and key != only) or key not in d.balancer.services:
            continue
        reals = []
        for rkey, rstate in d.balancer.services[key].reals.items():
            state = states.get((key, rkey))
            # UP/DOWN as scheduling sees it, so the listing never runs ahead of what new flows get.
            reals.append((rkey, rstate.dest.healthy, state.last_result if state else "not checked"))
        rows.append((key, check, reals))
    return rows


def no_daemon_policy(bypass: bool) -> str:
    """What happens to first packets while no daemon reads the queue, in status' words."""
    return "passed to the kernel (fail-open, --queue-bypass)" if bypass else "dropped (fail-closed)"


def status_data(d: Observed) -> dict[str, Any]:
    """`lbxdp status --json`: the same facts as the text, for scripts and the demo."""
    reasons = d.maps.reason_counts()
    rids = [r.real_id for s in d.balancer.services.values() for r in s.reals.values()]
    events = dict(d.first.counters.counts)
    dropped_in_xdp = reasons.get(Reason.DROP_NO_FLOW_NOT_SYN, 0)
    if dropped_in_xdp:  # one policy, applied in XDP for most services (docs/daemon.md): one count
        events["no_flow_not_syn"] = events.get("no_flow_not_syn", 0) + dropped_in_xdp
    if d.flows.pruned:
        events["pruned_half_open"] = d.flows.pruned
    queued = queuestats.read(QUEUE_NUM) or queuestats.QueueStats(0, 0, 0)
    return {
        "pid": os.getpid(),
        "ifaces": dict(d.ifaces),
        "services": len(d.balancer.services),
        "flows": d.flows.count,  # as of the last sweep, plus flows installed since
        "flow_limit": d.flows.limit,
        "xdp_forwarded": sum(n for r, n in reasons.items() if r.verdict in (Verdict.TX, Verdict.REDIRECT)),
        "xdp_passed": sum(n for r, n in reasons.items() if r.verdict is Verdict.PASS),
        "xdp_dropped": sum(n for r, n in reasons.items() if r.verdict in (Verdict.DROP, Verdict.ABORTED)),
        "xdp_reasons": {r.name.lower(): n for r, n in reasons.items()},
        "first_path_packets": d.first.counters.packets,
        "xdp_scheduled": sum(d.maps.hash_conns(rids).values()),  # flows XDP scheduled itself (mh)
        "kernel_hashed_services": 0 if d.kernel_sched.paused else len(d.kernel_sched.rows),
        "first_path_events": events,
        # the kernel's side of the queue: first packets waiting, and those it dropped (the
        # client resends a dropped SYN; a growing count means first packets come faster than
        # the daemon takes them)
        "queue_bypass": d.queue_bypass,
        "no_daemon_first_packets": no_daemon_policy(d.queue_bypass),
        "first_path_queue": {"length": QUEUE_LEN, "waiting": queued.waiting,
                             "dropped_full": queued.dropped_full,
                             "dropped_undelivered": queued.dropped_undelivered},
    }


def status_text(d: Observed) -> str:
    """`lbxdp status`: one screen for a person."""
    data = status_data(d)
    lines = [f"lbxdp daemon pid {data['pid']}, up {time.time() - d.started:.0f} s, log {instance.log_path()}"]
    lines += [f"  {name}: XDP {mode}" for name, mode in d.ifaces.items()] or ["  no interface attached"]
    lines.append(f"  services {data['services']}, flows {data['flows']} (limit {data['flow_limit']})")
    lines.append(
        f"  fast path (XDP) packets: {data['xdp_forwarded']} forwarded, {data['xdp_passed']} passed up, "
        f"{data['xdp_dropped']} dropped"
    )
    events = ", ".join(f"{k} {v}" for k, v in sorted(data["first_path_events"].items())) or "none"
    lines.append(f"  first-packet path (NFQUEUE) packets: {data['first_path_packets']} ({events})")
    queue = data["first_path_queue"]
    lines.append(f"  first packets with no daemon: {data['no_daemon_first_packets']}")
    lines.append(f"  NFQUEUE {QUEUE_NUM}: {queue['waiting']} waiting of {queue['length']}, kernel drops: "
                 f"{queue['dropped_full']} full, {queue['dropped_undelivered']} undelivered")
    lines.append(f"  flows scheduled in XDP (mh): {data['xdp_scheduled']}, "
                 f"services scheduled in XDP: {data['kernel_hashed_services']}")
    lines += [f"    {name:<22} {n}" for name, n in data["xdp_reasons"].items() if n]
    return "\n".join(lines) + "\n"
