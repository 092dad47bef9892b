"""What a daemon leaves for its successor: configuration, the numbering the maps use, counters.

The flow table survives in the XDP program's maps; this file carries what the maps cannot: the
ipvsadm configuration, which service and real ids the flows refer to, health checks, the counts only
the daemon keeps, the attached interfaces, the table size, the policy for first packets while no
daemon runs and who decides first packets (--sched-in). Written atomically (rename) on every change, read once at start.

A wrong file is worse than none: ids that do not match the pinned maps would send old flows to the
wrong reals. So the file carries a format number, and `read` checks every field's type and raises
ValueError (one line) on anything else, and `mismatch` compares the ids with what the pinned maps
hold before the daemon trusts their flows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import lb
from lb.balancer.health import HealthCheck
from lb.config.table import ServiceTable
from lb.daemon import schedin
from lb.model import Protocol, RealKey, ServiceKey
from lb.tables import RealEntry, ServiceEntry

FORMAT = 1  # bump when a field changes meaning; a daemon refuses (and starts clean on) any other
MAX_BYTES = 64 << 20  # a state file larger than this is not one lbxdp wrote


@dataclass
class SavedState:
    table: ServiceTable = field(default_factory=ServiceTable)
    service_ids: dict[ServiceKey, int] = field(default_factory=dict)
    real_ids: dict[tuple[ServiceKey, RealKey], int] = field(default_factory=dict)
    health: dict[ServiceKey, HealthCheck] = field(default_factory=dict)
    conns: dict[int, int] = field(default_factory=dict)
    first_traffic: dict[int, list[int]] = field(default_factory=dict)
    ifaces: dict[str, str] = field(default_factory=dict)
    max_flows: int | None = None
    queue_bypass: bool = False  # fail-open (NFQUEUE --queue-bypass) while no daemon runs
    sched_in: str = schedin.XDP  # who decides first packets (lb.daemon.schedin)

    def to_json(self) -> str:
        real_ids: dict[str, dict[str, int]] = {}
        for (skey, rkey), rid in self.real_ids.items():
            real_ids.setdefault(service_text(skey), {})[str(rkey)] = rid
        return json.dumps(
            {
                "format": FORMAT,
                "lbxdp": lb.__version__,
                "table": self.table.snapshot(),
                "service_ids": {service_text(k): v for k, v in self.service_ids.items()},
                "real_ids": real_ids,
                "health": {service_text(k): v.to_dict() for k, v in self.health.items()},
                "conns": self.conns,
                "first_traffic": self.first_traffic,
                "ifaces": self.ifaces,
                "tunables": {"max_flows": self.max_flows},
                "queue_bypass": self.queue_bypass,
                "sched_in": self.sched_in,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SavedState:
        """The state in `text`; ValueError (one line) for anything lbxdp's to_json did not write."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("nested too deeply to be a state file") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"not JSON ({exc})") from None
        try:
            return cls._from_dict(_dict(data, "the state"))
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
            raise ValueError(f"malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> SavedState:
        version = data.get("format")
        if version != FORMAT or isinstance(version, bool):
            written_by = data.get("lbxdp")
            by = f" (written by lbxdp {written_by})" if isinstance(written_by, str) else ""
            raise ValueError(f"format {version!r}{by}, this lbxdp reads format {FORMAT}")
        if "table" not in data:
            raise ValueError("no service table")
        table = ServiceTable.from_dict(_dict(data["table"], "table"))  # ConfigError is a ValueError
        service_ids = {parse_service(_str(k, "service id key")): _id(v, "service id")
                       for k, v in _dict(data.get("service_ids", {}), "service_ids").items()}
        real_ids = {}
        for k, reals in _dict(data.get("real_ids", {}), "real_ids").items():
            for r, v in _dict(reals, "real_ids of a service").items():
                real_ids[(parse_service(_str(k, "real_ids key")), parse_real(_str(r, "real")))] = _id(v, "real id")
        health = {parse_service(_str(k, "health key")): _health(v)
                  for k, v in _dict(data.get("health", {}), "health").items()}
        conns = {_int_text(k, "conns key"): _count(v, "conns")
                 for k, v in _dict(data.get("conns", {}), "conns").items()}
        first_traffic = {}
        for k, v in _dict(data.get("first_traffic", {}), "first_traffic").items():
            pair = _list(v, "first_traffic")
            if len(pair) != 2:
                raise ValueError("first_traffic: not a [packets, bytes] pair")
            first_traffic[_int_text(k, "first_traffic key")] = [_count(n, "first_traffic") for n in pair]
        saved_ifaces = _dict(data.get("ifaces", {}), "ifaces")
        ifaces = {_str(k, "interface"): _str(v, "attach mode") for k, v in saved_ifaces.items()}
        max_flows = _dict(data.get("tunables", {}), "tunables").get("max_flows")
        if max_flows is not None:
            max_flows = _count(max_flows, "max_flows")
            if not 1 <= max_flows <= 1 << 32:
                raise ValueError(f"max_flows {max_flows} is out of range")
        queue_bypass = data.get("queue_bypass", False)
        if not isinstance(queue_bypass, bool):
            raise ValueError("queue_bypass: not true or false")
        sched_in = data.get("sched_in", schedin.XDP)  # a daemon before issue 13 saved none
        if sched_in not in schedin.CHOICES:
            raise ValueError("sched_in: not xdp or daemon")
        return cls(table, service_ids, real_ids, health, conns, first_traffic, ifaces, max_flows, queue_bypass,
                   sched_in)


def read(path: Path) -> SavedState | None:
    """The saved state, or None when there is none. Raises ValueError (one line naming the file)
    when it is unreadable, of another format, or malformed in any field."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        return SavedState.from_json(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError too
        raise ValueError(f"{path}: {_one_line(exc)}") from None


def write(path: Path, state: SavedState) -> None:
    """Replace the file atomically; it and its directory are root's alone (0600, 0700): the file
    names every real and health check of the balancer."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older .tmp left with other bits
        handle.write(state.to_json())
    os.replace(tmp, path)


def mismatch(state: SavedState | None, services: Mapping[ServiceKey, ServiceEntry],
             real_at: Callable[[int], RealEntry | None], reals_in_map: int) -> str | None:
    """Why the pinned maps (their `services`, a lookup of `reals` by id, and how many reals they
    hold) are not the ones `state` describes, or None when every id matches.

    Each saved service id must be the pinned `services` entry of its key, and each saved real id
    the pinned `reals` entry with the same address, port and forwarding; pinned maps with reals or
    services but no saved state cannot be matched at all; empty (fresh) maps match anything. A
    mismatch means the flows in the maps would be read with another numbering: the daemon must not
    adopt them."""
    if not services and not reals_in_map:
        return None  # fresh maps (nothing pinned): no flow to misdirect, the configuration comes back
    if state is None:
        return f"no saved state for pinned maps holding {len(services)} services and {reals_in_map} reals"
    configured = {(vs.service.key, rkey): real for vs in state.table for rkey, real in vs.reals.items()}
    for key, sid in state.service_ids.items():
        entry = services.get(key)
        if entry is None or entry.service_id != sid:
            return f"service {service_text(key)} has id {sid}, the pinned map {entry.service_id if entry else 'none'}"
    for (skey, rkey), rid in state.real_ids.items():
        real = configured.get((skey, rkey))
        pinned = real_at(rid)
        if real is None:
            return f"real {rkey} of {service_text(skey)} has an id but is not configured"
        wanted = (real.address, real.port, real.forwarding)
        if pinned is None or (pinned.address, pinned.port, pinned.forwarding) != wanted:
            where = f"{pinned.address}:{pinned.port} ({pinned.forwarding.name.lower()})" if pinned else "nothing"
            return f"real id {rid} is {rkey} ({real.forwarding.name.lower()}) here, {where} in the pinned map"
    return None


def service_text(key: ServiceKey) -> str:
    return f"{key.proto.name}:{key.vip}:{key.port}"


def parse_service(text: str | dict[str, Any]) -> ServiceKey:
    if isinstance(text, dict):
        return ServiceKey(Protocol[text["proto"]], IPv4Address(text["vip"]), int(text["port"]))
    proto, vip, port = text.split(":")
    return ServiceKey(Protocol[proto], IPv4Address(vip), _port(port))


def parse_real(text: str) -> RealKey:
    address, port = text.rsplit(":", 1)
    return RealKey(IPv4Address(address), _port(port))


# -- field checks: each raises ValueError naming the field -------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what}: not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: not a list")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not a string")
    return value


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what}: not a count")
    return value


def _id(value: object, what: str) -> int:
    number = _count(value, what)
    if number >= 1 << 32:
        raise ValueError(f"{what} {number} is out of range")
    return number


def _int_text(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ValueError(f"{what} {text!r}: not an id")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ValueError(f"port {text!r}: not a port")
    return int(text)


_HEALTH_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "interval": (int, float), "timeout": (int, float), "rise": (int,), "fall": (int,),
    "path": (str,), "expect": (int,), "port": (int, type(None)), "dead_flows": (str,),
}


def _health(value: object) -> HealthCheck:
    data = _dict(value, "health check")
    for name, item in data.items():
        types = _HEALTH_TYPES.get(name)
        if types is None:
            raise ValueError(f"health check: unknown field {name!r}")
        if not isinstance(item, types) or isinstance(item, bool):
            raise ValueError(f"health check {name}: wrong type")
    return HealthCheck.from_dict(data)
