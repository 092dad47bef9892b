"""Persistent services (ipvsadm -p [timeout] -M netmask): one client keeps one real across connections.

IPVS keeps a connection template per (client masked by the netmask, service) pointing at the real
the client was first sent to (ip_vs_core.c, ip_vs_sched_persist). A new connection from that client
reuses the template while it lives; the template lives for the persistence timeout after it was last
used, and never expires while connections it placed are still open. The same rules here, in pure
Python, driven by the daemon's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.model import RealKey, Service, ServiceKey


@dataclass(frozen=True)
class TemplateKey:
    service: ServiceKey
    client_net: IPv4Address


@dataclass
class Template:
    real: RealKey
    expires_at: float


class PersistenceTable:
    """Templates for every persistent service of one daemon."""

    def __init__(self) -> None:
        self._templates: dict[TemplateKey, Template] = {}

    @staticmethod
    def key_for(service: Service, client: IPv4Address) -> TemplateKey:
        return TemplateKey(service.key, IPv4Address(int(client) & int(service.netmask)))

    def lookup(self, service: Service, client: IPv4Address, now: float) -> RealKey | None:
        """The real this client is pinned to, if its template is still alive."""
        template = self._templates.get(self.key_for(service, client))
        if template is None or template.expires_at < now:
            return None
        return template.real

    def record(self, service: Service, client: IPv4Address, real: RealKey, now: float) -> None:
        """A connection from `client` was placed on `real`: (re)start the template's timer."""
        assert service.persistence is not None
        self._templates[self.key_for(service, client)] = Template(real, now + service.persistence)

    def touch(self, service: Service, client: IPv4Address, now: float) -> None:
        """A connection the template placed is still open: it keeps the template alive."""
        template = self._templates.get(self.key_for(service, client))
        if template is not None and service.persistence is not None:
            template.expires_at = max(template.expires_at, now + service.persistence)

    def forget_real(self, service: ServiceKey, real: RealKey) -> None:
        """A real left the service: its templates must not send clients back to it."""
        for key in [k for k, t in self._templates.items() if k.service == service and t.real == real]:
            del self._templates[key]

    def forget_service(self, service: ServiceKey) -> None:
        for key in [k for k in self._templates if k.service == service]:
            del self._templates[key]

    def sweep(self, now: float) -> int:
        """Drop templates past their time; returns how many went."""
        dead = [k for k, t in self._templates.items() if t.expires_at < now]
        for key in dead:
            del self._templates[key]
        return len(dead)

    def __len__(self) -> int:
        return len(self._templates)

    def items(self) -> list[tuple[TemplateKey, Template]]:
        return list(self._templates.items())
