"""Persistence templates in the `templates` map: the store of the daemon's Balancer.

The XDP program reads the same entries (template_real() in bpf/lb_kern.c) and writes them
(record_template()), so a client placed by XDP and later by the first-packet path, or the reverse,
stays on its real. The rules live in lb.balancer.persistence.TemplateStore; this module moves
entries in and out of the map, and does the whole-table passes (sweep, forgetting a real or a
service, the sweep's extensions) over one batched read as numpy arrays, the way the flow sweep
does (lb.daemon.sweep): the map holds up to MAX_TEMPLATES entries and the sweep runs every tick.
The map is an LRU hash: under pressure the kernel evicts the least recently used template, and
that client is scheduled afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address

import numpy as np

from lb.balancer.persistence import Template, TemplateKey, TemplateStore
from lb.datapath import structs as S
from lb.datapath.maps import DatapathMaps
from lb.datapath.records import dtype_of

MAP = "templates"
TEMPLATE_KEY = dtype_of(S.TemplateKeyC)  # client_net big-endian: reads as the host-order int
PERSIST_TEMPLATE = dtype_of(S.PersistTemplateC)


class MapTemplateStore(TemplateStore):
    """TemplateStore over one program's `templates` map (loaded or pinned)."""

    def __init__(self, maps: DatapathMaps) -> None:
        self._maps = maps

    def get(self, key: TemplateKey) -> Template | None:
        found = self._maps.get_template(key.service_id, IPv4Address(key.client_net))
        return None if found is None else Template(*found)

    def put(self, key: TemplateKey, template: Template) -> None:
        self._maps.set_template(key.service_id, IPv4Address(key.client_net), template.real_id, template.expires_ns)

    def delete(self, keys: Iterable[TemplateKey]) -> None:
        for key in keys:  # one syscall each; an entry the LRU evicted meanwhile is skipped
            self._maps.delete_template(key.service_id, IPv4Address(key.client_net))

    def items(self) -> list[tuple[TemplateKey, Template]]:
        return [(TemplateKey(*k), Template(*v)) for k, v in self.snapshot().items()]

    def __len__(self) -> int:
        return len(self._records()[0])

    # -- whole-table passes, vectorized (the same rules as TemplateStore's) ----------------------

    def sweep(self, now_ns: int) -> int:
        keys, values = self._records()
        return self._maps.delete_records(MAP, keys[values["expires_ns"] < np.uint64(now_ns)])

    def forget_real(self, real_id: int) -> None:
        keys, values = self._records()
        self._maps.delete_records(MAP, keys[values["real_id"] == real_id])

    def forget_service(self, service_id: int) -> None:
        keys, _ = self._records()
        self._maps.delete_records(MAP, keys[keys["service_id"] == service_id])

    def snapshot(self) -> Mapping[tuple[int, int], tuple[int, int]]:
        keys, values = self._records()
        return dict(zip(zip(keys["service_id"].tolist(), keys["client_net"].tolist(), strict=True),
                        zip(values["expires_ns"].tolist(), values["real_id"].tolist(), strict=True), strict=True))

    def _records(self) -> tuple[np.ndarray, np.ndarray]:
        """Every entry, in one batched read where the kernel does them: keys and values as
        record arrays, row i of one with row i of the other."""
        raw_keys, raw_values = self._maps.read_raw(MAP)
        return np.frombuffer(raw_keys, TEMPLATE_KEY), np.frombuffer(raw_values, PERSIST_TEMPLATE)
