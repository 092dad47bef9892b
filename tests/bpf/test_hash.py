"""The hashes of bpf/lb_hash.h against their Python twins (lb.sched.hashing, lb.sched.mh): each runs in a
probe program of its own (tests/bpf/hash_probe.c, BPF_PROG_RUN) on pinned values and on random ones. The
schedulers in XDP (tests/bpf/test_hashsched_xdp.py) rest on these being equal bit for bit."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from lb.datapath import progrun, sources
from lb.sched.hashing import GOLDEN_RATIO_32, MASK32, MH_SEED1, fmix32, fold, hash_32, mh_hash
from lb.sched.mh import DEFAULT_M

pytestmark = [pytest.mark.root, pytest.mark.bpf]

PROBE = Path(__file__).with_name("hash_probe.c")
XDP_TX = 3




@pytest.fixture(scope="module")
def probe() -> Iterator[int]:
    from lb.bench.programs import Program

    program = Program(PROBE, "xdp_hash_probe", [f"-I{sources.bpf_dir()}"])
    try:
        yield program.fd
    finally:
        program.close()


def run_probe(fd: int, val: int, addr: str, port: int, offset: int) -> tuple[int, ...]:
    frame = (struct.pack("=I", val) + socket.inet_aton(addr) + struct.pack("!H", port) + b"\0\0"
             + struct.pack("=I", offset) + bytes(20) + bytes(24))
    result = progrun.run(fd, frame)
    assert result.retval == XDP_TX
    return struct.unpack_from("=5I", result.frame, 16)


def expected(val: int, addr: str, port: int, offset: int) -> tuple[int, ...]:
    v = fold(IPv4Address(addr), port)
    return (hash_32(val, 8), fmix32(val), v, mh_hash(v, MH_SEED1) % DEFAULT_M,
            mh_hash((val + offset) & MASK32, MH_SEED1) % DEFAULT_M)


def test_the_multiplier_is_stated_once() -> None:
    header = sources.source("lb_hash.h").read_text()
    match = re.search(r"#define LB_GOLDEN_RATIO_32 (0x[0-9a-fA-F]+)u", header)
    assert match and int(match[1], 16) == GOLDEN_RATIO_32


def test_pinned_values(probe: int) -> None:
    # hash_32: 1 × 0x61C88647 has 0x61 on top; 0xFFFFFFFF × it is −0x61C88647 = 0x9E3779B9
    assert run_probe(probe, 1, "0.0.0.0", 0, 0)[0] == hash_32(1, 8) == 0x61
    assert run_probe(probe, MASK32, "0.0.0.0", 0, 0)[0] == hash_32(MASK32, 8) == 0x9E
    assert run_probe(probe, 0, "0.0.0.0", 0, 0)[:3] == (0, 0, 0)
    assert run_probe(probe, 1, "0.0.0.0", 0, 0)[1] == 0x514E28B7
    assert run_probe(probe, 0xDEADBEEF, "0.0.0.0", 0, 0)[1] == 0x0DE5C6A9
    # fold is host order and wraps: 255.255.255.255 + 2 is 1
    assert run_probe(probe, 0, "255.255.255.255", 2, 0)[2] == 1
    assert run_probe(probe, 0, "10.3.0.5", 40000, 0)[2] == 0x0A030005 + 40000
    assert run_probe(probe, 7, "10.3.0.5", 40000, 0) == expected(7, "10.3.0.5", 40000, 0)
    # an mh-fallback probe wraps v + offset modulo 2^32, as MaglevHashing.slot() does
    assert run_probe(probe, MASK32, "0.0.0.0", 0, 5)[4] == mh_hash(4, MH_SEED1) % DEFAULT_M


@settings(max_examples=300, deadline=None)
@given(val=st.integers(0, MASK32), addr=st.integers(0, MASK32), port=st.integers(0, 65535),
       offset=st.integers(0, DEFAULT_M - 1))
def test_every_hash_equals_python(probe: int, val: int, addr: int, port: int, offset: int) -> None:
    a = str(IPv4Address(addr))
    assert run_probe(probe, val, a, port, offset) == expected(val, a, port, offset)
