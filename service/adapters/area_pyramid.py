"""Area-averaged copies of a black-bordered image at several sizes, without the border.

mtcnn rescales its float input with `tf.image.resize(method=AREA)`: each output pixel is
the mean of the source area it covers, fractional pixels included. Rounding that mean to
8 bits (as `cv2.resize` on uint8 does) moves the detector's eyes by a pixel, and a Dlib
embedding by up to 0.15, so the means are computed here in floating point.

The sums come from the image's integral (summed-area table), which is bilinear inside each
pixel, so an area with fractional edges is read from four interpolated corners. The
table is built band by band and only the rows and columns the sizes need are kept: one
pass over the picture serves every size. The border is black, zero in every sum, so it is
never built.

A small picture is cheaper the plain way: its bordered copy in float64, area-resized by
OpenCV to each size (a 448 px portrait: 37 ms of CPU instead of 99; the two agree to 3e-5
of a pixel value). At 1920x1080 that copy would cost 0.85 s, the integral 0.07.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

_BAND_ROWS = 512  # rows of the integral held at once
# Bordered pictures up to this many pixels are resized directly (see above).
_DIRECT_MAX_PIXELS = 2_000_000

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class _Edges:
    """Where output pixels start and end along one axis, as integral indices and weights."""

    low: NDArray[np.intp]  # the integral line at or before each edge
    weight: Floats  # how far past `low` the edge lies, 0..1

    @classmethod
    def of(cls, out: int, full: int, pad: int, inner: int) -> _Edges:
        edges = np.clip(np.arange(out + 1) * (full / out) - pad, 0.0, float(inner))
        low = np.minimum(np.floor(edges), inner - 1).astype(np.intp)
        return cls(low=low, weight=edges - low)

    @property
    def lines(self) -> NDArray[np.intp]:
        return np.concatenate([self.low, self.low + 1])


def area_levels(
    image: NDArray[np.uint8], pad_y: int, pad_x: int, sizes: Sequence[tuple[int, int]]
) -> list[NDArray[np.float32]]:
    """For each (height, width), the bordered image area-averaged to that size (float32)."""
    height, width, channels = image.shape
    full_h, full_w = height + 2 * pad_y, width + 2 * pad_x
    if full_h * full_w <= _DIRECT_MAX_PIXELS:
        return _resized(image, pad_y, pad_x, sizes)
    ys = [_Edges.of(h, full_h, pad_y, height) for h, _ in sizes]
    xs = [_Edges.of(w, full_w, pad_x, width) for _, w in sizes]
    tables = [np.zeros((len(y.lines), len(x.lines), channels)) for y, x in zip(ys, xs, strict=True)]
    carry = np.zeros((width + 1, channels), dtype=np.int64)  # the integral's row at the band's top
    # A band's integral in 32-bit integers, exact while a band sums to under 2**31: half the
    # memory traffic of float64, and the same sums.
    band_rows = max(1, min(_BAND_ROWS, (2**31 - 1) // (255 * width)))
    for top in range(0, height, band_rows):
        band = image[top : top + band_rows]
        integral = np.asarray(cv2.integral(band, sdepth=cv2.CV_32S)).reshape(
            band.shape[0] + 1, width + 1, channels
        )
        for table, y, x in zip(tables, ys, xs, strict=True):
            rows = y.lines
            here = np.flatnonzero((rows > top) & (rows <= top + band.shape[0]))
            if len(here):
                cols = x.lines
                table[here] = integral[np.ix_(rows[here] - top, cols)] + carry[cols]
        carry = carry + integral[-1]
    levels = []
    for (h, w), table, y, x in zip(sizes, tables, ys, xs, strict=True):
        corners = _bilinear(table, y.weight, x.weight)
        sums = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]
        levels.append((sums / ((full_h / h) * (full_w / w))).astype(np.float32))
    return levels


def _resized(
    image: NDArray[np.uint8], pad_y: int, pad_x: int, sizes: Sequence[tuple[int, int]]
) -> list[NDArray[np.float32]]:
    black = (0.0,) * image.shape[2]
    bordered = cv2.copyMakeBorder(
        image.astype(np.float64), pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=black
    )
    return [
        np.asarray(cv2.resize(bordered, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
        for h, w in sizes
    ]


def _bilinear(table: Floats, wy: Floats, wx: Floats) -> Floats:
    """The integral at every (edge y, edge x) from the lines before and after each edge."""
    ny, nx = len(wy), len(wx)
    top, bottom = table[:ny], table[ny:]
    rows = top + (bottom - top) * wy[:, None, None]
    left, right = rows[:, :nx], rows[:, nx:]
    corners: Floats = left + (right - left) * wx[None, :, None]
    return corners
