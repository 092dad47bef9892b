"""The flow maps as numpy record arrays: dtypes mirroring struct flow_key, flow_state and
reverse_state (bpf/lb_structs.h), so the daemon can judge a whole table at once (lb.daemon.sweep)
instead of building a Python object per entry. Pure: no kernel access here; DatapathMaps fills them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from lb.datapath import structs as S


def dtype_of(cls: type[ctypes.Structure]) -> np.dtype:
    """The numpy record type of a mirror class of lb.datapath.structs, derived from its ctypes layout:
    the same names and offsets, network-order fields big-endian (">u4"), the others in host order,
    pad fields as raw bytes ("V3")."""
    names, formats, offsets = [], [], []
    for f in S.fields(cls):
        names.append(f.name)
        offsets.append(f.offset)
        if f.padding or f.scalar is None:
            formats.append(f"V{f.size}")
        else:
            kind = "i" if f.signed else "u"
            formats.append(f"{'>' if f.network_order else '='}{kind}{f.size}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ctypes.sizeof(cls)})


# struct flow_key (addresses and ports in network order), struct flow_state (host order), and
# struct reverse_state (host order except vip/vport)
FLOW_KEY = dtype_of(S.FlowKeyC)
FLOW_STATE = dtype_of(S.FlowStateC)
REVERSE_STATE = dtype_of(S.ReverseStateC)


@dataclass(frozen=True)
class FlowRecords:
    """Both flow maps as record arrays (dtypes above); row i of keys goes with row i of values."""

    flow_keys: np.ndarray
    flow_values: np.ndarray
    reverse_keys: np.ndarray
    reverse_values: np.ndarray

    @classmethod
    def from_raw(cls, flow_keys: bytes, flow_values: bytes, reverse_keys: bytes, reverse_values: bytes) -> FlowRecords:
        return cls(np.frombuffer(flow_keys, FLOW_KEY), np.frombuffer(flow_values, FLOW_STATE),
                   np.frombuffer(reverse_keys, FLOW_KEY), np.frombuffer(reverse_values, REVERSE_STATE))
