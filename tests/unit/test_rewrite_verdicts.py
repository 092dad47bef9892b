"""lb.rewrite.verdicts mirrors the enums of bpf/lb_consts.h (and the structs' constants)."""

from __future__ import annotations

import re

from lb.datapath.sources import source
from lb.rewrite import Reason, Verdict
from lb.tables import SVC_F_DROP_MIDFLOW_MISS, SVC_F_HASH_IN_KERNEL, SVC_F_HASH_PORT, SVC_RING_SHIFT, TcpSeen

CONSTS = source("lb_consts.h").read_text()


def _enum(prefix: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(rf"\b{prefix}([A-Z0-9_]+)\s*=\s*(\d+)", CONSTS)}


def test_reason_enum_matches_the_header() -> None:
    header = _enum("REASON_")
    assert header.pop("MAX") == len(Reason)
    assert header == {r.name: r.value for r in Reason}


def test_tcp_seen_matches_the_header() -> None:
    assert _enum("SEEN_") == {f.name: f.value for f in TcpSeen if f.value}


def test_every_reason_names_its_verdict() -> None:
    assert {r.verdict for r in Reason} == {Verdict.PASS, Verdict.DROP, Verdict.TX, Verdict.REDIRECT, Verdict.ABORTED}


def test_service_flags_match_the_header() -> None:
    defines = {m[1]: int(m[2], 0) for m in re.finditer(r"#define (SVC_[A-Z_]+) (0x[0-9a-f]+|\d+)", CONSTS)}
    assert defines == {
        "SVC_F_HASH_IN_KERNEL": SVC_F_HASH_IN_KERNEL,
        "SVC_F_HASH_PORT": SVC_F_HASH_PORT,
        "SVC_F_DROP_MIDFLOW_MISS": SVC_F_DROP_MIDFLOW_MISS,
        "SVC_RING_SHIFT": SVC_RING_SHIFT,
    }
