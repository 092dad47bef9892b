"""The Python forms of the shared structs are derived from the one ctypes mirror (lb.datapath.structs),
and its constants agree with bpf/lb_consts.h. tests/bpf/test_structs.py checks the mirror itself
against the compiled program (BTF)."""

from __future__ import annotations

import ctypes
import re
import sys

import numpy as np
import pytest

from lb.datapath import records as R, structs as S
from lb.datapath.sources import source
from lb.sched import hashing, mh
from lb.tables import RING_SIZE

CONSTS = source("lb_consts.h").read_text()
FLOW_STRUCTS = [S.FlowKeyC, S.FlowStateC, S.ReverseStateC]


def _define(name: str) -> int:
    match = re.search(rf"#define {name} (0x[0-9a-fA-F]+|\d+)u?\b", CONSTS)
    assert match, name
    return int(match[1], 0)


def test_ring_constants_match_the_header() -> None:
    assert _define("MH_RING_SIZE") == S.MH_RING_SIZE == RING_SIZE == mh.DEFAULT_M
    assert ctypes.sizeof(S.MhRingC) == 4 * S.MH_RING_SIZE
    assert _define("MH_SEED1") == hashing.MH_SEED1


def test_forwarding_enum_matches_the_header() -> None:
    enum = {m[1]: int(m[2]) for m in re.finditer(r"\b(FWD_[A-Z]+) = (\d+)", CONSTS)}
    assert enum == {"FWD_NONE": S.FWD_NONE, "FWD_MASQ": S.FWD_MASQ, "FWD_ROUTE": S.FWD_ROUTE,
                    "FWD_TUNNEL": S.FWD_TUNNEL}


@pytest.mark.parametrize("cls", FLOW_STRUCTS, ids=lambda c: c.__name__)
def test_dtype_has_the_mirror_layout(cls: type[ctypes.Structure]) -> None:
    dtype = R.dtype_of(cls)
    assert dtype.itemsize == ctypes.sizeof(cls)
    assert [(f.name, f.offset, f.size) for f in S.fields(cls)] == [
        (name, dtype.fields[name][1], dtype.fields[name][0].itemsize) for name in dtype.names
    ]


@pytest.mark.parametrize("cls", FLOW_STRUCTS, ids=lambda c: c.__name__)
def test_struct_format_and_dtype_read_what_ctypes_wrote(cls: type[ctypes.Structure]) -> None:
    # distinct bytes in every field, so a field read at a wrong offset or order reads a wrong value
    value = cls.from_buffer_copy(bytes(range(1, ctypes.sizeof(cls) + 1)))
    raw = bytes(value)
    fmt = S.struct_format(cls)
    assert fmt.size == len(raw)
    unpacked = list(fmt.unpack(raw))
    row = np.frombuffer(raw, R.dtype_of(cls))[0]
    for f in S.fields(cls):
        if f.padding:
            continue
        mine = getattr(value, f.name)
        got = unpacked.pop(0)
        field_bytes = raw[f.offset:f.offset + f.size]
        if isinstance(got, bytes):  # network-order bytes of a struct mixing byte orders
            assert got == field_bytes, f.name
        elif f.network_order:
            assert got == int.from_bytes(field_bytes, "big"), f.name
        else:
            assert got == mine, f.name
        expected = int.from_bytes(field_bytes, "big" if f.network_order else sys.byteorder)
        assert int(row[f.name]) == expected, f.name
    assert unpacked == []


def test_derived_forms_are_the_ones_in_use() -> None:
    from lb.datapath import maps

    assert maps._FLOW_KEY.format == S.struct_format(S.FlowKeyC).format == "!IIHHB3x"
    assert maps._FLOW_STATE.format == "=QIIII" and maps._REVERSE_STATE.format == "=Q4s2s2xIIII"
    assert tuple(R.dtype_of(c) for c in FLOW_STRUCTS) == (R.FLOW_KEY, R.FLOW_STATE, R.REVERSE_STATE)
