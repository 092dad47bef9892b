"""The layout clang gave a map's key and value, read from the BTF of the loaded program.

The kernel keeps, for every map created with BTF (bcc creates them so), the ids of its key and value
types in the program's BTF object (struct bpf_map_info, BPF_OBJ_GET_INFO_BY_FD). libbpf loads that
object and walks it: a struct's members with their byte offsets and sizes, as compiled. Test helper:
only tests/bpf reads BTF.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

BTF_KIND_STRUCT = 4
_MAP_INFO_SIZE = 88  # struct bpf_map_info up to map_extra (include/uapi/linux/bpf.h)
_MAP_INFO = struct.Struct("=IIIIII16sIIQQIII")  # type … btf_id, btf_key_type_id, btf_value_type_id


@dataclass(frozen=True)
class Layout:
    """A type as BTF states it: its size and, for a struct, (member, byte offset, byte size)."""

    size: int
    members: tuple[tuple[str, int, int], ...]


def _libbpf() -> ctypes.CDLL:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.btf__load_from_kernel_by_id.argtypes = [ctypes.c_uint32]
    lib.btf__load_from_kernel_by_id.restype = ctypes.c_void_p
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.c_void_p
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    lib.btf__resolve_size.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__resolve_size.restype = ctypes.c_int64
    lib.btf__resolve_type.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__resolve_type.restype = ctypes.c_int
    lib.btf__free.argtypes = [ctypes.c_void_p]
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    return lib


def map_layouts(map_fd: int) -> tuple[int, int, Layout | None, Layout | None]:
    """(key size, value size, BTF layout of the key, of the value) of a map; the layouts are None for
    a map created without BTF (bcc gives a devmap none)."""
    lib = _libbpf()
    buf = ctypes.create_string_buffer(_MAP_INFO_SIZE)
    size = ctypes.c_uint32(_MAP_INFO_SIZE)
    if lib.bpf_obj_get_info_by_fd(map_fd, buf, ctypes.byref(size)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    info = _MAP_INFO.unpack_from(buf.raw)
    key_size, value_size, btf_id, key_tid, value_tid = info[2], info[3], info[11], info[12], info[13]
    if not (btf_id and key_tid and value_tid):
        return key_size, value_size, None, None
    btf = lib.btf__load_from_kernel_by_id(btf_id)
    assert btf, f"cannot load BTF object {btf_id}"
    try:
        return key_size, value_size, _layout(lib, btf, key_tid), _layout(lib, btf, value_tid)
    finally:
        lib.btf__free(btf)


def _layout(lib: ctypes.CDLL, btf: int, type_id: int) -> Layout:
    type_id = lib.btf__resolve_type(btf, type_id)  # through typedefs and qualifiers
    size = lib.btf__resolve_size(btf, type_id)
    head = ctypes.cast(lib.btf__type_by_id(btf, type_id), ctypes.POINTER(ctypes.c_uint32 * 3)).contents
    info = head[1]
    if (info >> 24) & 0x1F != BTF_KIND_STRUCT:
        return Layout(size, ())
    vlen, kflag = info & 0xFFFF, info >> 31
    raw = ctypes.cast(lib.btf__type_by_id(btf, type_id), ctypes.POINTER(ctypes.c_uint32 * (3 + 3 * vlen))).contents
    members = []
    for i in range(vlen):
        name_off, member_type, offset = raw[3 + 3 * i: 6 + 3 * i]
        bits = offset & 0xFFFFFF if kflag else offset
        assert bits % 8 == 0, "no bitfields in a struct shared with user space"
        name = lib.btf__name_by_offset(btf, name_off).decode()
        members.append((name, bits // 8, lib.btf__resolve_size(btf, member_type)))
    return Layout(size, tuple(members))
