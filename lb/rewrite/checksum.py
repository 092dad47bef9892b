"""Internet checksum arithmetic, step for step as bpf/lb_csum.h does it.

Incremental updates follow RFC 1624 eqn 3, HC' = ~(~HC + ~m + m'). The C code sums raw (network-order)
16-bit words loaded little-endian; here words are big-endian integers. One's complement addition
commutes with byte swapping, so both produce the same bytes (RFC 1071 §2(B)).
"""

from __future__ import annotations


def fold(total: int) -> int:
    """End-around carry, twice: enough for sums of up to 2^16 words (lb_csum_fold)."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total & 0xFFFF


def replace_4_2(check: int, from32: int, to32: int, from16: int, to16: int) -> int:
    """RFC 1624 eqn 3 for a 32-bit and a 16-bit field changing together (csum_replace_4_2)."""
    total = ~check & 0xFFFF
    total += (~from32 & 0xFFFF) + ((~from32 >> 16) & 0xFFFF)
    total += (to32 & 0xFFFF) + (to32 >> 16)
    total += (~from16 & 0xFFFF) + to16
    return ~fold(total) & 0xFFFF


def ipv4_header_checksum(header: bytes) -> int:
    """Checksum of a 20-byte IPv4 header whose check field is zero (ipv4_header_csum, RFC 791)."""
    total = sum(int.from_bytes(header[i : i + 2], "big") for i in range(0, 20, 2))
    return ~fold(total) & 0xFFFF
