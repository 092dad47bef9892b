"""Compile and load the XDP program with bcc, attach and detach it, and pin its maps.

The program is bpf/lb_kern.c, compiled by bcc (`BPF(src_file=…, cflags=[-I<bpf>, -D<tunable>…])`).
Maps are pinned under /sys/fs/bpf/lbxdp/<instance>/<map>, where the instance defaults to
`netns-<inode of this thread's network namespace>`: one balancer per namespace, and two namespaces
never share or clobber each other's flow tables. Pinning uses bcc 0.26's `BPF_TABLE_PINNED` semantics
(a "type:path" map section, see bpf/lb_maps.h): a map already pinned at the path is adopted, a missing
one is created and pinned. A restarted daemon therefore keeps the flow table; the attached program
keeps running meanwhile, and attaching the new one replaces it atomically.
"""

from __future__ import annotations

import ctypes
import enum
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bcc import BPF  # type: ignore[import-not-found]
from bcc.libbcc import lib as _libbcc  # type: ignore[import-not-found]

import lb
from lb.datapath.maps import DatapathMaps

BPF_DIR = Path(lb.__file__).resolve().parent.parent / "bpf"
SOURCE = BPF_DIR / "lb_kern.c"
ENTRY = "xdp_lb"
BPF_FS = Path("/sys/fs/bpf")
PIN_ROOT = BPF_FS / "lbxdp"

XDP_FLAGS_SKB_MODE = 1 << 1  # include/uapi/linux/if_link.h
XDP_FLAGS_DRV_MODE = 1 << 2


class LoadError(RuntimeError):
    """The program did not compile, load or attach; the message says which and why, in one line."""


class AttachMode(enum.Enum):
    """How the program is attached: in the driver (native), in the generic skb path, or native with
    a fall-back to generic (auto)."""

    AUTO = "auto"
    NATIVE = "native"
    GENERIC = "generic"


@dataclass(frozen=True)
class Tunables:
    """The -D tunables of bpf/lb_consts.h. Each map is sized at load; adopted pinned maps keep the
    size they were created with."""

    max_flows: int = 262144
    max_services: int = 4096
    max_reals: int = 4096
    max_tx_ports: int = 4096

    def cflags(self) -> list[str]:
        return [
            f"-DMAX_FLOWS={self.max_flows}",
            f"-DMAX_SERVICES={self.max_services}",
            f"-DMAX_REALS={self.max_reals}",
            f"-DMAX_TX_PORTS={self.max_tx_ports}",
        ]


class Datapath:
    """A loaded program: its fd for attaching or BPF_PROG_RUN, and its maps."""

    def __init__(self, bpf: BPF, tunables: Tunables, pin_dir: Path | None) -> None:
        self.bpf = bpf
        self.tunables = tunables
        self.pin_dir = pin_dir
        self._fn = bpf.load_func(ENTRY.encode(), BPF.XDP)
        self.maps = DatapathMaps.from_bpf(bpf, tunables.max_reals, tunables.max_tx_ports)

    @property
    def prog_fd(self) -> int:
        return int(self._fn.fd)

    def attach(self, ifname: str, mode: AttachMode = AttachMode.AUTO) -> AttachMode:
        """Attach to `ifname` (in this thread's namespace); returns the mode actually used."""
        return attach(self.prog_fd, ifname, mode)

    def close(self) -> None:
        """Release the program and map fds. Attachments and pinned maps stay (detach/unpin for that)."""
        self.bpf.cleanup()


def netns_instance() -> str:
    """The default instance name: unique per network namespace (/proc/thread-self follows setns)."""
    return f"netns-{os.stat('/proc/thread-self/ns/net').st_ino}"


def pin_dir_for(instance: str | None = None) -> Path:
    return PIN_ROOT / (instance or netns_instance())


def ensure_bpffs() -> None:
    """Mount bpffs at /sys/fs/bpf unless it is mounted there already (pinning needs it)."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        if any(line.split()[1:3] == [str(BPF_FS), "bpf"] for line in mounts):
            return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", str(BPF_FS).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise LoadError(f"cannot mount bpffs at {BPF_FS}: {os.strerror(err)}")


def load(tunables: Tunables = Tunables(), *, pin: bool = True, instance: str | None = None) -> Datapath:
    """Compile bpf/lb_kern.c and load it; with `pin`, adopt or create the maps under pin_dir_for(instance).

    Tests load with pin=False: their maps live only as long as the Datapath.
    """
    cflags = [f"-I{BPF_DIR}", *tunables.cflags()]
    pin_dir = None
    if pin:
        ensure_bpffs()
        pin_dir = pin_dir_for(instance)
        pin_dir.mkdir(parents=True, exist_ok=True)
        cflags.append(f'-DLB_PIN_DIR="{pin_dir}"')
    try:
        bpf = BPF(src_file=str(SOURCE).encode(), cflags=cflags)
    except Exception as exc:  # bcc raises bare Exception for compile, verifier and map errors
        raise LoadError(f"cannot load {SOURCE.name}: {exc}") from exc
    return Datapath(bpf, tunables, pin_dir)


def attach(prog_fd: int, ifname: str, mode: AttachMode = AttachMode.AUTO) -> AttachMode:
    """Attach (or atomically replace) the XDP program on `ifname`; returns the mode used.

    AUTO tries native (XDP_FLAGS_DRV_MODE) and falls back to generic (XDP_FLAGS_SKB_MODE).
    """
    tries = {
        AttachMode.NATIVE: [AttachMode.NATIVE],
        AttachMode.GENERIC: [AttachMode.GENERIC],
        AttachMode.AUTO: [AttachMode.NATIVE, AttachMode.GENERIC],
    }[mode]
    errors = []
    for attempt in tries:
        if _set_xdp(ifname, prog_fd, _flags(attempt)) == 0:
            return attempt
        errors.append(f"{attempt.value}: {os.strerror(ctypes.get_errno())}")
    raise LoadError(f"cannot attach XDP to {ifname} ({'; '.join(errors)})")


def detach(ifname: str) -> None:
    """Remove whatever XDP program is attached to `ifname`, in native and in generic mode."""
    for attempt in (AttachMode.NATIVE, AttachMode.GENERIC):
        if _set_xdp(ifname, -1, _flags(attempt)) != 0:
            raise LoadError(f"cannot detach XDP ({attempt.value}) from {ifname}: {os.strerror(ctypes.get_errno())}")


def unpin(instance: str | None = None) -> None:
    """Delete the instance's pinned maps (the maps go when nothing else holds them)."""
    shutil.rmtree(pin_dir_for(instance), ignore_errors=True)


def _flags(mode: AttachMode) -> int:
    return XDP_FLAGS_DRV_MODE if mode is AttachMode.NATIVE else XDP_FLAGS_SKB_MODE


def _set_xdp(ifname: str, fd: int, flags: int) -> int:
    return int(_libbcc.bpf_attach_xdp(ifname.encode(), fd, flags))
