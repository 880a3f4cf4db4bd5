"""mtcnn's box arithmetic for one image, in the same operations in the same order.

These are the steps of `mtcnn/utils/bboxes.py`, `landmarks.py` and `images.py` that the
face search uses, restated because importing anything from the mtcnn package imports its
`MTCNN`, and with it TensorFlow: half a gigabyte in every inference worker that runs the
networks on ONNX Runtime. Same NumPy calls (the same unstable sort included), so the
same boxes to the last bit: tests/integration/test_face_search.py compares the search
with mtcnn's own `detect_faces`.

Rows are [image, x1, y1, x2, y2, confidence], followed by ten landmark coordinates (five
x, then five y) once O-Net has run. The image column is always 0 here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Rows = NDArray[Any]

# P-Net scores each 12-pixel window, every second pixel (its first stage pools 2x2).
PNET_WINDOW, PNET_STRIDE = 12, 2


def scale_pyramid(width: int, height: int, min_face_size: int, scale_factor: float) -> Rows:
    """The scales at which P-Net looks for 12-pixel faces, largest first."""
    min_size = PNET_WINDOW
    count = round(-((np.log(min(width, height) / min_size) / np.log(scale_factor)) + 1))
    return (min_size / min_face_size) * scale_factor ** np.arange(count)


def proposals(
    offsets: Rows, scores: Rows, threshold: float, scale: float, first_cell: tuple[int, int]
) -> Rows:
    """P-Net's windows scoring over `threshold`, regressed, in the unscaled image, best first.

    `first_cell`: the (row, column) in the whole copy's output of the maps' first cell,
    when P-Net ran on a part of the copy.
    """
    stride, cell = PNET_STRIDE, PNET_WINDOW
    face = scores[:, :, :, 1]
    found = np.stack(np.where(face > threshold))  # image, row, column
    where = found + np.asarray([[0], [first_cell[0]], [first_cell[1]]])
    reg_x1, reg_y1, reg_x2, reg_y2 = np.transpose(offsets[found[0], found[1], found[2]], (1, 0))
    up_left = where * np.asarray([[1], [stride], [stride]]) + np.asarray([[0], [1], [1]])
    bottom_right = where * np.asarray([[1], [stride], [stride]]) + np.asarray([[0], [cell], [cell]])
    width = bottom_right[2] - up_left[2]
    height = bottom_right[1] - up_left[1]
    rows = np.stack(
        [
            where[0],
            up_left[2] + reg_x1 * width,
            up_left[1] + reg_y1 * height,
            bottom_right[2] + reg_x2 * width,
            bottom_right[1] + reg_y2 * height,
            face[found[0], found[1], found[2]],
        ],
        axis=0,
    ).T
    rows = _by_score(rows, rows[:, -1])
    rows[:, 1:5] = rows[:, 1:5] / np.asarray([[scale]])
    return rows


def suppressed(rows: Rows, threshold: float, method: str, sort: bool) -> Rows:
    """Non-maximum suppression: a box overlapping a better one by more than `threshold` goes."""
    if sort:
        rows = _by_score(rows, rows[:, 5])
    if not len(rows):
        return np.empty((0, 6))
    overlap = _overlap(rows[:, 1:5], method)
    later = np.triu(np.ones((overlap.shape[0], overlap.shape[0])), k=1)
    failed = (overlap > threshold).astype(int)
    kept = np.where((failed * later).sum(axis=0) == 0)[0]
    survivors: Rows = rows[kept.astype(int)]
    return survivors


def squared(rows: Rows) -> Rows:
    rows = rows.copy()
    height = rows[:, 4] - rows[:, 2]
    width = rows[:, 3] - rows[:, 1]
    side = np.maximum(width, height)
    rows[:, 1] = rows[:, 1] + width * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 2] + height * 0.5 - side * 0.5
    rows[:, 3:5] = rows[:, 1:3] + np.tile(side, (2, 1)).T
    return rows


def rescored(rows: Rows, scores: Rows) -> Rows:
    rows[:, -1] = scores[:, -1]
    return rows


def regressed(rows: Rows, offsets: Rows) -> Rows:
    rows = rows.copy()
    width = rows[:, 3] - rows[:, 1] + 1
    height = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([width, height, width, height], axis=-1)
    return rows


def landmarks_in_image(landmarks: Rows, rows: Rows) -> Rows:
    """O-Net's landmarks, relative to each box, in image coordinates."""
    landmarks = np.asarray(landmarks).copy()
    width = rows[:, 3:4] - rows[:, 1:2] + 1
    height = rows[:, 4:5] - rows[:, 2:3] + 1
    landmarks[:, 0:5] = width * landmarks[:, 0:5] + rows[:, 1:2] - 1
    landmarks[:, 5:10] = height * landmarks[:, 5:10] + rows[:, 2:3] - 1
    return landmarks


def over(rows: Rows, threshold: float, column: int = -1) -> Rows:
    return rows[np.where(rows[:, column] > threshold)[0]]


def inside(rows: Rows, height: int, width: int) -> Rows:
    """Boxes clipped to the image (landmarks left as found)."""
    rows = rows.copy()
    for column, limit in ((1, width), (3, width), (2, height), (4, height)):
        rows[:, column] = np.minimum(np.maximum(rows[:, column], 0), limit - 1)
    return rows


def as_faces(rows: Rows) -> list[dict[str, Any]]:
    """mtcnn's answer: box as [x, y, width, height] and keypoints as integer [x, y]."""
    faces = []
    for row in rows:
        x1, y1, x2, y2 = row[1:5]
        box = np.asarray([x1, y1, x2 - x1, y2 - y1]).round().astype(int).tolist()
        face: dict[str, Any] = {"box": box, "confidence": row[5]}
        if len(row) > 6:
            marks = row.round().astype(int)
            face["keypoints"] = {
                "nose": [marks[8], marks[13]],
                "mouth_right": [marks[10], marks[15]],
                "right_eye": [marks[7], marks[12]],
                "left_eye": [marks[6], marks[11]],
                "mouth_left": [marks[9], marks[14]],
            }
        faces.append(face)
    return faces


def _by_score(rows: Rows, scores: Rows) -> Rows:
    # np.argsort's default, unstable sort, reversed: ties fall as they fall in mtcnn.
    return rows[np.argsort(scores)[::-1]]


def _overlap(boxes: Rows, method: str) -> Rows:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    a, b = boxes[None], boxes[:, None]
    top = np.maximum(a[:, :, 0], b[:, :, 0])
    left = np.maximum(a[:, :, 1], b[:, :, 1])
    bottom = np.minimum(a[:, :, 2], b[:, :, 2])
    right = np.minimum(a[:, :, 3], b[:, :, 3])
    shared = np.maximum(0, bottom - top) * np.maximum(0, right - left)
    whole: Rows = (
        area[:, None] + area[None, :] - shared
        if method == "union"
        else np.minimum(area[:, None], area[None, :])
    )
    return np.asarray(shared / whole)
