import numpy as np
import pytest

from service.adapters.image_decoder import decode_image
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
