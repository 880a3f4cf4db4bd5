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
from mtcnn.utils.bboxes import (
    adjust_bboxes,
    generate_bounding_box,
    limit_bboxes,
    pick_matches,
    replace_confidence,
    resize_to_square,
    smart_nms_from_bboxes,
    to_json,
    upscale_bboxes,
)
from mtcnn.utils.images import build_scale_pyramid
from mtcnn.utils.landmarks import adjust_landmarks
from numpy.typing import NDArray

from service.adapters.area_pyramid import area_levels

# mtcnn's defaults, which DeepFace keeps.
_MIN_FACE_SIZE = 20
_SCALE_FACTOR = 0.709
_THRESHOLDS = (0.6, 0.7, 0.8)
_PNET_NMS = (0.5, 0.7)
_RNET_NMS = 0.7
_ONET_NMS = 0.7

Floats = NDArray[np.float32]


def _graph(model: Any, shape: list[int | None]) -> Any:
    """`model` as one TensorFlow graph for every input of `shape` (None: any size): a
    signature with open dimensions, so no new trace per pyramid level or batch size."""
    import tensorflow as tf

    signature = [tf.TensorSpec(shape, tf.float32)]
    run = tf.function(model, input_signature=signature)
    return lambda batch: run(tf.convert_to_tensor(batch, tf.float32))


