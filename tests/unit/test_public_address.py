import ipaddress
from collections.abc import Callable

import pytest

from service.adapters.guarded_connect import checked_addresses
from service.adapters.image_url import parse_image_url
from service.adapters.public_address import AddressPolicy, non_public_kind, parse_numeric_host
from service.domain.errors import ErrorCode, Rejected

PORTS = (80, 443)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("8.8.8.8.", "8.8.8.8"),
        ("[::1]", "::1"),
    ],
)
def test_odd_numeric_notations_parse_to_the_address_a_resolver_would_use(
    host: str, address: str
) -> None:
    assert parse_numeric_host(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "img.example", "a1.b2", "localhost"])
def test_host_names_are_left_for_the_resolver(host: str) -> None:
    assert parse_numeric_host(host) is None


@pytest.mark.parametrize("host", ["1.2.3.256", "256.1", "1.2.3.4.5", "08.1.1.1", "1..2"])
def test_numeric_looking_hosts_that_are_not_addresses_are_errors(host: str) -> None:
    with pytest.raises(ValueError):
        parse_numeric_host(host)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
        ("64:ff9b::7f00:1", "loopback (IPv4 inside IPv6)"),
        ("2002:a9fe:a9fe::", "link-local (IPv4 inside IPv6)"),
    ],
)
def test_non_public_addresses_are_named_by_kind(address: str, kind: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) is None


def test_the_allowlist_admits_exactly_its_networks() -> None:
    policy = AddressPolicy.from_cidrs(["127.0.0.2/32", "10.1.0.0/16"])
    assert policy.refused_kind(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.refused_kind(ipaddress.ip_address("10.1.200.3")) is None
    assert policy.refused_kind(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert policy.refused_kind(ipaddress.ip_address("10.2.0.1")) == "private"


def test_a_url_is_put_in_one_canonical_form() -> None:
    target = parse_image_url("HTTPS://Bücher.Example/a%20b/ü.jpg?x=1&y=ü#frag", PORTS)
    assert target.url == "https://xn--bcher-kva.example/a%20b/%C3%BC.jpg?x=1&y=%C3%BC"
    assert parse_image_url("http://0x7f.1:80/a", PORTS).host == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://img.example/a.jpg", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http://user:pw@img.example/a.jpg", "user name or password"),
        ("http://@img.example/a.jpg", "user name or password"),
        ("http://img.example:8080/a.jpg", "port 8080"),
        ("http://img.example:0/a.jpg", "port 0"),
        ("http://img.example:99999/a.jpg", "not a valid URL"),
        ("http://127.0.0.1\\@img.example/", "backslashes"),
        ("http://img.example/a\nb.jpg", "control characters"),
        ("http://[fe80::1%25eth0]/a.jpg", "zone id"),
        ("http://1.2.3.256/a.jpg", "not a valid IP address"),
        ("http://xn--/a.jpg", "not valid"),
        ("http:///a.jpg", "no host"),
    ],
)
def test_urls_that_are_not_plainly_http_to_a_host_are_refused(url: str, why: str) -> None:
    with pytest.raises(Rejected) as refused:
        parse_image_url(url, PORTS)
    assert refused.value.code is ErrorCode.INVALID_IMAGE_URL
    assert why in refused.value.message


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/a", "127.0.0.1"),
        ("http://127\u30020\u30020\u30021/a", "127.0.0.1"),
    ],
)
def test_hosts_that_idna_maps_to_digits_are_numeric_hosts(url: str, host: str) -> None:
    assert parse_image_url(url, PORTS).host == host


@pytest.mark.parametrize(
    "spell",
    [
        lambda: parse_image_url("http://1\u30022\u30023\u3002256/a", PORTS),
        lambda: parse_image_url("http://img.example/a", PORTS).follow("http://[::1", PORTS),
        lambda: parse_image_url("http://img.example/a", PORTS).follow("//[zz]/", PORTS),
    ],
    ids=["ideographic-dots-out-of-range", "redirect-unclosed-bracket", "redirect-bad-ipv6"],
)
def test_malformed_hosts_anywhere_are_url_refusals(spell: Callable[[], object]) -> None:
    with pytest.raises(Rejected) as refused:
        spell()
    assert refused.value.code is ErrorCode.INVALID_IMAGE_URL


async def test_a_refusal_does_not_tell_the_caller_what_an_internal_name_resolves_to() -> None:
    with pytest.raises(Rejected) as refused:
        await checked_addresses("localhost", 80, AddressPolicy())
    assert refused.value.code is ErrorCode.INVALID_IMAGE_URL
    assert "localhost" in refused.value.message
    assert "127.0.0.1" not in refused.value.message and "loopback" not in refused.value.message
