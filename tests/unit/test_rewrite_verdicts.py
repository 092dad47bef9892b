"""lb.rewrite.verdicts mirrors the enums of bpf/lb_consts.h (and the structs' constants)."""

from __future__ import annotations

import re

from lb.datapath import structs as S
from lb.datapath.sources import source
from lb.rewrite import Reason, Verdict
from lb.sched.xdpkind import BUCKETS, SEQ_MAX, WALK_MAX, XdpKind
from lb.tables import SVC_F_DROP_MIDFLOW_MISS, SVC_F_FALLBACK, SVC_F_HASH_PORT, TcpSeen

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
        "SVC_F_HASH_PORT": SVC_F_HASH_PORT,
        "SVC_F_DROP_MIDFLOW_MISS": SVC_F_DROP_MIDFLOW_MISS,
        "SVC_F_FALLBACK": SVC_F_FALLBACK,
    }


def test_scheduler_kinds_match_the_header() -> None:
    assert _enum("SCHED_") == {k.name: k.value for k in XdpKind}


def test_scheduler_map_bounds_and_real_flags_match_the_header() -> None:
    defines = {m[1]: m[2] for m in re.finditer(r"#define ([A-Z_]+) ([^\s/]+)", CONSTS)}
    assert (defines["SEQ_MAX"], defines["BUCKET_BITS"], defines["BUCKETS"], defines["WALK_MAX"]) == (
        str(SEQ_MAX), str(BUCKETS.bit_length() - 1), "(1", str(WALK_MAX))
    assert int(defines["REAL_F_AVAILABLE"], 0) == S.REAL_F_AVAILABLE
