"""BPF_PROG_RUN for timing: `bpf_prog_test_run_opts` from libbpf.so.1 through ctypes.

The datapath's own harness (lb/datapath/progrun.py) is for correctness rows; the bench needs two
things it may not offer: `repeat` with the kernel's per-round `duration`, and
BPF_F_TEST_XDP_LIVE_FRAMES (include/uapi/linux/bpf.h), in which XDP_TX/XDP_REDIRECT frames really
leave through the interface named by the `xdp_md` ctx (net/bpf/test_run.c, bpf_test_run_xdp_live).
Kept small on purpose; the struct layout is libbpf 1.x's `struct bpf_test_run_opts` (bpf.h).

The call must run in the namespace of the interface in the ctx: the kernel resolves
`ingress_ifindex` in the calling thread's network namespace, and `bpf_fib_lookup` uses it too.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


class _XdpMd(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint32), ("data_end", ctypes.c_uint32),
                ("data_meta", ctypes.c_uint32), ("ingress_ifindex", ctypes.c_uint32),
                ("rx_queue_index", ctypes.c_uint32), ("egress_ifindex", ctypes.c_uint32)]


class _TestRunOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t),
                ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int),
                ("duration", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


_lib: ctypes.CDLL | None = None


def _libbpf() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        _lib.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
        _lib.bpf_prog_test_run_opts.restype = ctypes.c_int
    return _lib


@dataclass(frozen=True)
class RunResult:
    retval: int  # the verdict of the last round (0 in live-frames mode: read counters instead)
    ns_per_round: int  # the kernel's average over `repeat` rounds


def test_run(prog_fd: int, packet: bytes, repeat: int, *, ingress_ifindex: int = 0,
             live: bool = False) -> RunResult:
    """Run the program `repeat` times on `packet`. With `live`, frames are really sent."""
    buf = ctypes.create_string_buffer(packet, len(packet))
    out = ctypes.create_string_buffer(len(packet) + 512)
    opts = _TestRunOpts()
    opts.sz = ctypes.sizeof(_TestRunOpts)
    opts.data_in = ctypes.cast(buf, ctypes.c_void_p)
    opts.data_size_in = len(packet)
    if not live:
        opts.data_out = ctypes.cast(out, ctypes.c_void_p)
        opts.data_size_out = len(out)
    ctx = _XdpMd()
    if ingress_ifindex:
        ctx.data_end = len(packet)
        ctx.ingress_ifindex = ingress_ifindex
        opts.ctx_in = ctypes.cast(ctypes.byref(ctx), ctypes.c_void_p)
        opts.ctx_size_in = ctypes.sizeof(ctx)
    opts.repeat = repeat
    if live:
        opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES
    rc = _libbpf().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if rc != 0:
        err = ctypes.get_errno() or -rc
        raise OSError(err, f"BPF_PROG_RUN: {os.strerror(err)}")
    return RunResult(int(opts.retval), int(opts.duration))
