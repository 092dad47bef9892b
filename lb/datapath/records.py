"""The flow maps as numpy record arrays: dtypes mirroring struct flow_key, flow_state and
reverse_state (bpf/lb_structs.h), so the daemon can judge a whole table at once (lb.daemon.sweep)
instead of building a Python object per entry. Pure: no kernel access here; DatapathMaps fills them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from lb.datapath import structs as S

# struct flow_key: addresses and ports in network order, then the protocol and 3 pad bytes
FLOW_KEY = np.dtype([("saddr", ">u4"), ("daddr", ">u4"), ("sport", ">u2"), ("dport", ">u2"),
                     ("proto", "u1"), ("pad", "V3")])
# struct flow_state and struct reverse_state, host order except vip/vport (network order)
FLOW_STATE = np.dtype([("last_seen_ns", "=u8"), ("real_id", "=u4"), ("service_id", "=u4"),
                       ("tcp_seen", "=u4"), ("seen_jiffies", "=u4")])
REVERSE_STATE = np.dtype([("last_seen_ns", "=u8"), ("vip", ">u4"), ("vport", ">u2"), ("pad", "V2"),
                          ("real_id", "=u4"), ("service_id", "=u4"), ("tcp_seen", "=u4"),
                          ("seen_jiffies", "=u4")])

assert FLOW_KEY.itemsize == ctypes.sizeof(S.FlowKeyC)
assert FLOW_STATE.itemsize == ctypes.sizeof(S.FlowStateC)
assert REVERSE_STATE.itemsize == ctypes.sizeof(S.ReverseStateC)


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
