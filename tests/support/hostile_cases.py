"""Every hostile input the service is tested against, with the result each must get.

The README's Security table lists these same cases; a unit test keeps the two in step.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.image_server import ImageServer, Route
from tests.support.images import (
    gzip_bomb,
    png_pixel_bomb,
    tom_animated_gif,
    tom_as,
    tom_sideways_with_exif,
    tom_sideways_with_malformed_exif,
    tom_variants,
)

URL = "InvalidParameter.ImageUrl"
DOWNLOAD = "InvalidImage.Download"
TOO_LARGE = "InvalidImage.TooLarge"
FORMAT = "InvalidImage.Format"
MESSAGE = "InvalidParameter.Message"
OK = "OK"


@dataclass(frozen=True)
class Url:
    """A command whose ImageUrl is the hostile part."""

    url: str


@dataclass(frozen=True)
class Record:
    """A raw record on the commands topic; `key` None means no key at all."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


Make = Callable[[ImageServer, str, bytes], Url | Record]  # server, case tag, user key


@dataclass(frozen=True)
class HostileCase:
    name: str
    group: str
    expect: str  # the result code, or OK for what must still work
    make: Make
    dead_letter: bool = False


def _valid_body(url: str) -> dict[str, str]:
    return {"CategoryId": "Lib", "PersonId": "p", "ImageUrl": url}


def _url(template: str) -> Make:
    """A URL that needs no route; {port} is the image server's."""
    return lambda server, _tag, _user: Url(template.format(port=server.port))


def _served(route: Callable[[], Route]) -> Make:
    return lambda server, tag, _user: Url(server.route(f"/{tag}", route()))


def _image(make_bytes: Callable[[], bytes], content_type: str = "image/jpeg") -> Make:
    return _served(lambda: Route(make_bytes(), content_type=content_type))


def _redirects(hops: int, last: Callable[[ImageServer, str], str]) -> Make:
    def make(server: ImageServer, tag: str, _user: bytes) -> Url:
        location = last(server, tag)
        for hop in range(hops - 1, 0, -1):
            location = server.redirect(f"/{tag}/hop-{hop}", location)
        return Url(server.redirect(f"/{tag}", location))

    return make


def _face(server: ImageServer, tag: str) -> str:
    return server.serve(f"/{tag}/face.jpg", tom_variants()[1], content_type="image/jpeg")


def _record(value: bytes | None, key: bytes | None = None) -> Make:
    """A record of `value`, keyed by the case's user unless `key` is given."""

    def make(_server: ImageServer, _tag: str, user: bytes) -> Record:
        return Record(key or user, value)

    return make


def _body_record(transform: Callable[[str], bytes]) -> Make:
    def make(server: ImageServer, tag: str, user: bytes) -> Record:
        return Record(user, transform(_face(server, tag)))

    return make


def _without_key(server: ImageServer, tag: str, _user: bytes) -> Record:
    return Record(None, json.dumps(_valid_body(_face(server, tag))).encode())


def _with_long_key(server: ImageServer, tag: str, _user: bytes) -> Record:
    # Twice in its face event (the key and Owner): over the 1 MiB Kafka takes.
    return Record(b"u" * 600_000, json.dumps(_valid_body(_face(server, tag))).encode())


def _with_binary_header(server: ImageServer, tag: str, user: bytes) -> Record:
    body = json.dumps(_valid_body(_face(server, tag))).encode()
    return Record(user, body, (("trace", b"\xff\xfe\x00"),))


_BOMB_PNG = png_pixel_bomb(20_000, 20_000)
_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>'
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
_HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
_HTML = b"<!doctype html><html><body><img src='face.jpg'></body></html>"


