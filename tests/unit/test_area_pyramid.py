"""The pyramid's copies are TensorFlow's area resize of the bordered image, in float."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from service.adapters.area_pyramid import area_levels


# The first three are resized directly, the last through the integral (a larger canvas).
@pytest.mark.parametrize("pad", [(0, 0), (301, 405), (7, 0), (900, 1200)])
def test_each_size_matches_tensorflow_on_the_bordered_image(pad: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    picture = cv2.GaussianBlur(rng.integers(0, 256, (603, 811, 3), dtype=np.uint8), (0, 0), 2)
    pad_y, pad_x = pad
    black = (0, 0, 0)
    bordered = cv2.copyMakeBorder(
        picture, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=black
    )
    full_h, full_w = bordered.shape[:2]
    sizes = [(int(full_h * s), int(full_w * s)) for s in (0.6, 0.2127, 0.0763, 0.013)]

    ours = area_levels(picture, pad_y, pad_x, sizes)

    for size, level in zip(sizes, ours, strict=True):
        theirs = tf.image.resize(bordered[None].astype(np.float32), size, method="area")
        assert level.shape == (*size, 3)
        # 8-bit rounding would be off by up to 0.5; float sums agree far closer.
        assert np.abs(level - theirs.numpy()[0]).max() < 0.02


def test_a_band_boundary_inside_an_output_pixel_is_summed_across_bands() -> None:
    # Over two million pixels: the integral's path, band by band.
    picture = np.full((1100, 2000, 3), 200, dtype=np.uint8)
    picture[511:514] = 10  # straddles the 512-row band edge
    [level] = area_levels(picture, 0, 0, [(110, 4)])
    expected = tf.image.resize(picture[None].astype(np.float32), (110, 4), method="area")
    assert np.abs(level - expected.numpy()[0]).max() < 0.01
