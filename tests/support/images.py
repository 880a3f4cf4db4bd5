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

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


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


def png_pixel_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of `width` x `height` black pixels: kilobytes on the wire,
    gigabytes once decoded to RGB."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)  # a filter byte, then the packed bits
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed to about a thousandth of that."""
    deflate = zlib.compressobj(9, wbits=31)
    block = b"\0" * (1 << 20)
    return b"".join(deflate.compress(block) for _ in range(size >> 20)) + deflate.flush()


def tom_sideways_with_exif() -> bytes:
    """Pixels stored turned a quarter, with the EXIF orientation that turns them back."""
    base = Image.open(FIXTURES / "Tom_Hanks_54745.png").convert("RGB").resize((160, 160))
    stored = base.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return _encode(stored, "JPEG", quality=95, exif=exif)


def tom_animated_gif() -> bytes:
    base = Image.open(FIXTURES / "Tom_Hanks_54745.png").convert("RGB").resize((160, 160))
    other = Image.open(FIXTURES / "coffee.png").convert("RGB").resize((160, 160))
    return _encode(base, "GIF", save_all=True, append_images=[other], duration=100, loop=0)


def tom_as(fmt: str, mode: str = "RGB") -> bytes:
    base = Image.open(FIXTURES / "Tom_Hanks_54745.png").convert(mode).resize((160, 160))
    return _encode(base, fmt)


def tom_sideways_with_malformed_exif() -> bytes:
    """As `tom_sideways_with_exif`, plus a tag of the wrong type (InkSet as text), which
    Pillow cannot write back when it applies the orientation. Written by hand: Pillow
    will not write it either."""
    base = Image.open(FIXTURES / "Tom_Hanks_54745.png").convert("RGB").resize((160, 160))
    entries = [
        struct.pack("<HHI", 0x0112, 3, 1) + struct.pack("<HH", 6, 0),  # Orientation, SHORT
        struct.pack("<HHI", 332, 2, 4) + b"cam\0",  # InkSet, as ASCII
    ]
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 2) + b"".join(entries)
    exif = b"Exif\0\0" + tiff + struct.pack("<I", 0)
    return _encode(base.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


def photo_with_face(width: int, height: int, face_px: int, quality: int = 90) -> bytes:
    """A large JPEG "photo" with one face: the astronaut portrait, scaled to `face_px`,
    placed off-centre on a scene scaled up from the cat picture."""
    scene = Image.open(FIXTURES / "chelsea.png").convert("RGB").resize((width, height))
    face = Image.open(FIXTURES / "astronaut.png").convert("RGB").resize((face_px, face_px))
    scene.paste(face, (width * 5 // 9, height // 4))
    return _encode(scene, "JPEG", quality=quality)
