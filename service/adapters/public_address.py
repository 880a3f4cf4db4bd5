"""Which IP addresses an image may be fetched from: public ones, and the allow-listed.

Host names are judged by the addresses they resolve to, and numeric hosts by what a
resolver would make of them: `2130706433`, `0177.1` and `0x7f.0.0.1` are all 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


@dataclass(frozen=True)
class AddressPolicy:
    allowlist: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs))

    def refused_kind(self, address: IPAddress) -> str | None:
        """The kind of address that keeps `address` from being fetched from, or None."""
        if any(address in network for network in self.allowlist):
            return None
        return non_public_kind(address)


def non_public_kind(address: IPAddress) -> str | None:
    """The kind of a non-public address ("loopback", "private", ...), None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            kind = non_public_kind(embedded)
            return None if kind is None else f"{kind} (IPv4 inside IPv6)"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CARRIER_GRADE_NAT, "CGNAT"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL, "unique-local"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "non-global"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # Forms that reach an IPv4 host: mapped (::ffff:a.b.c.d), NAT64, 6to4 and Teredo.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def parse_numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host stands for, None for a host name to resolve.

    Follows the WHATWG URL standard's IPv4 parser, which is what inet_aton and browsers
    accept: 1 to 4 dot-separated parts in decimal, octal (leading 0) or hex (0x); the last
    part fills the bytes that remain. Raises ValueError for a host that looks numeric but
    is not a valid address (`1.2.3.256`, `08.1.1.1`).
    """
    if host.startswith("[") and host.endswith("]"):
        return ipaddress.IPv6Address(host[1:-1])
    if ":" in host:
        return ipaddress.IPv6Address(host)
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()  # a trailing dot names the same host
    if not parts or not _looks_numeric(parts[-1]):
        return None
    if len(parts) > 4:
        raise ValueError(f"{host!r} has more than 4 numeric parts")
    numbers = [_ipv4_number(part, host) for part in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of range for an IPv4 address")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


_HEX = frozenset("0123456789abcdef")


def _looks_numeric(part: str) -> bool:
    lowered = part.lower()
    return lowered.isdigit() or (lowered.startswith("0x") and all(c in _HEX for c in lowered[2:]))


def _ipv4_number(part: str, host: str) -> int:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:] or "0", 16)
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered, 8)
        return int(lowered, 10)
    except ValueError:
        raise ValueError(f"{host!r} is not a valid IPv4 address") from None
