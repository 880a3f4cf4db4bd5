"""Test images: the committed fixtures and variants made from them."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _variants(fixture: str, count: int, size: int, size_step: int, turn: int) -> tuple[bytes, ...]:
    """Distinct files of one person: small turns, flips, rescales and re-encodings."""
    base = Image.open(FIXTURES / fixture).convert("RGB")
    variants = []
    for i in range(count):
        image = base.rotate((i % 5 - 2) * turn, resample=Image.Resampling.BICUBIC)
        if i % 2:
            image = ImageOps.mirror(image)
        side = size + size_step * (i % 6)
        image = image.resize((side, side), Image.Resampling.LANCZOS)
        variants.append(_encode(image, "JPEG", quality=70 + i))
    return tuple(variants)


@cache
def astronaut_variants(count: int = 12) -> tuple[bytes, ...]:
    return _variants("astronaut.png", count, size=448, size_step=16, turn=4)


def downscaled_astronaut(size: int) -> bytes:
    base = Image.open(FIXTURES / "astronaut.png").convert("RGB")
    return _encode(base.resize((size, size), Image.Resampling.LANCZOS))


def tilted_astronaut(degrees: float) -> bytes:
    base = Image.open(FIXTURES / "astronaut.png").convert("RGB")
    return _encode(base.rotate(degrees, expand=True, resample=Image.Resampling.BICUBIC))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height`: tiny on the wire, huge if decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def astronaut_16bit_gray_png() -> bytes:
    base = Image.open(FIXTURES / "astronaut.png").convert("L")
    wide = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    return _encode(wide)


def astronaut_mpo() -> bytes:
    """A JPEG with a multi-picture segment, as phones write them."""
    base = Image.open(FIXTURES / "astronaut.png").convert("RGB")
    return _encode(base, "MPO", save_all=True, append_images=[base.resize((128, 128))])


@cache
def tom_variants(count: int = 16) -> tuple[bytes, ...]:
    """Small files of one person: cheap to infer, for workloads of hundreds."""
    return _variants("Tom_Hanks_54745.png", count, size=112, size_step=8, turn=3)


def small_no_face() -> bytes:
    base = Image.open(FIXTURES / "coffee.png").convert("RGB")
    return _encode(base.resize((150, 100)), "JPEG", quality=85)
