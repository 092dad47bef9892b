"""lb/datapath/structs.py must match what clang compiled from bpf/lb_structs.h: sizes and field offsets,
as bcc describes the maps and as the program's BTF states them (the layout clang actually chose)."""

from __future__ import annotations

import ctypes

import pytest
from btf import Layout, map_layouts

from lb.datapath import structs as S

pytestmark = [pytest.mark.root, pytest.mark.bpf]


def _layout(cls: type) -> tuple[int, list[tuple[str, int, int]]]:
    fields = getattr(cls, "_fields_", [])
    return ctypes.sizeof(cls), [(f[0], getattr(cls, f[0]).offset, getattr(cls, f[0]).size) for f in fields]


@pytest.mark.parametrize("name", sorted(S.MAP_TYPES))
def test_mirror_matches_bcc(datapath, name: str) -> None:
    table = datapath.bpf[name.encode()]
    key_cls, leaf_cls = S.MAP_TYPES[name]
    bcc_leaf = getattr(table, "sLeaf", table.Leaf)  # per-CPU tables keep the single-CPU leaf there
    assert _layout(key_cls) == _layout(table.Key), f"{name} key"
    assert _layout(leaf_cls) == _layout(bcc_leaf), f"{name} value"


def test_every_map_is_mirrored(datapath) -> None:
    # a map added to lb_maps.h without a mirror would be invisible to the writer
    assert set(S.MAP_TYPES) == {t.decode() for t in datapath.bpf.tables}


def _mirror(cls: type) -> Layout:
    if not hasattr(cls, "_fields_"):
        return Layout(ctypes.sizeof(cls), ())
    return Layout(ctypes.sizeof(cls), tuple((f.name, f.offset, f.size) for f in S.fields(cls)))


@pytest.mark.parametrize("name", sorted(S.MAP_TYPES))
def test_mirror_matches_btf(datapath, name: str) -> None:
    # every field's offset and size as clang laid it out, read back from the loaded program's BTF
    key_cls, value_cls = S.MAP_TYPES[name]
    key_size, value_size, key, value = map_layouts(datapath.bpf[name.encode()].map_fd)
    assert (key_size, value_size) == (ctypes.sizeof(key_cls), ctypes.sizeof(value_cls)), f"{name} sizes"
    if name == "tx_ports":  # a devmap: bcc creates it without BTF, and its key and value are ints
        assert key is None and value is None
        return
    assert _mirror(key_cls) == key, f"{name} key"
    assert _mirror(value_cls) == value, f"{name} value"
