"""The hash functions of the hash schedulers (sh, dh, mh), stated so that C can reproduce them.

The XDP program may look flows up in a table Python filled, so it must hash a flow exactly as
Python does. Every function here is a few lines of 32-bit arithmetic on host-order integers:

- `hash_32(val, bits)`: the kernel's multiplicative hash (include/linux/hash.h,
  GOLDEN_RATIO_32 = 0x61C88647), top `bits` bits of `val * GOLDEN_RATIO_32 mod 2**32`. ip_vs_sh.c
  and ip_vs_dh.c index their 256-bucket tables with it.
- `fmix32(h)`: MurmurHash3's 32-bit finalizer (Austin Appleby, public domain), a bijection on
  32-bit values with full avalanche. ip_vs_mh.c uses hsiphash with two fixed keys; siphash is
  needlessly heavy for a BPF program, so lbxdp's Maglev uses `mh_hash(v, seed) = fmix32(v ^ seed)`
  with the kernel's two key constants as seeds, which gives two independent-looking hashes.
- `fold(addr, port)`: the value both kernels hash, `ntohl(addr) + ntohs(port)` modulo 2**32.
"""

from __future__ import annotations

from ipaddress import IPv4Address

MASK32 = 0xFFFFFFFF
GOLDEN_RATIO_32 = 0x61C88647  # include/linux/hash.h
MH_SEED1 = 2654435761  # ip_vs_mh.c generate_hash_secret(): hash1's key
MH_SEED2 = 2654446892  # ... and hash2's


def fold(addr: IPv4Address | int, port: int = 0) -> int:
    """`ntohl(addr) + ntohs(port)` as a u32, the key ip_vs_sh.c and ip_vs_mh.c hash."""
    return (int(addr) + port) & MASK32


def hash_32(val: int, bits: int) -> int:
    """The kernel's hash_32(): the top `bits` bits of val × 0x61C88647 (mod 2**32)."""
    return ((val * GOLDEN_RATIO_32) & MASK32) >> (32 - bits)


def fmix32(h: int) -> int:
    """MurmurHash3's finalizer: xor-shift 16, × 0x85EBCA6B, xor-shift 13, × 0xC2B2AE35, xor-shift 16."""
    h &= MASK32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    h ^= h >> 16
    return h


def mh_hash(val: int, seed: int) -> int:
    """Maglev's keyed hash: fmix32(val ^ seed)."""
    return fmix32((val ^ seed) & MASK32)
