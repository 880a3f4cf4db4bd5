"""An image URL, or a redirect, checked and put in the one form the fetcher sends.

Parsing happens here once, so the host that is checked is the host that is connected to:
no userinfo, no backslashes or spaces that parsers read differently, IDNA for names, and
numeric hosts in any notation turned into the address they stand for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import idna

from service.adapters.public_address import parse_numeric_host
from service.domain.errors import ErrorCode, Rejected

DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True)
class ImageTarget:
    scheme: str
    host: str  # an ASCII name, or the canonical text of an IP address
    port: int
    target: str  # path and query, ASCII

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"

    def follow(self, location: str, allowed_ports: Collection[int]) -> ImageTarget:
        try:
            url = urljoin(self.url, location)
        except ValueError:
            raise Rejected(ErrorCode.INVALID_IMAGE_URL, "a redirect is not a valid URL") from None
        return parse_image_url(url, allowed_ports, what="a redirect")


def parse_image_url(
    url: str, allowed_ports: Collection[int], what: str = "ImageUrl"
) -> ImageTarget:
    def refuse(why: str) -> Rejected:
        return Rejected(ErrorCode.INVALID_IMAGE_URL, f"{what} {why}")

    if any(c.isspace() or c == "\\" or not c.isprintable() for c in url):
        raise refuse("contains spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refuse("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise refuse("must be an http or https URL")
    if "@" in parts.netloc:
        raise refuse("must not carry a user name or password")
    hostname = parts.hostname
    if not hostname:
        raise refuse("has no host")
    port = DEFAULT_PORTS[scheme] if port is None else port
    if port not in allowed_ports:
        allowed = ",".join(str(p) for p in sorted(allowed_ports))
        raise refuse(f"uses port {port}; allowed ports are {allowed} (IMAGE_FETCH_PORTS)")
    host = _host(hostname, refuse)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    target = f"{path}?{query}" if query else path
    return ImageTarget(scheme=scheme, host=host, port=port, target=target)


def _host(hostname: str, refuse: Callable[[str], Rejected]) -> str:
    if "%" in hostname:
        raise refuse("has a host with a zone id or percent-escape")
    try:
        address = parse_numeric_host(hostname)
    except ValueError:
        raise refuse("has a numeric host that is not a valid IP address") from None
    if address is not None:
        return str(address)
    try:
        name = idna.encode(hostname.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise refuse("has a host name that is not valid") from None
    if name != hostname:
        # IDNA maps fullwidth digits and ideographic dots to ASCII: the result may be numeric.
        return _host(name, refuse)
    if len(name) > 253:
        raise refuse("has a host name over 253 characters")
    return name