CASES: tuple[HostileCase, ...] = (
    # Destinations: refused before any connection, from the resolved address.
    HostileCase("localhost", "url", URL, _url("http://localhost:{port}/a.jpg")),
    HostileCase("loopback-127.0.0.1", "url", URL, _url("http://127.0.0.1:{port}/a.jpg")),
    HostileCase("loopback-decimal", "url", URL, _url("http://2130706433:{port}/a.jpg")),
    HostileCase("loopback-octal", "url", URL, _url("http://0177.0.0.1:{port}/a.jpg")),
    HostileCase("loopback-hex", "url", URL, _url("http://0x7f.0.0.1:{port}/a.jpg")),
    HostileCase("loopback-short", "url", URL, _url("http://127.1:{port}/a.jpg")),
    HostileCase("loopback-ipv6", "url", URL, _url("http://[::1]:{port}/a.jpg")),
    HostileCase("ipv4-mapped-ipv6", "url", URL, _url("http://[::ffff:127.0.0.2]:{port}/a.jpg")),
    HostileCase("cloud-metadata", "url", URL, _url("http://169.254.169.254/latest/meta-data/")),
    HostileCase("private-10", "url", URL, _url("http://10.0.0.7/a.jpg")),
    HostileCase("private-172", "url", URL, _url("http://172.16.0.7/a.jpg")),
    HostileCase("private-192", "url", URL, _url("http://192.168.0.7/a.jpg")),
    HostileCase("carrier-grade-nat", "url", URL, _url("http://100.64.0.7/a.jpg")),
    HostileCase("multicast", "url", URL, _url("http://224.0.0.7/a.jpg")),
    HostileCase("unspecified", "url", URL, _url("http://0.0.0.0:{port}/a.jpg")),
    HostileCase("ipv6-unique-local", "url", URL, _url("http://[fd00::7]/a.jpg")),
    HostileCase("ipv6-link-local", "url", URL, _url("http://[fe80::7]/a.jpg")),
    HostileCase("userinfo", "url", URL, _url("http://me:pw@127.0.0.2:{port}/a.jpg")),
    HostileCase("port-not-allowed", "url", URL, _url("http://127.0.0.2:27017/a.jpg")),
    HostileCase("scheme-file", "url", URL, _url("file:///etc/passwd")),
    HostileCase("scheme-gopher", "url", URL, _url("gopher://127.0.0.2:{port}/_a")),
    HostileCase(
        "loopback-ideographic-dots",
        "url",
        URL,
        _url("http://127\u30020\u30020\u30021:{port}/a.jpg"),
    ),
    HostileCase("backslash-host", "url", URL, _url("http://127.0.0.1\\@127.0.0.2:{port}/a.jpg")),
    # Redirects: every hop is checked like the first.
    HostileCase(
        "redirect-to-loopback",
        "redirect",
        URL,
        _redirects(1, lambda s, t: "http://127.0.0.1/a.jpg"),
    ),
    HostileCase(
        "redirect-to-metadata",
        "redirect",
        URL,
        _redirects(1, lambda s, t: "http://169.254.169.254/"),
    ),
    HostileCase(
        "redirect-to-file", "redirect", URL, _redirects(1, lambda s, t: "file:///etc/passwd")
    ),
    HostileCase(
        "redirect-to-bad-port",
        "redirect",
        URL,
        _redirects(1, lambda s, t: "http://127.0.0.2:6379/"),
    ),
    HostileCase(
        "redirect-malformed",
        "redirect",
        URL,
        _redirects(1, lambda s, t: "http://[::1"),
    ),
    HostileCase("redirects-4", "redirect", DOWNLOAD, _redirects(4, _face)),
    HostileCase("redirects-3", "redirect", OK, _redirects(3, _face)),
    HostileCase(
        "redirect-loop", "redirect", DOWNLOAD, lambda s, t, u: Url(s.redirect(f"/{t}", f"/{t}"))
    ),
    HostileCase(
        "redirect-without-location", "redirect", DOWNLOAD, _served(lambda: Route(b"", 302))
    ),
    # Servers that misbehave.
    HostileCase("slow-drip", "server", DOWNLOAD, _served(lambda: Route(b"\xff" * 100, drip_s=0.2))),
    HostileCase(
        "no-response-headers", "server", DOWNLOAD, _served(lambda: Route(b"", stall_s=3.5))
    ),
    HostileCase(
        "gzip-bomb",
        "server",
        TOO_LARGE,
        _served(lambda: Route(gzip_bomb(64 << 20), headers=(("Content-Encoding", "gzip"),))),
    ),
    HostileCase(
        "corrupt-gzip",
        "server",
        DOWNLOAD,
        _served(lambda: Route(b"\x1f\x8b\x08\x00garbage", headers=(("Content-Encoding", "gzip"),))),
    ),
    HostileCase(
        "brotli-encoding",
        "server",
        DOWNLOAD,
        _served(lambda: Route(b"\x0b\x02\x80", headers=(("Content-Encoding", "br"),))),
    ),
    HostileCase(
        "length-claims-huge",
        "server",
        TOO_LARGE,
        _served(lambda: Route(b"x", declared_length=10**10)),
    ),
    HostileCase(
        "length-missing-body-huge",
        "server",
        TOO_LARGE,
        _served(lambda: Route(b"\0" * 3_000_000, send_length=False)),
    ),
    HostileCase(
        "length-claims-less",
        "server",
        FORMAT,
        _served(lambda: Route(tom_variants()[2], declared_length=200)),
    ),
    HostileCase("server-error", "server", DOWNLOAD, _served(lambda: Route(b"oops", status=500))),
    HostileCase("html-as-jpeg", "server", FORMAT, _image(lambda: _HTML)),
    # Image files.
    HostileCase("pixel-bomb-png", "image", TOO_LARGE, _image(lambda: _BOMB_PNG, "image/png")),
    HostileCase("svg", "image", FORMAT, _image(lambda: _SVG, "image/svg+xml")),
    HostileCase("pdf", "image", FORMAT, _image(lambda: _PDF, "application/pdf")),
    HostileCase("heic", "image", FORMAT, _image(lambda: _HEIC, "image/heic")),
    HostileCase("tiff", "image", FORMAT, _image(lambda: tom_as("TIFF"), "image/tiff")),
    HostileCase("truncated-jpeg", "image", FORMAT, _image(lambda: tom_as("JPEG")[:900])),
    HostileCase("empty-body", "image", FORMAT, _image(lambda: b"")),
    HostileCase("exif-rotated", "image", OK, _image(tom_sideways_with_exif)),
    HostileCase("exif-malformed-tag", "image", OK, _image(tom_sideways_with_malformed_exif)),
    HostileCase("animated-gif", "image", OK, _image(tom_animated_gif, "image/gif")),
    HostileCase("cmyk-jpeg", "image", OK, _image(lambda: tom_as("JPEG", "CMYK"))),
    HostileCase("grey-alpha-png", "image", OK, _image(lambda: tom_as("PNG", "LA"), "image/png")),
    # Records that are not readable commands: an error result and a dead-letter copy.
    HostileCase("no-key", "record", "InvalidParameter.UserId", _without_key, True),
    HostileCase(
        "key-not-utf8", "record", "InvalidParameter.UserId", _record(b"{}", key=b"\xff\xfe"), True
    ),
    HostileCase("key-too-long", "record", "InvalidParameter.UserId", _with_long_key, True),
    HostileCase("value-empty", "record", MESSAGE, _record(None), True),
    HostileCase("value-not-utf8", "record", MESSAGE, _record(b'{"PersonId": "\xff"}'), True),
    HostileCase("value-not-json", "record", MESSAGE, _record(b"{'PersonId': p}"), True),
    HostileCase("value-json-array", "record", MESSAGE, _record(b'["Lib", "p"]'), True),
    HostileCase(
        "value-lone-surrogate",
        "record",
        MESSAGE,
        _body_record(lambda u: json.dumps({**_valid_body(u), "RequestId": "\ud800"}).encode()),
        True,
    ),
    HostileCase("value-too-deep", "record", MESSAGE, _record(b"[" * 20_000 + b"]" * 20_000), True),
    HostileCase(
        "value-over-size-cap",
        "record",
        MESSAGE,
        _body_record(lambda u: json.dumps({**_valid_body(u), "PersonName": "n" * 70_000}).encode()),
        True,
    ),
    HostileCase(
        "wrong-type",
        "record",
        "InvalidParameter.CategoryId",
        _body_record(
            lambda u: json.dumps(
                {**_valid_body(u), "CategoryId": 42, "RequestId": f"R-{uuid.uuid4()}"}
            ).encode()
        ),
        True,
    ),
    HostileCase(
        "unknown-field",
        "record",
        MESSAGE,
        _body_record(lambda u: json.dumps({**_valid_body(u), "Owner": "someone-else"}).encode()),
        True,
    ),
    HostileCase("binary-header", "record", OK, _with_binary_header),
)


def case_named(name: str) -> HostileCase:
    return next(case for case in CASES if case.name == name)
