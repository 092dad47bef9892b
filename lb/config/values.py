"""Value parsers for ipvsadm's arguments: pure functions from one word to one value, with ipvsadm's messages.

`A.B.C.D[:PORT]`, numbers, timeouts, netmasks and `-b` flag lists. Every number must be written in
ASCII digits (issue 14: int() also reads '٨٠' and '８０' as 80), and a word quoted back in a message is
cut short. Whether an address may serve as a VIP or a real is lb.config.addresses' business.
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address

from lb.model import ConfigError

MAX_TIMEOUT = 86400 * 31  # ipvsadm.c: MAX_TIMEOUT, 31 days
INT_MAX = 2**31 - 1


def parse_address_port(text: str, what: str) -> tuple[IPv4Address, int | None]:
    """`A.B.C.D[:PORT]`; `what` is ipvsadm's noun ('virtual server' or 'real server').

    Only the syntax: whether the address may serve as a VIP or a real is `validate`'s business.
    """
    prefix = f"illegal {what} address[:port] specified: '{shown(text)}'"
    if text.startswith("[") or text.count(":") > 1:
        raise ConfigError(f"{prefix} (IPv6 is not supported by lbxdp)")
    host, colon, port_text = text.partition(":")
    if not host.isascii():
        raise ConfigError(f"{prefix} (not an IPv4 address: write it in ASCII digits 0-9)")
    try:
        address = IPv4Address(host)
    except AddressValueError:
        raise ConfigError(f"{prefix} (not an IPv4 address; lbxdp does not resolve names)") from None
    if not colon:
        return address, None
    port = _ascii_int(port_text, signed=False)
    if port is None or port > 65535:
        ascii_hint = "" if port_text.isascii() else ", in ASCII digits 0-9"
        raise ConfigError(f"{prefix} (port must be a number 0..65535{ascii_hint})")
    return address, port


def parse_address(text: str, what: str) -> IPv4Address:
    """A bare dotted-quad IPv4 address, ASCII only (the JSON path's twin of parse_address_port)."""
    if not text.isascii():
        raise ConfigError(
            f"illegal {what} address specified: '{shown(text)}' (not an IPv4 address: write it in ASCII digits 0-9)"
        )
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise ConfigError(f"illegal {what} address specified: '{shown(text)}' (not an IPv4 address)") from None


def parse_number(text: str, low: int, high: int, message: str) -> int:
    """ipvsadm's string_to_number: a whole decimal string within [low, high], in ASCII digits."""
    value = _ascii_int(text, signed=True)
    if value is None or not low <= value <= high:
        ascii_hint = "" if text.isascii() else ", in ASCII digits 0-9"
        raise ConfigError(f"{message}: '{shown(text)}' (must be an integer {low}..{high}{ascii_hint})")
    return value


def parse_timeout(text: str, low: int) -> int:
    value = _ascii_int(text, signed=True)
    if value is None or not low <= value <= MAX_TIMEOUT:
        ascii_hint = "" if text.isascii() else ", in ASCII digits 0-9"
        bounds = f"{low}..{MAX_TIMEOUT} seconds{ascii_hint}"
        raise ConfigError(f"invalid timeout value `{shown(text)}' specified (must be {bounds})")
    return value


def shown(text: str, limit: int = 40) -> str:
    """`text` as an error message quotes it: cut short, so a megabyte of input is not echoed back."""
    return text if len(text) <= limit else text[:limit] + "…"


def _ascii_int(text: str, *, signed: bool) -> int | None:
    """The value of a decimal written in ASCII digits 0-9 (an optional sign when `signed`), else None.

    str.isdigit() is true of '²' and '٨٠', and int() reads '٨٠' and '８０' as 80 (and raises on '²'),
    so neither alone tells a number a user typed from one that only looks like it. Twenty digits
    are more than any bound here needs, and keep int() clear of its 4300-digit limit.
    """
    body = text[1:] if signed and text[:1] in ("+", "-") else text
    if not (body.isascii() and body.isdigit()) or len(body) > 20:
        return None
    return int(text)


def parse_netmask(text: str) -> IPv4Address:
    if not text.isascii():
        raise ConfigError(f"illegal virtual server persistent mask specified: '{text}' (not a dotted netmask)")
    try:
        mask = IPv4Address(text)
    except AddressValueError:
        raise ConfigError(
            f"illegal virtual server persistent mask specified: '{text}' (not a dotted netmask)"
        ) from None
    if not is_contiguous(mask):
        raise ConfigError(f"illegal virtual server persistent mask specified: '{text}' (not a contiguous netmask)")
    return mask


def is_contiguous(mask: IPv4Address) -> bool:
    """Ones then zeros (a prefix mask): the inverted mask plus one is a power of two."""
    inverted = ~int(mask) & 0xFFFFFFFF
    return not inverted & (inverted + 1)


def parse_sched_flag_list(text: str) -> frozenset[str]:
    flags = text.split(",")
    if not text or any(not f for f in flags):
        raise ConfigError(f"invalid scheduler flag list `{text}' (comma-separated names, e.g. sh-port,sh-fallback)")
    return frozenset(flags)
