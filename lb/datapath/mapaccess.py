"""Access to one program's BPF maps by fd: the plain bpf(2) map commands (via libbcc) that each
concern's part is written with (lb.datapath.maps for the flow tables, servicemaps, ringmaps,
countermaps).

The same fds serve a freshly loaded program (`from_bpf`) and a program whose maps are pinned
(`open_pinned`, e.g. a CLI inspecting a running daemon). Entries are ctypes values of the mirror in
lb.datapath.structs.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from bcc.libbcc import lib as _lib
from bcc.utils import get_possible_cpus

from lb.datapath import structs as S
from lb.tables import Traffic


class MapError(RuntimeError):
    """A map operation the kernel refused; the message names the map, the key and the errno."""


class MapAccess:
    """The fds of one loaded (or pinned) program's maps, and the map commands over them."""

    def __init__(self, fds: Mapping[str, int], max_reals: int, max_tx_ports: int) -> None:
        missing = set(S.MAP_TYPES) - set(fds)
        if missing:
            raise MapError(f"maps missing: {', '.join(sorted(missing))}")
        self._fds = dict(fds)
        self.max_reals = max_reals
        self.max_tx_ports = max_tx_ports
        self.max_hashed_services = 16  # rows of hash_rings (loader sets its Tunables' figure)
        self._ncpus = len(get_possible_cpus())

    @classmethod
    def from_bpf(cls, bpf: Any, max_reals: int, max_tx_ports: int) -> Self:
        return cls({name: bpf[name.encode()].map_fd for name in S.MAP_TYPES}, max_reals, max_tx_ports)

    @classmethod
    def open_pinned(cls, pin_dir: Path, max_reals: int = 4096, max_tx_ports: int = 4096) -> Self:
        fds = {}
        for name in S.MAP_TYPES:
            fd = _lib.bpf_obj_get(str(pin_dir / name).encode())
            if fd < 0:
                raise MapError(f"cannot open pinned map {pin_dir / name}: {os.strerror(ctypes.get_errno())}")
            fds[name] = fd
        return cls(fds, max_reals, max_tx_ports)

    def _update(self, name: str, key: Any, value: Any) -> None:
        if _lib.bpf_update_elem(self._fds[name], ctypes.byref(key), ctypes.byref(value), 0) != 0:
            raise MapError(f"{name}: update failed: {os.strerror(ctypes.get_errno())}")

    def _update_raw(self, name: str, key: bytes, value: bytes) -> None:
        if _lib.bpf_update_elem(self._fds[name], key, value, 0) != 0:
            raise MapError(f"{name}: update failed: {os.strerror(ctypes.get_errno())}")

    def _delete(self, name: str, key: Any) -> None:
        self._delete_raw(name, ctypes.byref(key))

    def _delete_raw(self, name: str, key: Any) -> None:
        if _lib.bpf_delete_elem(self._fds[name], key) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:  # already gone (an LRU may have evicted it)
                raise MapError(f"{name}: delete failed: {os.strerror(err)}")

    def _lookup(self, name: str, key: Any) -> Any:
        value = S.MAP_TYPES[name][1]()
        if _lib.bpf_lookup_elem(self._fds[name], ctypes.byref(key), ctypes.byref(value)) != 0:
            return None
        return value

    def _items(self, name: str) -> Iterator[tuple[Any, Any]]:
        key_type, _ = S.MAP_TYPES[name]
        keys = []
        key, next_key = None, key_type()
        while _lib.bpf_get_next_key(self._fds[name], ctypes.byref(key) if key is not None else None,
                                    ctypes.byref(next_key)) == 0:
            keys.append(next_key)
            key, next_key = next_key, key_type()
        for key in keys:
            value = self._lookup(name, key)
            if value is not None:
                yield key, value

    def _percpu(self, name: str, index: int) -> list[Any]:
        leaf: Any = S.MAP_TYPES[name][1]  # a ctypes type: `leaf * n` is its array type
        values = (leaf * self._ncpus)()
        if _lib.bpf_lookup_elem(self._fds[name], ctypes.byref(ctypes.c_uint32(index)), ctypes.byref(values)) != 0:
            raise MapError(f"{name}: lookup of {index} failed: {os.strerror(ctypes.get_errno())}")
        return list(values)  # ints for a u64 leaf, struct copies for a struct leaf

    def _set_percpu(self, name: str, index: int, leaf: Any) -> None:
        self._update(name, ctypes.c_uint32(index), (leaf * self._ncpus)())

    def _traffic(self, name: str, index: int) -> Traffic:
        total = Traffic()
        for c in self._percpu(name, index):
            total = total + Traffic(c.in_packets, c.in_bytes, c.out_packets, c.out_bytes)
        return total
