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

from bcc import BPF
from bcc.libbcc import lib as _libbcc

from lb.datapath import sources
from lb.datapath.maps import DatapathMaps

SOURCE = sources.source(sources.ENTRY_SOURCE)
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
    max_hashed_services: int = 16  # rows of hash_rings (Maglev in XDP), 256 KiB each
    max_sched_rows: int = 256  # rows of sched_seqs (16 KiB each), bucket_tables and sched_dests
    max_templates: int = 65536  # persistence templates (LRU)

    def cflags(self) -> list[str]:
        return [
            f"-DMAX_FLOWS={self.max_flows}",
            f"-DMAX_SERVICES={self.max_services}",
            f"-DMAX_REALS={self.max_reals}",
            f"-DMAX_TX_PORTS={self.max_tx_ports}",
            f"-DMAX_HASHED_SERVICES={self.max_hashed_services}",
            f"-DMAX_SCHED_ROWS={self.max_sched_rows}",
            f"-DMAX_TEMPLATES={self.max_templates}",
        ]


class Datapath:
    """A loaded program: its fd for attaching or BPF_PROG_RUN, and its maps."""

    def __init__(self, bpf: BPF, tunables: Tunables, pin_dir: Path | None) -> None:
        self.bpf = bpf
        self.tunables = tunables
        self.pin_dir = pin_dir
        self._fn = bpf.load_func(ENTRY.encode(), BPF.XDP)
        self.maps = DatapathMaps.from_bpf(bpf, tunables.max_reals, tunables.max_tx_ports)
        self.maps.max_hashed_services = tunables.max_hashed_services
        self.maps.max_sched_rows = tunables.max_sched_rows

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
    cflags = [f"-I{SOURCE.parent}", *tunables.cflags()]
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


# --- adopting the maps of a running program -------------------------------------------------------
#
# Pins are not enough to carry the flow table across a daemon restart: `ip netns exec` gives each
# process its own /sys (and so its own bpffs), and a bpffs mounted there dies with the process. The
# program attached to the interface, though, keeps its maps alive for as long as it stays attached.
# So a starting daemon finds the program on its interfaces, takes its maps by id and pins them where
# its own load will adopt them (bcc's pinned-map semantics): the flow table lives on, whatever the
# mount namespace.


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info (include/uapi/linux/bpf.h), up to map_ids and name."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


class _MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info, up to name."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


def attached_prog_id(ifname: str) -> int | None:
    """The id of the XDP program on `ifname` (native or generic), or None."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        xdp = ipr.link("get", index=found[0])[0].get_attr("IFLA_XDP")
    if xdp is None:
        return None
    for attr in ("IFLA_XDP_PROG_ID", "IFLA_XDP_SKB_PROG_ID", "IFLA_XDP_DRV_PROG_ID"):
        value = xdp.get_attr(attr)
        if value:
            return int(value)
    return None


def _prog_name(lib: ctypes.CDLL, prog_id: int) -> str | None:
    """The name of the program with this id (what bpf_prog_info says), or None when it is gone."""
    prog_fd = lib.bpf_prog_get_fd_by_id(ctypes.c_uint32(prog_id))
    if prog_fd < 0:
        return None
    try:
        info = _ProgInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if lib.bpf_obj_get_info_by_fd(prog_fd, ctypes.byref(info), ctypes.byref(size)) != 0:
            return None
        name: bytes = info.name  # a c_char array field reads as bytes
        return name.decode(errors="replace")
    finally:
        os.close(prog_fd)


def lbxdp_ifaces() -> list[str]:
    """Interfaces of this namespace that carry lbxdp's program (`lbxdp detach` with no daemon
    finds them even when the saved state is gone or unreadable)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    found = []
    for name in names:
        prog_id = attached_prog_id(name)
        if prog_id is not None and _prog_name(lib, prog_id) == ENTRY[:15]:
            found.append(name)
    return found


def pin_maps_of_attached(ifnames: list[str], pin_dir: Path) -> list[str]:
    """Pin into `pin_dir` the maps of the lbxdp program attached to one of `ifnames` (the first found),
    unless a map of that name is pinned there already. Returns the names pinned."""
    from lb.datapath.structs import MAP_TYPES

    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    for ifname in ifnames:
        prog_id = attached_prog_id(ifname)
        if prog_id is None:
            continue
        prog_fd = lib.bpf_prog_get_fd_by_id(ctypes.c_uint32(prog_id))
        if prog_fd < 0:
            continue
        try:
            info = _ProgInfo()
            ids = (ctypes.c_uint32 * 64)()
            info.nr_map_ids = len(ids)
            info.map_ids = ctypes.addressof(ids)
            size = ctypes.c_uint32(ctypes.sizeof(info))
            if lib.bpf_obj_get_info_by_fd(prog_fd, ctypes.byref(info), ctypes.byref(size)) != 0:
                continue
            if info.name.decode(errors="replace") != ENTRY[:15]:
                continue  # someone else's program: nothing of ours to adopt
            pinned = []
            pin_dir.mkdir(parents=True, exist_ok=True)
            for map_id in ids[: min(info.nr_map_ids, len(ids))]:
                map_fd = lib.bpf_map_get_fd_by_id(ctypes.c_uint32(map_id))
                if map_fd < 0:
                    continue
                try:
                    minfo = _MapInfo()
                    msize = ctypes.c_uint32(ctypes.sizeof(minfo))
                    if lib.bpf_obj_get_info_by_fd(map_fd, ctypes.byref(minfo), ctypes.byref(msize)) != 0:
                        continue
                    name = minfo.name.decode(errors="replace")
                    path = pin_dir / name
                    if name in MAP_TYPES and not path.exists() and lib.bpf_obj_pin(map_fd, str(path).encode()) == 0:
                        pinned.append(name)
                finally:
                    os.close(map_fd)
            return pinned
        finally:
            os.close(prog_fd)
    return []
