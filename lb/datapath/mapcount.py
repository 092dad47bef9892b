"""How many entries each map of the attached lbxdp program holds: what `make soak` watches for leaks.

The maps are found from the program attached to an interface (its map ids), not from pins: a daemon's
pins live in its own bpffs (`ip netns exec` gives each process its own /sys, see loader.py), so
another process cannot see them, while the attached program's maps are reachable by id from anywhere
as long as it stays attached, daemon or no daemon. That is also what `bpftool prog show` /
`bpftool map dump id N` would read, without needing bpftool.

What "entries" means depends on the map's type, so that a count can go back down when the work that
filled it is over:

- hash maps (hash, LRU hash, devmap hash): the keys present;
- plain arrays and devmaps: the slots in use (a value that is not all zeros; a devmap slot with a
  device), e.g. the `reals` slots of configured reals or the Maglev rows in use;
- per-CPU arrays hold counters and caches, one slot per index whatever happens: their entry count
  is their size (`fixed`), as `bpftool map dump` would count it. So do the plain arrays that hold
  counters (`COUNTER_ARRAYS`: connections per real, rr cursors): a slot stays non-zero after the
  work that set it, as a counter does.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from lb.datapath.loader import _MapInfo, _ProgInfo, attached_prog_id
from lb.datapath.mapaccess import MapError
from lb.datapath.maps import read_batched

# include/uapi/linux/bpf.h, enum bpf_map_type
_HASH_TYPES = {1: "hash", 5: "percpu_hash", 9: "lru_hash", 10: "lru_percpu_hash", 32: "devmap_hash"}
_ARRAY_TYPES = {2: "array", 14: "devmap"}
_FIXED_TYPES = {6: "percpu_array"}
COUNTER_ARRAYS = frozenset({"real_conns", "sched_cursors"})
_MAX_MAPS = 64
_BATCH = 8192


class MapCountError(RuntimeError):
    """The program or one of its maps could not be read; the message says which."""


@dataclass(frozen=True)
class MapCount:
    name: str
    kind: str  # the kernel's map type, e.g. "lru_hash"
    max_entries: int
    entries: int  # see the module docstring
    fixed: bool  # a per-CPU array: entries == max_entries, always


def map_counts(ifname: str) -> dict[str, MapCount]:
    """Entry counts of every map of the XDP program attached to `ifname` in this thread's network
    namespace (run it in the balancer's namespace, e.g. with testbed.in_netns_call)."""
    prog_id = attached_prog_id(ifname)
    if prog_id is None:
        raise MapCountError(f"no XDP program on {ifname}")
    lib = _libbpf()
    prog_fd = lib.bpf_prog_get_fd_by_id(ctypes.c_uint32(prog_id))
    if prog_fd < 0:
        raise MapCountError(f"program {prog_id}: {os.strerror(ctypes.get_errno())}")
    try:
        info = _ProgInfo()
        ids = (ctypes.c_uint32 * _MAX_MAPS)()
        info.nr_map_ids = len(ids)
        info.map_ids = ctypes.addressof(ids)
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if lib.bpf_obj_get_info_by_fd(prog_fd, ctypes.byref(info), ctypes.byref(size)) != 0:
            raise MapCountError(f"program {prog_id}: no info: {os.strerror(ctypes.get_errno())}")
        map_ids = list(ids[: min(info.nr_map_ids, len(ids))])
    finally:
        os.close(prog_fd)
    counts: dict[str, MapCount] = {}
    for map_id in map_ids:
        count = _count_map(lib, map_id)
        if count is not None:
            counts[count.name] = count
    return counts


def _count_map(lib: ctypes.CDLL, map_id: int) -> MapCount | None:
    fd = lib.bpf_map_get_fd_by_id(ctypes.c_uint32(map_id))
    if fd < 0:
        return None  # gone between the two calls
    try:
        info = _MapInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) != 0:
            raise MapCountError(f"map {map_id}: no info: {os.strerror(ctypes.get_errno())}")
        name = info.name.decode(errors="replace")
        if info.type in _FIXED_TYPES:
            return MapCount(name, _FIXED_TYPES[info.type], info.max_entries, info.max_entries, True)
        if info.type in _ARRAY_TYPES and name in COUNTER_ARRAYS:
            return MapCount(name, _ARRAY_TYPES[info.type], info.max_entries, info.max_entries, True)
        if info.type in _HASH_TYPES:
            keys, _ = _read_all(fd, info, name)
            return MapCount(name, _HASH_TYPES[info.type], info.max_entries, len(keys), False)
        if info.type == 14:  # devmap: no batched lookups; an empty slot's lookup fails (ENOENT)
            used = sum(1 for index in range(info.max_entries) if _devmap_has(lib, fd, index))
            return MapCount(name, "devmap", info.max_entries, used, False)
        if info.type in _ARRAY_TYPES:
            _, values = _read_all(fd, info, name)
            empty = bytes(info.value_size)
            used = sum(1 for v in values if v != empty)
            return MapCount(name, _ARRAY_TYPES[info.type], info.max_entries, used, False)
        return MapCount(name, f"type {info.type}", info.max_entries, info.max_entries, True)
    finally:
        os.close(fd)


def _devmap_has(lib: ctypes.CDLL, fd: int, index: int) -> bool:
    value = ctypes.c_uint32()
    return bool(lib.bpf_map_lookup_elem(fd, ctypes.byref(ctypes.c_uint32(index)), ctypes.byref(value)) == 0)


def _read_all(fd: int, info: _MapInfo, name: str) -> tuple[list[bytes], list[bytes]]:
    """Every key and value, in one batched pass (lb.datapath.maps.read_batched)."""
    ks, vs = info.key_size, info.value_size
    try:
        raw = read_batched(fd, ks, vs, name, chunk=max(1, min(_BATCH, info.max_entries)))
    except MapError as exc:
        raise MapCountError(str(exc)) from None
    if raw is None:
        raise MapCountError(f"{name}: the kernel does no batched lookups on this map")
    raw_k, raw_v = raw
    return ([raw_k[i * ks: (i + 1) * ks] for i in range(len(raw_k) // ks)],
            [raw_v[i * vs: (i + 1) * vs] for i in range(len(raw_v) // vs)])


_lib: ctypes.CDLL | None = None


def _libbpf() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        _lib = lib
    return _lib
