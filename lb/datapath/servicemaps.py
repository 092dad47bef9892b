"""The configuration XDP reads: `services`, `reals`, the `config` slot (IPIP's source address and the
next-hop cache's epoch) and the `tx_ports` devmap, written one entry at a time and read back."""

from __future__ import annotations

import ctypes
from ipaddress import IPv4Address

from lb.datapath import structs as S
from lb.datapath.mapaccess import MapAccess, MapError
from lb.model import Forwarding, Protocol, ServiceKey
from lb.sched.xdpkind import XdpKind
from lb.tables import RealEntry, ServiceEntry

_FWD_TO_C = {Forwarding.MASQ: S.FWD_MASQ, Forwarding.ROUTE: S.FWD_ROUTE, Forwarding.TUNNEL: S.FWD_TUNNEL}
_FWD_FROM_C = {v: k for k, v in _FWD_TO_C.items()}


class ServiceMaps(MapAccess):
    """Services, reals, the config slot and the TX ports."""

    def set_service(self, key: ServiceKey, entry: ServiceEntry) -> None:
        value = S.ServiceInfoC(
            entry.service_id, entry.flags, int(entry.sched), entry.row, entry.persist_timeout,
            S.be32(IPv4Address(entry.persist_mask)),
        )
        self._update("services", _service_key(key), value)

    def delete_service(self, key: ServiceKey) -> None:
        self._delete("services", _service_key(key))

    def read_services(self) -> dict[ServiceKey, ServiceEntry]:
        return {
            _service_key_back(k): ServiceEntry(
                v.service_id, v.flags, XdpKind(v.sched), v.row, v.persist_timeout, int(S.address(v.persist_mask))
            )
            for k, v in self._items("services")
        }

    def set_real(self, real_id: int, real: RealEntry) -> None:
        value = S.RealInfoC(S.be32(real.address), S.be16(real.port), _FWD_TO_C[real.forwarding], 0)
        self._update("reals", ctypes.c_uint32(real_id), value)

    def delete_real(self, real_id: int) -> None:
        """Empty the slot (an array entry cannot be deleted); flows to it then PASS (PASS_NO_REAL)."""
        self._update("reals", ctypes.c_uint32(real_id), S.RealInfoC())

    def read_reals(self) -> dict[int, RealEntry]:
        """The `reals` slots in use (a starting daemon checks them against its saved ids)."""
        reals = {}
        for real_id in range(self.max_reals):
            value = self._lookup("reals", ctypes.c_uint32(real_id))
            if value is not None and value.forwarding in _FWD_FROM_C:
                reals[real_id] = RealEntry(S.address(value.addr), S.port(value.port), _FWD_FROM_C[value.forwarding])
        return reals

    def set_tunnel_source(self, source: IPv4Address | None) -> None:
        """Set IPIP's outer source; cached next hops were looked up from the old one, so flush them."""
        self._update("config", ctypes.c_uint32(0), S.LbConfigC(S.be32(source) if source else 0, self._next_epoch()))

    def tunnel_source(self) -> IPv4Address | None:
        config = self._lookup("config", ctypes.c_uint32(0))
        return S.address(config.tunnel_saddr) if config is not None and config.tunnel_saddr else None

    def flush_next_hops(self) -> None:
        """Make XDP ask bpf_fib_lookup() again for every destination (after a route or neighbour change
        the daemon knows of; without it a cached answer lives at most NEXT_HOP_TTL_NS, 1 s)."""
        config = self._lookup("config", ctypes.c_uint32(0)) or S.LbConfigC()
        self._update("config", ctypes.c_uint32(0), S.LbConfigC(config.tunnel_saddr, self._next_epoch()))

    def _next_epoch(self) -> int:
        """hop_epoch + 1: every cached next hop carries the epoch it was cached in, so this voids them."""
        config = self._lookup("config", ctypes.c_uint32(0))
        return ((config.hop_epoch if config is not None else 0) + 1) & 0xFFFFFFFF

    def add_tx_port(self, ifindex: int) -> None:
        """Let XDP redirect to `ifindex`; call from the namespace the interface lives in."""
        if not 0 < ifindex < self.max_tx_ports:
            raise MapError(f"ifindex {ifindex} does not fit tx_ports (MAX_TX_PORTS={self.max_tx_ports})")
        self._update("tx_ports", ctypes.c_int(ifindex), ctypes.c_int(ifindex))

    def delete_tx_port(self, ifindex: int) -> None:
        self._delete("tx_ports", ctypes.c_int(ifindex))

    def read_tx_ports(self) -> set[int]:
        """The ifindexes XDP may redirect to."""
        return {i for i in range(1, self.max_tx_ports) if self._lookup("tx_ports", ctypes.c_int(i)) is not None}


def _service_key(key: ServiceKey) -> S.ServiceKeyC:
    return S.ServiceKeyC(S.be32(key.vip), S.be16(key.port), int(key.proto), 0)


def _service_key_back(key: S.ServiceKeyC) -> ServiceKey:
    return ServiceKey(Protocol(key.proto), S.address(key.vip), S.port(key.port))
