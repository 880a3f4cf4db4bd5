"""Our face search finds what mtcnn itself finds on DeepFace's padded image, to the pixel."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
import tensorflow as tf
from mtcnn import MTCNN

from service.adapters.face_search import Canvas, FaceSearch
from service.adapters.image_decoder import decode_image
from service.adapters.model_weights import PlacedWeights
from service.adapters.mtcnn_networks import DetectorRuntime, MtcnnNetworks, Networks
from tests.support.images import fixture_bytes, photo_with_face


@pytest.fixture(scope="module")
def mtcnn() -> Any:
    return MTCNN()


@pytest.fixture(scope="module")
def eager(mtcnn: Any) -> Networks:
    """The very networks `mtcnn` runs, eagerly: the reference."""
    pnet, rnet, onet = (stage._model for stage in mtcnn.stages)
    return pnet, rnet, onet


def padded(image: np.ndarray) -> tuple[np.ndarray, int, int]:
    border_y, border_x = image.shape[0] // 2, image.shape[1] // 2
    black = (0, 0, 0)
    rgb = cv2.copyMakeBorder(
        image, border_y, border_y, border_x, border_x, cv2.BORDER_CONSTANT, value=black
    )[:, :, ::-1]
    return np.ascontiguousarray(rgb), border_y, border_x


def summary(faces: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            tuple(int(v) for v in f["box"]),
            {k: tuple(map(int, p)) for k, p in f["keypoints"].items()},
        )
        for f in faces
    ]


@pytest.mark.parametrize(
    ("make", "cap"),
    [
        (lambda: fixture_bytes("astronaut.png"), 0),
        (lambda: fixture_bytes("astronaut.png"), 640),  # a portrait: the cap changes nothing
        (lambda: fixture_bytes("t1.jpg"), 0),  # several faces
        (lambda: photo_with_face(1920, 1080, 700), 640),  # the large scales skipped
    ],
    ids=["portrait", "portrait-capped", "group", "photo-1080-capped"],
)
def test_boxes_and_landmarks_are_mtcnns_own(
    make: Any, cap: int, mtcnn: Any, eager: Networks
) -> None:
    image = decode_image(make(), 50_000_000)
    rgb, border_y, border_x = padded(image)

    ours = FaceSearch(eager, cap, whole_copies=True).detect_faces(image, border_y, border_x)
    theirs = mtcnn.detect_faces(rgb)

    assert ours, "no face found"
    assert summary(ours) == summary(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine["confidence"] == pytest.approx(reference["confidence"], abs=1e-3)


def test_a_face_too_small_for_the_capped_copies_is_not_found(eager: Networks) -> None:
    image = decode_image(photo_with_face(1920, 1080, 160), 50_000_000)
    _, border_y, border_x = padded(image)
    search = FaceSearch(eager, 640)

    assert search.detect_faces(image, border_y, border_x) == []
    assert search.smallest_face_px(image, border_y, border_x) == 80


IMAGES = pytest.mark.parametrize(
    "make",
    [
        lambda: fixture_bytes("astronaut.png"),
        lambda: fixture_bytes("t1.jpg"),
        lambda: fixture_bytes("Tom_Hanks_54745.png"),
        lambda: fixture_bytes("t1_face_turned.png"),
        lambda: fixture_bytes("coffee.png"),
        lambda: photo_with_face(1920, 1080, 700),
        lambda: photo_with_face(4000, 3000, 900, quality=80),
    ],
    ids=["portrait", "group", "small-face", "turned", "no-face", "photo-1080", "photo-12mp"],
)


@IMAGES
def test_the_networks_as_tensorflow_graphs_give_the_eager_output_bit_for_bit(
    make: Any, eager: Networks
) -> None:
    image = decode_image(make(), 50_000_000)
    _, border_y, border_x = padded(image)

    reference = FaceSearch(eager, 640).detect_faces(image, border_y, border_x)
    graphs = FaceSearch(MtcnnNetworks("tensorflow").load(), 640)

    # boxes, landmarks and confidences, exactly
    assert graphs.detect_faces(image, border_y, border_x) == reference


@IMAGES
def test_the_networks_on_onnxruntime_find_the_same_faces_and_landmarks(
    make: Any, eager: Networks, placed_weights: PlacedWeights
) -> None:
    image = decode_image(make(), 50_000_000)
    _, border_y, border_x = padded(image)
    onnx = MtcnnNetworks("onnxruntime", placed_weights.detector_graphs).load()

    reference = FaceSearch(eager, 640).detect_faces(image, border_y, border_x)
    found = FaceSearch(onnx, 640).detect_faces(image, border_y, border_x)

    assert summary(found) == summary(reference)
    for mine, theirs in zip(found, reference, strict=True):
        assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-5)


@pytest.mark.parametrize("side", [24, 48])
def test_the_patches_are_tensorflows_crop_and_resize_to_the_bit(side: int) -> None:
    rng = np.random.default_rng(side)
    image = cv2.GaussianBlur(rng.integers(0, 256, (301, 407, 3), dtype=np.uint8), (0, 0), 1.5)
    pad_y, pad_x = 150, 203
    canvas = Canvas(image, pad_y, pad_x)
    count = 400
    # Boxes of any size over the canvas, some reaching past its edges.
    x1 = rng.uniform(-60, canvas.width, count)
    y1 = rng.uniform(-60, canvas.height, count)
    extent = rng.uniform(12, 320, count)
    boxes = np.stack([np.zeros(count), x1, y1, x1 + extent, y1 + extent], axis=1)

    ours = canvas.patches(boxes, side)

    rgb, _, _ = padded(image)
    normalized = (rgb.astype(np.float32) - np.float32(127.5)) / np.float32(128)
    size = np.asarray([[canvas.height, canvas.width, canvas.height, canvas.width]])
    theirs = tf.image.crop_and_resize(
        normalized[None], boxes[:, [2, 1, 4, 3]] / size, np.zeros(count, int), (side, side)
    )
    assert np.array_equal(ours, theirs.numpy())


@IMAGES
@pytest.mark.parametrize("runtime", ["keras", "onnxruntime"])
def test_searching_only_where_the_copies_show_the_picture_changes_nothing(
    make: Any, runtime: DetectorRuntime, placed_weights: PlacedWeights
) -> None:
    image = decode_image(make(), 50_000_000)
    _, border_y, border_x = padded(image)
    networks = MtcnnNetworks(runtime, placed_weights.detector_graphs).load()

    whole = FaceSearch(networks, 640, whole_copies=True).detect_faces(image, border_y, border_x)
    windows = FaceSearch(networks, 640).detect_faces(image, border_y, border_x)

    assert repr(windows) == repr(whole)  # boxes, landmarks and confidences, to the bit
