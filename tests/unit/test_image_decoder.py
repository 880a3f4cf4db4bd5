import io
import random

import numpy as np
import pytest
from PIL import Image

from bench.workload import bench_images
from service.adapters.image_decoder import ReusedPixels, decode_image
from service.domain.errors import ErrorCode, Rejected
from tests.support.images import (
    astronaut_16bit_gray_png,
    astronaut_mpo,
    fixture_bytes,
    png_header_only,
    tom_sideways_with_exif,
    tom_sideways_with_malformed_exif,
)


def test_a_png_decodes_to_bgr_pixels() -> None:
    pixels = decode_image(fixture_bytes("astronaut.png"), max_pixels=10**7)
    assert pixels.shape == (512, 512, 3)


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (20000, 20000)])
def test_a_huge_image_is_refused_from_its_header(width: int, height: int) -> None:
    # The file has no pixel data at all: only a refusal from the header can pass this.
    with pytest.raises(Rejected) as refused:
        decode_image(png_header_only(width, height), max_pixels=50_000_000)
    assert refused.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "50000000" in refused.value.message


@pytest.mark.parametrize(
    "data",
    [b"<html>not an image</html>", b"", fixture_bytes("astronaut.png")[:2000], b"%PDF-1.4"],
)
def test_bytes_that_are_not_an_image_are_refused(data: bytes) -> None:
    with pytest.raises(Rejected) as refused:
        decode_image(data, max_pixels=10**7)
    assert refused.value.code is ErrorCode.IMAGE_FORMAT


def test_a_16_bit_grayscale_png_keeps_its_tones() -> None:
    pixels = decode_image(astronaut_16bit_gray_png(), max_pixels=10**7)
    reference = decode_image(fixture_bytes("astronaut.png"), max_pixels=10**7)
    assert pixels.shape == reference.shape
    # Clipping 16-bit samples at 255 would leave most pixels white.
    assert (pixels == 255).mean() < 0.05
    assert abs(float(pixels.mean()) - float(reference.mean())) < 10


def test_a_phone_jpeg_with_a_multi_picture_segment_is_accepted() -> None:
    pixels = decode_image(astronaut_mpo(), max_pixels=10**7)
    assert pixels.shape == (512, 512, 3)


def test_a_malformed_exif_tag_does_not_cost_the_orientation() -> None:
    upright = decode_image(tom_sideways_with_exif(), max_pixels=10**7)
    despite_bad_tag = decode_image(tom_sideways_with_malformed_exif(), max_pixels=10**7)
    assert despite_bad_tag.shape == upright.shape
    assert np.abs(despite_bad_tag.astype(int) - upright.astype(int)).mean() < 2


def _pillow_bgr(data: bytes) -> np.ndarray:
    """Pillow's own decode, turned to BGR: what every JPEG decoded before the libjpeg path."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))[:, :, ::-1]


def _pillow_decision(data: bytes) -> np.ndarray | None:
    try:
        return _pillow_bgr(data)
    except Exception:
        return None


def _jpeg(mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(fixture_bytes("chelsea.png"))) as image:
        image.convert(mode).save(out, "JPEG", **options)
    return out.getvalue()


_JPEGS = {
    "4:2:0": _jpeg(quality=90, subsampling=2),
    "4:2:2": _jpeg(quality=75, subsampling=1),
    "4:4:4": _jpeg(quality=95, subsampling=0),
    "progressive": _jpeg(quality=85, progressive=True),
    "optimized huffman": _jpeg(quality=60, optimize=True),
    "restart markers": _jpeg(quality=90, restart_marker_blocks=4),
    "trailing bytes": _jpeg(quality=90) + b"\x00" * 16,
    "camera file": fixture_bytes("t1.jpg"),
}


@pytest.mark.parametrize(
    "data",
    [
        *(pytest.param(data, id=name) for name, data in _JPEGS.items()),
        pytest.param(_jpeg("L", quality=90), id="gray"),
        pytest.param(_jpeg("CMYK", quality=90), id="cmyk"),
        *(pytest.param(image.data, id=image.name) for image in bench_images()),
    ],
)
def test_a_jpeg_decodes_to_exactly_pillows_pixels(data: bytes) -> None:
    pixels = decode_image(data, max_pixels=5 * 10**7)
    assert pixels.dtype == np.uint8
    assert pixels.flags.c_contiguous
    assert np.array_equal(pixels, _pillow_bgr(data))


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_a_jpeg_cut_short_is_refused_as_pillow_refuses_it(cut: float) -> None:
    whole = _JPEGS["progressive"]
    with pytest.raises(Rejected) as refused:
        decode_image(whole[: int(len(whole) * cut)], max_pixels=10**7)
    assert refused.value.code is ErrorCode.IMAGE_FORMAT


def _damaged(whole: bytes, rng: random.Random) -> bytes:
    data = bytearray(whole)
    damage = rng.choice(("flipped bytes", "cut", "cut with an end marker", "gap"))
    if damage == "flipped bytes":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if damage.startswith("cut"):
        end = b"\xff\xd9" if damage.endswith("marker") else b""
        return bytes(data[: rng.randrange(len(data))]) + end
    start = rng.randrange(len(data))
    return bytes(data[:start] + data[start + rng.randint(1, 500) :])


@pytest.mark.parametrize("reused", [None, ReusedPixels(10**8)], ids=["own memory", "reused"])
def test_a_damaged_jpeg_is_decoded_or_refused_exactly_as_pillow_decides(
    reused: ReusedPixels | None,
) -> None:
    # libjpeg patches a corrupt stretch with grey and only warns: that must never turn a
    # file Pillow refuses into pixels, nor give other pixels than Pillow's. In reused
    # memory, a decode given up leaves it written over for the next.
    rng = random.Random(20261130)
    accepted = 0
    for case in range(400):
        data = _damaged(rng.choice([_JPEGS["4:2:0"], _JPEGS["camera file"]]), rng)
        expected = _pillow_decision(data)
        try:
            pixels = decode_image(data, max_pixels=10**7, reused=reused)
        except Rejected as refused:
            assert expected is None, f"case {case}: refused ({refused.message}), Pillow decodes"
            continue
        assert expected is not None, f"case {case}: decoded, Pillow refuses"
        assert np.array_equal(pixels, expected), f"case {case}: pixels differ from Pillow's"
        accepted += 1
    assert 100 < accepted < 400  # both outcomes were tried


def test_images_decoded_in_turn_into_reused_memory_are_each_their_own() -> None:
    images = [image.data for image in bench_images() if image.name.endswith(".jpg")][:4]
    reused = ReusedPixels(10**8)
    previous = None
    for turn, data in enumerate([*images, *reversed(images)]):
        pixels = decode_image(data, max_pixels=5 * 10**7, reused=reused)
        assert np.array_equal(pixels, _pillow_bgr(data))
        assert pixels.flags.c_contiguous
        if turn >= len(images):  # grown to the largest by now: nothing new is mapped
            assert np.shares_memory(pixels, previous)
        previous = pixels


def test_an_image_over_the_reused_memory_gets_its_own() -> None:
    small, large = _JPEGS["4:2:0"], next(i.data for i in bench_images() if i.kind == "photo-12mp")
    reused = ReusedPixels(1024 * 1024)
    kept = decode_image(small, max_pixels=5 * 10**7, reused=reused)
    first = kept.copy()
    pixels = decode_image(large, max_pixels=5 * 10**7, reused=reused)
    assert np.array_equal(pixels, _pillow_bgr(large))
    assert not np.shares_memory(pixels, kept)
    assert np.array_equal(kept, first)  # the large one went elsewhere