def _normalized(pixels: NDArray[Any]) -> Floats:
    normalized: Floats = (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(128)
    return normalized


class FaceSearch:
    """Finds faces the way `mtcnn.MTCNN.detect_faces` does, on a BGR uint8 image.

    `graphs`: the three networks run as TensorFlow graphs (`tf.function`), traced once
    for any input size, instead of layer by layer in eager Keras, which costs a few
    milliseconds of dispatch per call whatever the input (P-Net is called once per pyramid
    level). Same kernels on the same inputs: the outputs are bit for bit the eager ones
    (tests/integration/test_face_search.py). Off, the eager networks are the reference.
    """

    def __init__(self, mtcnn: Any, max_level_side_px: int, graphs: bool = False) -> None:
        pnet, rnet, onet = (stage._model for stage in mtcnn.stages)
        if graphs:
            pnet, rnet, onet = (
                _graph(pnet, [1, None, None, 3]),
                _graph(rnet, [None, 24, 24, 3]),
                _graph(onet, [None, 48, 48, 3]),
            )
        self._pnet, self._rnet, self._onet = pnet, rnet, onet
        self._max_level_side = max_level_side_px

    def detect_faces(
        self, image: NDArray[np.uint8], pad_y: int, pad_x: int
    ) -> list[dict[str, Any]]:
        """mtcnn's answer for the BGR `image` bordered in black by `pad_y` and `pad_x`.

        Boxes and keypoints are in the bordered image's coordinates. The border is never
        built: at 12 MP it would be 140 MB copied for pixels known to be black.
        """
        canvas = _Canvas(image, pad_y, pad_x)
        boxes = self._propose(canvas)
        if len(boxes):
            boxes = self._refine(canvas, boxes)
        if len(boxes):
            boxes = self._finish(canvas, boxes)
        if not len(boxes):
            return []
        shape = np.asarray([[canvas.height, canvas.width, 3]])
        boxes = limit_bboxes(boxes, images_shapes=shape, limit_landmarks=False)
        found: list[dict[str, Any]] = to_json(boxes, images_count=1)[0]
        return found

    def smallest_face_px(self, image: NDArray[np.uint8], pad_y: int, pad_x: int) -> int:
        """The smallest face `detect_faces` can find in this image with this border.

        mtcnn's first network looks for 12-pixel faces in each scaled copy.
        """
        canvas = _Canvas(image, pad_y, pad_x)
        scales = self.levels(canvas.height, canvas.width)
        return math.ceil(12 / scales[0]) if scales else max(canvas.height, canvas.width)

    def levels(self, height: int, width: int) -> list[float]:
        """The pyramid's scales that this search visits, largest first."""
        scales = build_scale_pyramid(
            width, height, min_face_size=_MIN_FACE_SIZE, scale_factor=_SCALE_FACTOR
        )
        if not self._max_level_side:
            return [float(s) for s in scales]
        longest = max(height, width)
        return [float(s) for s in scales if longest * s <= self._max_level_side]

    def _propose(self, canvas: _Canvas) -> Floats:
        per_level = []
        scales = self.levels(canvas.height, canvas.width)
        for scale, level in zip(scales, canvas.levels(scales), strict=True):
            offsets, scores = self._pnet(level[None])
            boxes = generate_bounding_box(offsets, scores, _THRESHOLDS[0])
            boxes = upscale_bboxes(boxes, np.asarray([scale]))
            per_level.append(
                smart_nms_from_bboxes(
                    boxes, threshold=_PNET_NMS[0], method="union", initial_sort=False
                )
            )
        if not per_level:
            return np.empty((0, 6), dtype=np.float32)
        boxes = np.concatenate(per_level, axis=0)
        boxes = smart_nms_from_bboxes(
            boxes, threshold=_PNET_NMS[1], method="union", initial_sort=True
        )
        return np.asarray(resize_to_square(boxes))

    def _refine(self, canvas: _Canvas, boxes: Floats) -> Floats:
        offsets, scores = self._rnet(canvas.patches(boxes, 24))
        boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
        boxes = pick_matches(boxes, score_threshold=_THRESHOLDS[1])
        if not len(boxes):
            return np.asarray(boxes)
        boxes = smart_nms_from_bboxes(boxes, threshold=_RNET_NMS, method="union", initial_sort=True)
        return np.asarray(resize_to_square(boxes))

    def _finish(self, canvas: _Canvas, boxes: Floats) -> Floats:
        offsets, landmarks, scores = self._onet(canvas.patches(boxes, 48))
        landmarks = adjust_landmarks(landmarks, boxes)
        boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
        boxes = np.concatenate([boxes, landmarks], axis=-1)
        boxes = pick_matches(boxes, scores_column=5, score_threshold=_THRESHOLDS[2])
        if not len(boxes):
            return np.asarray(boxes)
        return np.asarray(
            smart_nms_from_bboxes(boxes, threshold=_ONET_NMS, method="min", initial_sort=True)
        )


class _Canvas:
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

    def patches(self, boxes: Floats, side: int) -> Floats:
        """`tf.image.crop_and_resize` of mtcnn's normalized input, from the pixels it reads.

        Boxes are rows of [image, x1, y1, x2, y2, ...] in pixels; mtcnn divides them by the
        image size, and crop_and_resize samples bilinearly at `y1 * (h - 1) + i * step`,
        with zero (after normalization) outside the image.
        """
        steps = np.arange(side, dtype=np.float64) / (side - 1)

        def positions(low: NDArray[Any], high: NDArray[Any], size: int) -> NDArray[np.float64]:
            start = (low / size * (size - 1)).astype(np.float32).astype(np.float64)
            span = ((high - low) / size * (size - 1)).astype(np.float32).astype(np.float64)
            grid: NDArray[np.float64] = start[:, None] + span[:, None] * steps[None, :]
            return grid

        ys = positions(boxes[:, 2], boxes[:, 4], self.height)  # (boxes, side)
        xs = positions(boxes[:, 1], boxes[:, 3], self.width)
        inside = ((ys >= 0) & (ys <= self.height - 1))[:, :, None] & (
            (xs >= 0) & (xs <= self.width - 1)
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
        return np.where(inside[:, :, :, None], values, 0.0).astype(np.float32)

    def _pixels(self, rows: NDArray[np.float64], cols: NDArray[np.float64]) -> NDArray[np.float64]:
        """Normalized RGB at every (row, col) pair of the grids rows x cols; black in the border."""
        height, width = self._image.shape[:2]
        r = rows.astype(np.intp) - self._pad_y
        c = cols.astype(np.intp) - self._pad_x
        r_ok, c_ok = (r >= 0) & (r < height), (c >= 0) & (c < width)
        picked = self._image[
            np.clip(r, 0, height - 1)[:, :, None], np.clip(c, 0, width - 1)[:, None, :]
        ]
        picked = np.where((r_ok[:, :, None] & c_ok[:, None, :])[..., None], picked, 0)
        return np.asarray(_normalized(picked[..., ::-1]), dtype=np.float64)
