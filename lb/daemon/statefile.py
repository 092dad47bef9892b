"""What a daemon leaves for its successor: configuration, the numbering the maps use, counters.

The flow table survives in the XDP program's maps; this file carries what the maps cannot: the
ipvsadm configuration, which service and real ids the flows refer to, health checks, the counts only
the daemon keeps, the attached interfaces and the table size. Written atomically (rename) on every
change, read once at start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from lb.config.table import ServiceTable
from lb.daemon.health import HealthCheck
from lb.model import Protocol, RealKey, ServiceKey


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

    def to_json(self) -> str:
        real_ids: dict[str, dict[str, int]] = {}
        for (skey, rkey), rid in self.real_ids.items():
            real_ids.setdefault(service_text(skey), {})[str(rkey)] = rid
        return json.dumps(
            {
                "table": self.table.snapshot(),
                "service_ids": {service_text(k): v for k, v in self.service_ids.items()},
                "real_ids": real_ids,
                "health": {service_text(k): v.to_dict() for k, v in self.health.items()},
                "conns": self.conns,
                "first_traffic": self.first_traffic,
                "ifaces": self.ifaces,
                "tunables": {"max_flows": self.max_flows},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SavedState:
        data = json.loads(text)
        return cls(
            table=ServiceTable.from_dict(data["table"]),
            service_ids={parse_service(k): v for k, v in data.get("service_ids", {}).items()},
            real_ids={
                (parse_service(k), parse_real(r)): v for k, reals in data.get("real_ids", {}).items() for r, v in reals.items()
            },
            health={parse_service(k): HealthCheck.from_dict(v) for k, v in data.get("health", {}).items()},
            conns={int(k): v for k, v in data.get("conns", {}).items()},
            first_traffic={int(k): list(v) for k, v in data.get("first_traffic", {}).items()},
            ifaces=dict(data.get("ifaces", {})),
            max_flows=data.get("tunables", {}).get("max_flows"),
        )


def read(path: Path) -> SavedState | None:
    """The saved state, or None when there is none. Raises ValueError when it is unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return SavedState.from_json(text)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def write(path: Path, state: SavedState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def service_text(key: ServiceKey) -> str:
    return f"{key.proto.name}:{key.vip}:{key.port}"


def parse_service(text: str | dict[str, Any]) -> ServiceKey:
    if isinstance(text, dict):
        return ServiceKey(Protocol[text["proto"]], IPv4Address(text["vip"]), int(text["port"]))
    proto, vip, port = text.split(":")
    return ServiceKey(Protocol[proto], IPv4Address(vip), int(port))


def parse_real(text: str) -> RealKey:
    address, port = text.rsplit(":", 1)
    return RealKey(IPv4Address(address), int(port))
