"""Persistence templates in the `templates` map: the store of the daemon's Balancer.

The XDP program reads the same entries (template_real() in bpf/lb_kern.c) and writes them
(record_template()), so a client placed by XDP and later by the first-packet path, or the reverse,
stays on its real. The rules live in lb.balancer.persistence.TemplateStore; this module only moves
entries in and out of the map. The map is an LRU hash of MAX_TEMPLATES entries: under pressure the
kernel evicts the least recently used template, and that client is scheduled afresh.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from ipaddress import IPv4Address

from lb.balancer.persistence import Template, TemplateKey, TemplateStore
from lb.datapath import structs as S
from lb.datapath.maps import DatapathMaps

_KEY_SIZE = ctypes.sizeof(S.TemplateKeyC)
_VALUE_SIZE = ctypes.sizeof(S.PersistTemplateC)


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
        """Every entry, in one batched read where the kernel does them (up to MAX_TEMPLATES:
        a sweep reads them all each tick)."""
        raw_keys, raw_values = self._maps.read_raw("templates")
        out = []
        for i in range(len(raw_keys) // _KEY_SIZE):
            k = S.TemplateKeyC.from_buffer_copy(raw_keys, i * _KEY_SIZE)
            v = S.PersistTemplateC.from_buffer_copy(raw_values, i * _VALUE_SIZE)
            out.append((TemplateKey(k.service_id, int(S.address(k.client_net))), Template(v.expires_ns, v.real_id)))
        return out
