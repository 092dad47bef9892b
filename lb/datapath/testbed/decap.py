"""Loader for bpf/ipip_decap.c: the IPIP decapsulator real servers use in tests, and the
XDP_PASS program put on veth peers for native XDP.

The object is compiled once per process (bcc takes about two seconds) and its programs are
attached by fd to interfaces in any namespace. Which outer destinations a real decapsulates is
a map, `local_addrs`, filled with the address of each IPIP real when it is attached and emptied at
teardown: one compiled object serves every real in every topology of the run.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
import threading
from typing import Any

from lb.datapath import sources

SOURCE = sources.source("ipip_decap.c")
STAT_DECAPPED = 0
STAT_SKIPPED = 1

_lock = threading.Lock()
_bpf: Any = None


def _loaded() -> Any:
    global _bpf
    with _lock:
        if _bpf is None:
            from bcc import BPF  # only the datapath imports bcc, and only when a test needs it

            _bpf = BPF(src_file=str(SOURCE).encode())
        return _bpf


def _addr_key(address: str) -> ctypes.c_uint32:
    # The map key is the address as the packet carries it (network byte order), read as a u32.
    raw = socket.inet_aton(str(ipaddress.IPv4Address(address)))
    return ctypes.c_uint32(struct.unpack("=I", raw)[0])


def decap_prog_fd() -> int:
    from bcc import BPF

    return int(_loaded().load_func(b"xdp_ipip_decap", BPF.XDP).fd)


def pass_prog_fd() -> int:
    from bcc import BPF

    return int(_loaded().load_func(b"xdp_pass", BPF.XDP).fd)


def add_local(address: str) -> None:
    table = _loaded()[b"local_addrs"]
    table[_addr_key(address)] = ctypes.c_uint8(1)


def remove_local(address: str) -> None:
    if _bpf is None:
        return
    try:
        del _bpf[b"local_addrs"][_addr_key(address)]
    except KeyError:
        pass


def stats() -> dict[str, int]:
    """Totals over all CPUs and all reals: {"decapped": n, "skipped": m}."""
    table = _loaded()[b"decap_stats"]
    return {
        "decapped": int(table[ctypes.c_int(STAT_DECAPPED)].value),
        "skipped": int(table[ctypes.c_int(STAT_SKIPPED)].value),
    }
