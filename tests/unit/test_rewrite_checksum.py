"""RFC 1624 arithmetic of lb.rewrite.checksum against full recomputation (RFC 1071)."""

from __future__ import annotations

import random

import pytest

from lb.rewrite import checksum


def _full(words: list[int]) -> int:
    return ~checksum.fold(sum(words)) & 0xFFFF


@pytest.mark.parametrize("seed", range(200))
def test_incremental_equals_full_recompute(seed: int) -> None:
    rng = random.Random(seed)
    words = [rng.randrange(0x10000) for _ in range(10)]
    check = _full(words)
    from32, to32 = (words[0] << 16) | words[1], rng.randrange(2**32)
    from16, to16 = words[4], rng.randrange(0x10000)
    new = [to32 >> 16, to32 & 0xFFFF, *words[2:4], to16, *words[5:]]
    assert checksum.replace_4_2(check, from32, to32, from16, to16) == _full(new)


def test_rfc1624_section_4_example() -> None:
    # RFC 1624 §4: HC = 0xDD2F, m = 0x5555 → m' = 0x3285 gives HC' = 0x0000 (eqn 3, not 0xFFFF)
    assert checksum.replace_4_2(0xDD2F, 0, 0, 0x5555, 0x3285) == 0x0000


def test_ipv4_header_checksum_of_a_known_header() -> None:
    # the header of the Wikipedia "IPv4 header checksum" example, check field zeroed → 0xB861
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert checksum.ipv4_header_checksum(header) == 0xB861
