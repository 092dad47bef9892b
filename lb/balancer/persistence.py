"""Persistent services (ipvsadm -p [timeout] -M netmask): one client keeps one real across connections.

IPVS keeps a connection template per (client masked by the netmask, service) pointing at the real
the client was first sent to (ip_vs_core.c, ip_vs_sched_persist). A new connection from that client
reuses the template while it lives and restarts its timer; the template lives for the persistence
timeout after it was last used, and never expires while connections it placed are still open.

Here a template is (service id, client network) -> (expiry, real id), the expiry on the clock
bpf_ktime_get_ns() reads (CLOCK_MONOTONIC, Python's time.monotonic_ns()), because the XDP program
reads and writes the same templates (the `templates` map, bpf/lb_kern.c template_real() and
record_template(); their model in lb.rewrite.schedule states the key, expiry and liveness rules).
`TemplateStore` applies the refresh rules over four storage primitives; the dict-backed
`PersistenceTable` serves tests and experiments, the map-backed store in lb.datapath.templatemaps
serves the daemon, so a client placed by XDP and later by Python (or the reverse) stays on its real.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address
from typing import NamedTuple

from lb.rewrite.schedule import NS_PER_S, client_net, template_alive, template_expiry

__all__ = ["NS_PER_S", "PersistenceTable", "Template", "TemplateKey", "TemplateStore", "template_key"]


class TemplateKey(NamedTuple):
    """struct template_key: the service's id and the client's address masked by -M (host order).
    A tuple, so a whole-table read can be matched against plain (service id, net) pairs."""

    service_id: int
    client_net: int


class Template(NamedTuple):
    """struct persist_template: alive while now <= expires_ns; the real it pins clients to."""

    expires_ns: int
    real_id: int

    def alive(self, now_ns: int) -> bool:
        return template_alive(self.expires_ns, now_ns)  # as template_real() in bpf/lb_kern.c


def template_key(service_id: int, netmask: IPv4Address | int, client: IPv4Address | int) -> TemplateKey:
    return TemplateKey(service_id, client_net(client, netmask))


class TemplateStore(ABC):
    """The refresh rules, over storage a subclass provides (get/put/delete/items)."""

    @abstractmethod
    def get(self, key: TemplateKey) -> Template | None: ...

    @abstractmethod
    def put(self, key: TemplateKey, template: Template) -> None: ...

    @abstractmethod
    def delete(self, keys: Iterable[TemplateKey]) -> None: ...

    @abstractmethod
    def items(self) -> list[tuple[TemplateKey, Template]]: ...

    def lookup(self, key: TemplateKey, now_ns: int) -> int | None:
        """The real id this client network is pinned to, if its template is alive. Whether that
        real may take the flow is the caller's question (a template never sends a client to a real
        that is not available: the scheduler chooses, and `record` rewrites the template)."""
        template = self.get(key)
        if template is None or not template.alive(now_ns):
            return None
        return template.real_id

    def record(self, key: TemplateKey, real_id: int, now_ns: int, timeout_s: int) -> None:
        """A connection of this client network was placed on `real_id`: the template points there
        and its timer restarts (IPVS restarts it on every connection that uses the template)."""
        self.put(key, Template(template_expiry(now_ns, timeout_s), real_id))

    def touch(self, key: TemplateKey, real_id: int, until_ns: int) -> None:
        """A connection this template placed on `real_id` is still open: the template lives at
        least until `until_ns`. A template that now points elsewhere (it expired or its real went
        unavailable, and a new connection was scheduled afresh) is not kept alive by the old
        real's connections, as in IPVS, where they control the old, unreachable template."""
        self.touch_all({(key, real_id): until_ns})

    def touch_all(self, until: Mapping[tuple[TemplateKey, int], int]) -> None:
        """`touch` for many (template, real) pairs, over one read of the store when there are
        several: the daemon's sweep touches every client network with an open flow each tick."""
        current = self.snapshot() if len(until) > 1 else None
        for (key, real_id), until_ns in until.items():
            found = current.get(key) if current is not None else self.get(key)
            if found is None:
                continue
            expires_ns, found_real = found
            if found_real == real_id and expires_ns < until_ns:
                self.put(key, Template(until_ns, real_id))

    def snapshot(self) -> Mapping[tuple[int, int], tuple[int, int]]:
        """Every template at once: (service id, client net) -> (expires_ns, real id)."""
        return dict(self.items())

    def forget_real(self, real_id: int) -> None:
        """A real left its service or went down: its templates must not send clients back to it."""
        self.delete([k for k, t in self.items() if t.real_id == real_id])

    def forget_service(self, service_id: int) -> None:
        self.delete([k for k, _ in self.items() if k.service_id == service_id])

    def sweep(self, now_ns: int) -> int:
        """Drop templates past their time; returns how many went."""
        dead = [k for k, t in self.items() if not t.alive(now_ns)]
        self.delete(dead)
        return len(dead)

    def __len__(self) -> int:
        return len(self.items())


class PersistenceTable(TemplateStore):
    """Templates in a dict: the store of the pure Balancer (tests, experiments, replay)."""

    def __init__(self) -> None:
        self._templates: dict[TemplateKey, Template] = {}

    def get(self, key: TemplateKey) -> Template | None:
        return self._templates.get(key)

    def put(self, key: TemplateKey, template: Template) -> None:
        self._templates[key] = template

    def delete(self, keys: Iterable[TemplateKey]) -> None:
        for key in keys:
            self._templates.pop(key, None)

    def items(self) -> list[tuple[TemplateKey, Template]]:
        return list(self._templates.items())

    def __len__(self) -> int:
        return len(self._templates)
