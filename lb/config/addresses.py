"""Which IPv4 addresses may be a virtual service and which a real server, and why not.

The same checks run on a parsed line and on a Command from JSON (lb.config.command.validate), so the
control socket cannot smuggle in an address the command line refuses (issue 14).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from lb.model import ConfigError, RealKey, ServiceKey

# Address classes no VIP can be (RFC 5735 / RFC 6890 names). A client cannot address a service at the
# unspecified address, and broadcast or multicast destinations are delivered to many hosts at once,
# which a connection-tracking balancer cannot serve; 240.0.0.0/4 is reserved and dropped by routers.
_UNSPECIFIED = IPv4Address("0.0.0.0")
_BROADCAST = IPv4Address("255.255.255.255")
_MULTICAST = IPv4Network("224.0.0.0/4")
_RESERVED = IPv4Network("240.0.0.0/4")
_LOOPBACK = IPv4Network("127.0.0.0/8")


def vip_problem(address: IPv4Address) -> str | None:
    """Why `address` cannot be a virtual service address, or None when it can.

    Loopback VIPs (127.0.0.0/8) are allowed: no packet arriving on a NIC carries one (the kernel
    drops such martians), so a live balancer never sees traffic for them, but replaying recorded
    captures with BPF_PROG_RUN does (pcaps/corpus-rules/zeek.rules balances Zeek's 127.0.0.1
    captures), and refusing them would break those rules for no safety gained.
    """
    if address == _UNSPECIFIED:
        return "the unspecified address 0.0.0.0 is no destination a client can send to"
    if address == _BROADCAST:
        return "the limited broadcast address reaches every host of the link, not a service"
    if address in _MULTICAST:
        return "a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"
    if address in _RESERVED:
        return "a reserved address (240.0.0.0/4) that routers do not forward"
    return None


def real_problem(address: IPv4Address) -> str | None:
    """Why `address` cannot be a real server, or None when it can.

    A real is one other host that XDP forwards to (by MAC, tunnel or NAT); an address that is no
    host, or many, or this machine's own loopback, cannot receive forwarded packets. 240.0.0.0/4
    stays allowed for reals: Linux routes it as unicast on a local network, where reals live.
    """
    if address == _UNSPECIFIED:
        return "the unspecified address 0.0.0.0 names no host"
    if address == _BROADCAST:
        return "the limited broadcast address is every host of the link, not one real"
    if address in _MULTICAST:
        return "a multicast address (224.0.0.0/4) is a group, not one real"
    if address in _LOOPBACK:
        return "a loopback address (127.0.0.0/8): XDP forwards to other hosts, never to this one (no IPVS local node)"
    return None


def check_virtual_address(address: IPv4Address) -> None:
    problem = vip_problem(address)
    if problem is not None:
        raise ConfigError(f"illegal virtual server address {address}: {problem}")


def check_real_address(address: IPv4Address) -> None:
    problem = real_problem(address)
    if problem is not None:
        raise ConfigError(f"illegal real server address {address}: {problem}")


def check_real_is_not_vip(service: ServiceKey, real: RealKey) -> None:
    """A real at the service's own address is the balancer itself: with -g the frame would be sent to
    the VIP's owner (us), with -i tunnelled to ourselves, with -m translated to our own address. IPVS
    can deliver such packets locally (its local node); XDP has no local delivery, so every packet
    would loop or be dropped."""
    if real.address == service.vip:
        raise ConfigError(
            f"real server {real}: same address as the virtual service {service.vip}; "
            "a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"
        )
