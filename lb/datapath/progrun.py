"""BPF_PROG_RUN from Python: run a loaded XDP program on one frame and get its verdict and output.

ctypes on libbpf's bpf_prog_test_run_opts() (libbpf 1.1, tools/lib/bpf/bpf.h); the kernel side is
bpf_prog_test_run_xdp() in net/bpf/test_run.c. The ctx is a struct xdp_md naming the ingress
interface, which must exist in the calling thread's network namespace; bpf_fib_lookup() then routes
in that namespace. With repeat > 1 the program sees its own output on the next round (the buffer is
reused); with LIVE_FRAMES the frames are really transmitted and retval is 0 (read counters instead).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import NamedTuple

BPF_F_TEST_XDP_LIVE_FRAMES = 2
XDP_HEADROOM_GROWTH = 256  # room for the output to grow (bpf_xdp_adjust_head) past the input size


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class XdpMd(ctypes.Structure):
    """struct xdp_md, the XDP program's ctx (include/uapi/linux/bpf.h)."""

    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


class RunResult(NamedTuple):
    retval: int
    frame: bytes
    duration_ns: int


_libbpf: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libbpf
    if _libbpf is None:
        _libbpf = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
        _libbpf.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
        _libbpf.bpf_prog_test_run_opts.restype = ctypes.c_int
    return _libbpf


def run(
    prog_fd: int,
    frame: bytes,
    ingress_ifindex: int | None = None,
    repeat: int = 1,
    flags: int = 0,
    batch_size: int = 0,
) -> RunResult:
    """Run the XDP program `prog_fd` on `frame`; returns (retval, output frame, mean duration in ns).

    Raises OSError with the kernel's errno (EINVAL for a frame shorter than 14 bytes, ENODEV for an
    ifindex not in this namespace, …).
    """
    data_in = ctypes.create_string_buffer(frame, len(frame))
    data_out = ctypes.create_string_buffer(len(frame) + XDP_HEADROOM_GROWTH)
    opts = _TestRunOpts(
        sz=ctypes.sizeof(_TestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_out=ctypes.cast(data_out, ctypes.c_void_p),
        data_size_in=len(frame),
        data_size_out=len(data_out),
        repeat=repeat,
        flags=flags,
        batch_size=batch_size,
    )
    ctx = None
    if ingress_ifindex is not None:
        ctx = XdpMd(data=0, data_end=len(frame), ingress_ifindex=ingress_ifindex)
        opts.ctx_in = ctypes.cast(ctypes.pointer(ctx), ctypes.c_void_p)
        opts.ctx_size_in = ctypes.sizeof(XdpMd)
    if flags & BPF_F_TEST_XDP_LIVE_FRAMES:
        # the kernel refuses an output buffer in live-frames mode (EINVAL): the frames leave instead
        opts.data_out, opts.data_size_out = None, 0
    rc = _lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if rc != 0:
        err = -rc if rc < 0 else ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_RUN failed: {os.strerror(err)}")
    return RunResult(opts.retval, data_out.raw[: opts.data_size_out], opts.duration)  # b"" when live
