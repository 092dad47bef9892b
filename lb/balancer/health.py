"""Health of real servers from heartbeats: keepalived's rise/fall counting, without the probing itself.

A check (TCP connect, or HTTP GET with an expected status) runs every `interval` seconds with a
`timeout`; `fall` consecutive failures take a real out of scheduling, `rise` consecutive successes
bring it back (keepalived's knobs). The probes live in lb.datapath.probes; this module only decides.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E", bound=enum.Enum)


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


# Bounds of a check (issue 14). A probe every 0.1 s already costs a real a connection per 100 ms
# per balancer; an hour between probes is as slow as a check can be and still be called one. The
# timeout is at least 50 ms (a LAN round trip with room) and at most the interval, so probes of one
# real never overlap. rise/fall past 100 would take minutes to act even at the shortest interval.
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
MIN_TIMEOUT = 0.05
MAX_COUNT = 100
MAX_PATH = 1024


@dataclass(frozen=True)
class HealthCheck:
    """How one service's reals are checked. Validated on construction, whatever built it: the CLI,
    a rules file, state.json or the control socket's JSON (`from_dict`), so a value that passes
    here is finite, in range and of the right type, and the path is safe to put in a request line."""

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
        if not isinstance(self.kind, CheckKind):
            raise ValueError(f"health check kind must be one of {_choices(CheckKind)}")
        if not isinstance(self.dead_flows, DeadFlows):
            raise ValueError(f"health check dead_flows must be one of {_choices(DeadFlows)}")
        for name in ("interval", "timeout"):
            value = getattr(self, name)
            if not _is_real(value):
                raise ValueError(f"health check {name} must be a number of seconds, not {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"health check {name} must be a finite number of seconds, not {value}")
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("health check interval and timeout must be positive "
                             f"(interval {MIN_INTERVAL:g}..{MAX_INTERVAL:g} s, timeout {MIN_TIMEOUT:g} s..interval)")
        if not MIN_INTERVAL <= self.interval <= MAX_INTERVAL:
            bounds = f"{MIN_INTERVAL:g}..{MAX_INTERVAL:g} s"
            raise ValueError(f"health check interval {_fmt(self.interval)} is out of range ({bounds})")
        if self.timeout < MIN_TIMEOUT:
            raise ValueError(f"health check timeout {_fmt(self.timeout)} is too short (at least {MIN_TIMEOUT:g} s)")
        if self.timeout > self.interval:
            raise ValueError("health check timeout must not exceed its interval")
        for name in ("rise", "fall"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"health check {name} must be a whole number, not {type(value).__name__}")
        if not (1 <= self.rise <= MAX_COUNT and 1 <= self.fall <= MAX_COUNT):
            raise ValueError(f"health check rise and fall must be at least 1 and at most {MAX_COUNT}")
        if not _is_int(self.expect):
            raise ValueError(f"health check expect must be an HTTP status, not {type(self.expect).__name__}")
        if not 100 <= self.expect <= 599:
            raise ValueError(f"health check expect {_fmt(self.expect)} is no HTTP status (100..599)")
        if self.port is not None:
            if not _is_int(self.port):
                raise ValueError(f"health check port must be a whole number, not {type(self.port).__name__}")
            if not 1 <= self.port <= 65535:
                raise ValueError(f"health check port {_fmt(self.port)} is out of range (1..65535)")
        check_path(self.path)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value, "interval": self.interval, "timeout": self.timeout, "rise": self.rise,
            "fall": self.fall, "path": self.path, "expect": self.expect, "port": self.port,
            "dead_flows": self.dead_flows.value,
        }

    @classmethod
    def from_dict(cls, data: object) -> HealthCheck:
        """The inverse of `to_dict`. The daemon gets this from the control socket: anything that is not
        a valid check is a ValueError in one line, never a TypeError or KeyError."""
        if not isinstance(data, dict):
            raise ValueError(f"health check must be a JSON object, not {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise ValueError(f"health check has unknown field(s) {', '.join(unknown)[:200]}")
        values = dict(data)
        values["kind"] = _enum(CheckKind, values.get("kind", "none"), "kind")
        values["dead_flows"] = _enum(DeadFlows, values.get("dead_flows", "expire"), "dead_flows")
        return cls(**values)


_FIELDS = frozenset(HealthCheck.__dataclass_fields__)


def check_path(path: object) -> None:
    """The HTTP path goes into the probe's request line (`GET <path> HTTP/1.0`): it must be a
    request-target of printable ASCII without spaces (RFC 9112 §3.2), or a path with CR LF could
    write headers of its own into the request, and a space would end the target early."""
    if not isinstance(path, str):
        raise ValueError(f"health check path must be a string, not {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError("health check path must start with /")
    if len(path) > MAX_PATH:
        raise ValueError(f"health check path is longer than {MAX_PATH} characters")
    if not all("!" <= c <= "~" for c in path):
        raise ValueError("health check path must be printable ASCII without spaces or control characters "
                         "(percent-encode others, e.g. %20)")


def _fmt(value: float) -> str:
    """A number as a message shows it: floats as %g, ints cut short (JSON may carry 10**400)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 20 else text[:20] + "…"


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(kind: type[enum.Enum]) -> str:
    return ", ".join(str(m.value) for m in kind)


def _enum(kind: type[E], value: object, name: str) -> E:
    for member in kind:
        if member.value == value and isinstance(value, str):
            return member
    raise ValueError(f"health check {name} must be one of {_choices(kind)}")


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
