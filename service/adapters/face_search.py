"""mtcnn's face search, reading the image only where each stage needs it.

mtcnn (the package DeepFace wraps) turns the whole image into floats, rescales that float
copy for every level of its pyramid and crops its later stages' patches from it: for a
12 MP photo, padded as DeepFace pads it, that is over a gigabyte touched a dozen times.
Here the pyramid levels are rescaled from the 8-bit image and the patches are sampled
pixel by pixel, with the same scales, the same sampling and the same networks, so the
faces found are mtcnn's own.

The search may also skip the pyramid's largest levels. Those are the expensive ones and
only find faces a few dozen pixels tall; the faces a registration needs are found on the
smaller levels exactly as before, so skipping bounds the cost of a large photo without
moving its face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.adapters import mtcnn_boxes as boxes_of
from service.adapters.area_pyramid import area_levels
from service.adapters.mtcnn_networks import Networks

# mtcnn's defaults, which DeepFace keeps.
_MIN_FACE_SIZE = 20
_SCALE_FACTOR = 0.709
_THRESHOLDS = (0.6, 0.7, 0.8)
_PNET_NMS = (0.5, 0.7)
_RNET_NMS = 0.7
_ONET_NMS = 0.7

Floats = NDArray[np.float32]


def _normalized(pixels: NDArray[Any]) -> Floats:
    normalized: Floats = (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(128)
    return normalized


class FaceSearch:
    """Finds faces the way `mtcnn.MTCNN.detect_faces` does, on a BGR uint8 image, with
    mtcnn's three networks on any runtime (mtcnn_networks.py)."""

    def __init__(
        self, networks: Networks, max_level_side_px: int, whole_copies: bool = False
    ) -> None:
        """`whole_copies`: P-Net searches all of each scaled copy, black border included, as
        mtcnn does (the reference); otherwise only where it sees the picture, which finds
        the same faces for a quarter of the work (`Canvas.picture_window`)."""
        self._pnet, self._rnet, self._onet = networks
        self._max_level_side = max_level_side_px
        self._whole_copies = whole_copies

    def detect_faces(
        self, image: NDArray[np.uint8], pad_y: int, pad_x: int
    ) -> list[dict[str, Any]]:
        """mtcnn's answer for the BGR `image` bordered in black by `pad_y` and `pad_x`.

        Boxes and keypoints are in the bordered image's coordinates. The border is never
        built: at 12 MP it would be 140 MB copied for pixels known to be black.
        """
        canvas = Canvas(image, pad_y, pad_x)
        boxes = self._propose(canvas)
        if len(boxes):
            boxes = self._refine(canvas, boxes)
        if len(boxes):
            boxes = self._finish(canvas, boxes)
        return boxes_of.as_faces(boxes_of.inside(boxes, canvas.height, canvas.width))

    def smallest_face_px(self, image: NDArray[np.uint8], pad_y: int, pad_x: int) -> int:
        """The smallest face `detect_faces` can find in this image with this border.

        mtcnn's first network looks for 12-pixel faces in each scaled copy.
        """
        canvas = Canvas(image, pad_y, pad_x)
        scales = self.levels(canvas.height, canvas.width)
        return (
            math.ceil(boxes_of.PNET_WINDOW / scales[0])
            if scales
            else max(canvas.height, canvas.width)
        )

    def levels(self, height: int, width: int) -> list[float]:
        """The pyramid's scales that this search visits, largest first."""
        scales = boxes_of.scale_pyramid(width, height, _MIN_FACE_SIZE, _SCALE_FACTOR)
        if not self._max_level_side:
            return [float(s) for s in scales]
        longest = max(height, width)
        return [float(s) for s in scales if longest * s <= self._max_level_side]

    def _propose(self, canvas: Canvas) -> Floats:
        per_level = []
        scales = self.levels(canvas.height, canvas.width)
        for scale, level in zip(scales, canvas.levels(scales), strict=True):
            height, width = level.shape[:2]
            top, bottom, left, right = (
                (0, height, 0, width)
                if self._whole_copies
                else canvas.picture_window(height, width)
            )
            offsets, scores = _arrays(self._pnet(level[None, top:bottom, left:right]))
            cells = (top // boxes_of.PNET_STRIDE, left // boxes_of.PNET_STRIDE)
            boxes = boxes_of.proposals(offsets, scores, _THRESHOLDS[0], scale, cells)
            per_level.append(boxes_of.suppressed(boxes, _PNET_NMS[0], "union", sort=False))
        if not per_level:
            return np.empty((0, 6), dtype=np.float32)
        boxes = np.concatenate(per_level, axis=0)
        boxes = boxes_of.suppressed(boxes, _PNET_NMS[1], "union", sort=True)
        return boxes_of.squared(boxes)

    def _refine(self, canvas: Canvas, boxes: Floats) -> Floats:
        offsets, scores = _arrays(self._rnet(canvas.patches(boxes, 24)))
        boxes = boxes_of.regressed(boxes_of.rescored(boxes, scores), offsets)
        boxes = boxes_of.over(boxes, _THRESHOLDS[1])
        if not len(boxes):
            return boxes
        boxes = boxes_of.suppressed(boxes, _RNET_NMS, "union", sort=True)
        return boxes_of.squared(boxes)

    def _finish(self, canvas: Canvas, boxes: Floats) -> Floats:
        offsets, landmarks, scores = _arrays(self._onet(canvas.patches(boxes, 48)))
        landmarks = boxes_of.landmarks_in_image(landmarks, boxes)
        boxes = boxes_of.regressed(boxes_of.rescored(boxes, scores), offsets)
        boxes = np.concatenate([boxes, landmarks], axis=-1)
        boxes = boxes_of.over(boxes, _THRESHOLDS[2], column=5)
        if not len(boxes):
            return boxes
        return boxes_of.suppressed(boxes, _ONET_NMS, "min", sort=True)


def _arrays(outputs: Sequence[Any]) -> list[NDArray[Any]]:
    """A network's outputs as NumPy arrays, from any runtime (a tf.Tensor converts)."""
    return [np.asarray(output) for output in outputs]


class Canvas:
    """A BGR image in a black border, seen as mtcnn sees its input: RGB, built on demand."""

    def __init__(self, image: NDArray[np.uint8], pad_y: int, pad_x: int) -> None:
        self._image = image
        self._pad_y, self._pad_x = pad_y, pad_x
        self.height = image.shape[0] + 2 * pad_y
        self.width = image.shape[1] + 2 * pad_x

    def levels(self, scales: Sequence[float]) -> list[Floats]:
        """mtcnn's normalized RGB input at each scale (area means, size truncated)."""
        sizes = [(max(1, int(self.height * s)), max(1, int(self.width * s))) for s in scales]
        means = area_levels(self._image, self._pad_y, self._pad_x, sizes)
        return [_normalized(level[:, :, ::-1]) for level in means]

    def picture_window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Rows top:bottom and columns left:right of a copy of `height` x `width` where P-Net
        sees the picture: every window that reads a pixel of it, and all of each.

        Half of every side is DeepFace's black border: three quarters of each copy. P-Net
        scores a black window 0.0016, far under its 0.6 threshold, and each output cell
        reads its own window only, so the rest of the copy is not searched: the cells of
        the window are the whole copy's, the same numbers, a quarter of the work. The top
        and left stay even, on the pooling's grid.
        """

        def span(size: int, full: int, pad: int, inner: int) -> tuple[int, int]:
            first = math.floor(pad * size / full) - boxes_of.PNET_WINDOW - 1
            last = math.ceil((pad + inner) * size / full) + boxes_of.PNET_WINDOW + 1
            start = max(0, first - first % boxes_of.PNET_STRIDE)
            return start, min(size, last)

        top, bottom = span(height, self.height, self._pad_y, self._image.shape[0])
        left, right = span(width, self.width, self._pad_x, self._image.shape[1])
        return top, bottom, left, right

    def patches(self, boxes: Floats, side: int) -> Floats:
        """`tf.image.crop_and_resize` of mtcnn's normalized input, from the pixels it reads.

        Boxes are rows of [image, x1, y1, x2, y2, ...] in pixels; mtcnn divides them by the
        image size (in float64; TensorFlow takes the quotients as float32), and the kernel
        samples bilinearly at `y1 * (h - 1) + i * scale`, with zero (after normalization)
        outside the image. Every step is float32 arithmetic in the kernel's order, so the
        patches are its own to the bit (tests/integration/test_face_search.py).
        """

        def positions(low: NDArray[Any], high: NDArray[Any], size: int) -> Floats:
            start, end = (low / size).astype(np.float32), (high / size).astype(np.float32)
            extent = np.float32(size - 1)
            scale = (end - start) * extent / np.float32(side - 1)
            steps = np.arange(side, dtype=np.float32)
            grid: Floats = (start * extent)[:, None] + steps[None, :] * scale[:, None]
            return grid

        ys = positions(boxes[:, 2], boxes[:, 4], self.height)  # (boxes, side)
        xs = positions(boxes[:, 1], boxes[:, 3], self.width)
        inside = ((ys >= 0) & (ys <= np.float32(self.height - 1)))[:, :, None] & (
            (xs >= 0) & (xs <= np.float32(self.width - 1))
        )[:, None, :]
        top_y, bottom_y = np.floor(ys), np.ceil(ys)
        left_x, right_x = np.floor(xs), np.ceil(xs)
        dy = (ys - top_y)[:, :, None, None]
        dx = (xs - left_x)[:, None, :, None]
        top_left = self._pixels(top_y, left_x)
        bottom_left = self._pixels(bottom_y, left_x)
        top = top_left + (self._pixels(top_y, right_x) - top_left) * dx
        bottom = bottom_left + (self._pixels(bottom_y, right_x) - bottom_left) * dx
        values = top + (bottom - top) * dy
        patches: Floats = np.where(inside[:, :, :, None], values, np.float32(0))
        return patches

    def _pixels(self, rows: Floats, cols: Floats) -> Floats:
        """Normalized RGB at every (row, col) pair of the grids rows x cols; black in the border."""
        height, width = self._image.shape[:2]
        r = rows.astype(np.intp) - self._pad_y
        c = cols.astype(np.intp) - self._pad_x
        r_ok, c_ok = (r >= 0) & (r < height), (c >= 0) & (c < width)
        picked = self._image[
            np.clip(r, 0, height - 1)[:, :, None], np.clip(c, 0, width - 1)[:, None, :]
        ]
        picked = np.where((r_ok[:, :, None] & c_ok[:, None, :])[..., None], picked, 0)
        return _normalized(picked[..., ::-1])
