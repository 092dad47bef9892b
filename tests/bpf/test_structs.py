"""lb/datapath/structs.py must match what bcc compiled from bpf/lb_structs.h: sizes and field offsets."""

from __future__ import annotations

import ctypes

import pytest

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
