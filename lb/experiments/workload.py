"""Synthetic flows for the experiments: Poisson arrivals, Pareto (heavy-tailed) sizes and durations.

Internet flow sizes and lifetimes are heavy-tailed: most flows are mice and a few elephants carry
most bytes (Crovella & Bestavros, "Self-similarity in World Wide Web traffic", 1997; Paxson & Floyd,
"Wide area traffic: the failure of Poisson modeling", 1995, who keep Poisson for session arrivals).
So arrivals are a Poisson process and sizes/durations Pareto with shape alpha > 1 (finite mean).
Every flow has its own client port; clients are drawn from a fixed pool of addresses, like many
connections from fewer hosts. Same seed, same flows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.model import FlowKey, Protocol

VIP = IPv4Address("10.0.0.100")
VPORT = 80
CLIENT_BASE = int(IPv4Address("10.64.0.0"))  # clients: 10.64.0.1 …  (10/8 only, per the team brief)
DEST_BASE = int(IPv4Address("10.128.0.0"))  # per-flow destinations when `spread_daddr` (dh's use case)
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999  # Linux's default ip_local_port_range


@dataclass(frozen=True)
class WorkloadParams:
    """What to generate. `*_alpha` None makes that quantity constant (equal to its mean)."""

    flows: int
    arrival_rate: float = 100.0  # flows per second
    duration_mean: float = 5.0  # seconds
    duration_alpha: float | None = 1.5
    size_mean: float = 50_000.0  # bytes
    size_alpha: float | None = 1.3
    clients: int = 5000
    spread_daddr: bool = False  # give each flow its own destination address (cache-cluster traffic)

    def __post_init__(self) -> None:
        if self.flows < 1 or self.clients < 1 or self.arrival_rate <= 0:
            raise ValueError("a workload needs at least one flow, one client and a positive arrival rate")
        for alpha in (self.duration_alpha, self.size_alpha):
            if alpha is not None and alpha <= 1.0:
                raise ValueError(f"Pareto shape {alpha} has no finite mean; use alpha > 1")


@dataclass(frozen=True)
class SimFlow:
    """One simulated connection: who, when it opens, how long it lives, how many bytes it moves."""

    key: FlowKey
    start: float
    duration: float
    size: int

    @property
    def end(self) -> float:
        return self.start + self.duration


def pareto(rng: random.Random, mean: float, alpha: float | None) -> float:
    """A Pareto draw with the given mean: scale x_m = mean·(alpha−1)/alpha, so E[X] = mean."""
    if alpha is None:
        return mean
    return mean * (alpha - 1.0) / alpha * rng.paretovariate(alpha)


def client_address(index: int) -> IPv4Address:
    return IPv4Address(CLIENT_BASE + 1 + index)


def generate(params: WorkloadParams, seed: int) -> list[SimFlow]:
    """`params.flows` flows in start order; deterministic for a given seed."""
    rng = random.Random(seed)
    next_port: dict[int, int] = {}
    flows: list[SimFlow] = []
    now = 0.0
    for index in range(params.flows):
        now += rng.expovariate(params.arrival_rate)
        client = rng.randrange(params.clients)
        port = next_port.get(client)
        if port is None:
            port = rng.randint(EPHEMERAL_LOW, EPHEMERAL_HIGH)
        # Linux hands out ports sequentially from a random start; wrap inside the range.
        next_port[client] = EPHEMERAL_LOW + (port + 1 - EPHEMERAL_LOW) % (EPHEMERAL_HIGH - EPHEMERAL_LOW + 1)
        daddr = IPv4Address(DEST_BASE + 1 + index) if params.spread_daddr else VIP
        key = FlowKey(Protocol.TCP, client_address(client), port, daddr, VPORT)
        duration = pareto(rng, params.duration_mean, params.duration_alpha)
        size = max(1, round(pareto(rng, params.size_mean, params.size_alpha)))
        flows.append(SimFlow(key, now, duration, size))
    return flows


def distinct_keys(count: int, seed: int, *, spread_daddr: bool = True) -> list[FlowKey]:
    """`count` flows from `count` different clients (and destinations): for mapping studies.

    Hash schedulers key on the client address by default (ip_vs_sh.c, ip_vs_mh.c) and dh on the
    destination (ip_vs_dh.c), so a mapping study needs both to vary, or it measures duplicates.
    """
    rng = random.Random(seed)
    indices = rng.sample(range(1 << 20), count)  # distinct addresses spread over 10.64.0.0/12
    keys = []
    for n, index in enumerate(indices):
        daddr = IPv4Address(DEST_BASE + 1 + n) if spread_daddr else VIP
        sport = rng.randint(EPHEMERAL_LOW, EPHEMERAL_HIGH)
        keys.append(FlowKey(Protocol.TCP, client_address(index), sport, daddr, VPORT))
    return keys
