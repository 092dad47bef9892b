"""Health of real servers from heartbeats: keepalived's rise/fall counting, without the probing itself.

A check (TCP connect, or HTTP GET with an expected status) runs every `interval` seconds with a
`timeout`; `fall` consecutive failures take a real out of scheduling, `rise` consecutive successes
bring it back (keepalived's knobs). The probes live in lb.datapath.probes; this module only decides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CheckKind(enum.Enum):
    NONE = "none"
    TCP = "tcp"
    HTTP = "http"


class DeadFlows(enum.Enum):
    """What happens to the established flows of a real that went down or was deleted.

    EXPIRE (the default) removes them so clients reconnect and land on a live real, as IPVS's
    expire_nodest_conn=1; KEEP leaves them in place until they end by themselves.
    """

    EXPIRE = "expire"
    KEEP = "keep"


@dataclass(frozen=True)
class HealthCheck:
    kind: CheckKind = CheckKind.NONE
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 3
    path: str = "/"
    expect: int = 200
    port: int | None = None  # None: the real's own port
    dead_flows: DeadFlows = DeadFlows.EXPIRE

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("health check interval and timeout must be positive")
        if self.timeout > self.interval:
            raise ValueError("health check timeout must not exceed its interval")
        if self.rise < 1 or self.fall < 1:
            raise ValueError("health check rise and fall must be at least 1")
        if not self.path.startswith("/"):
            raise ValueError("health check path must start with /")

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value, "interval": self.interval, "timeout": self.timeout, "rise": self.rise,
            "fall": self.fall, "path": self.path, "expect": self.expect, "port": self.port,
            "dead_flows": self.dead_flows.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HealthCheck:
        values = dict(data)
        values["kind"] = CheckKind(values.get("kind", "none"))
        values["dead_flows"] = DeadFlows(values.get("dead_flows", "expire"))
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class HealthState:
    """Consecutive results of one real's check. A real starts up: a fresh real takes traffic at once
    (as IPVS with keepalived's default), and `fall` failures are needed to take it out."""

    up: bool = True
    successes: int = 0
    failures: int = 0
    last_result: str = "not checked"

    def record(self, ok: bool, detail: str, check: HealthCheck) -> bool:
        """Count one probe result; returns True when the real changed between up and down."""
        self.last_result = detail
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.up and self.successes >= check.rise:
                self.up = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.up and self.failures >= check.fall:
                self.up = False
                return True
        return False
