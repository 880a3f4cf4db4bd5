"""The fast inference path against the reference one: same faces, same embeddings.

The reference is what DeepFace runs: mtcnn's networks in eager Keras, the Dlib ResNet in
dlib-bin. The fast path (both on ONNX Runtime) must find the same faces and give
embeddings within 1e-4 of the reference's, on every test image and every benchmark image.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from bench.workload import bench_images
from service.adapters.face_embedder import DlibEmbedder, Embedding, OnnxEmbedder
from service.adapters.face_engine import DeepFaceEngine
from service.adapters.face_search import FaceSearch
from service.adapters.image_decoder import decode_image
from service.adapters.model_weights import PlacedWeights
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.domain.errors import Rejected
from service.domain.faces import AnalysedFace, FacePolicy
from tests.support.images import FIXTURES

MAX_EMBEDDING_SHIFT = 1e-4
# Every face the policy lets through, any pose: the comparison covers the group photo too.
POLICY = FacePolicy(min_confidence=0.9, min_size_px=20, max_yaw_degrees=90, max_roll_degrees=90)
MAX_FACES = 10

# The images in which neither path finds a face: a cup of coffee, a cat, a blank scene.
WITHOUT_FACES = {"fixture:coffee.png", "fixture:chelsea.png", "bench:no-face.jpg"}
IMAGES = {
    **{f"fixture:{path.name}": path.read_bytes() for path in sorted(FIXTURES.glob("*.*g"))},
    **{f"bench:{image.name}": image.data for image in bench_images()},
}


def engine(placed_weights: PlacedWeights, fast: bool) -> DeepFaceEngine:
    assert placed_weights.model_weights is not None
    built = DeepFaceEngine(
        "mtcnn",
        POLICY,
        max_pixels=50_000_000,
        max_level_side_px=640,
        embedding=Embedding(
            runtime="onnxruntime" if fast else "dlib",
            weights=placed_weights.model_weights,
            graph=placed_weights.model_graph,
        ),
        detection=MtcnnNetworks("onnxruntime", placed_weights.detector_graphs)
        if fast
        else MtcnnNetworks("keras"),
    )
    built.load()
    return built


@pytest.fixture(scope="module")
def reference(placed_weights: PlacedWeights) -> DeepFaceEngine:
    return engine(placed_weights, fast=False)


@pytest.fixture(scope="module")
def fast(placed_weights: PlacedWeights) -> DeepFaceEngine:
    return engine(placed_weights, fast=True)


def faces(engine: DeepFaceEngine, data: bytes) -> list[AnalysedFace] | str:
    try:
        return engine.find_faces(data, MAX_FACES)
    except Rejected as refusal:
        return f"{refusal.code.value}: {refusal}"


@pytest.mark.parametrize("name", list(IMAGES))
def test_the_fast_path_finds_the_reference_faces_and_embeds_them_alike(
    name: str, reference: DeepFaceEngine, fast: DeepFaceEngine
) -> None:
    expected, found = faces(reference, IMAGES[name]), faces(fast, IMAGES[name])

    if isinstance(expected, str):
        assert name in WITHOUT_FACES, expected
        assert found == expected  # the same refusal, said the same way
        return
    assert name not in WITHOUT_FACES
    assert not isinstance(found, str), found
    assert [face.box for face in found] == [face.box for face in expected]
    for mine, theirs in zip(found, expected, strict=True):
        shift = np.linalg.norm(np.subtract(mine.embedding, theirs.embedding))
        assert shift <= MAX_EMBEDDING_SHIFT


@pytest.fixture(scope="module")
def searches(placed_weights: PlacedWeights) -> tuple[FaceSearch, FaceSearch]:
    """The face search on the reference networks and on the fast ones."""
    keras = MtcnnNetworks("keras").load()
    onnx = MtcnnNetworks("onnxruntime", placed_weights.detector_graphs).load()
    return FaceSearch(keras, 640), FaceSearch(onnx, 640)


@pytest.mark.parametrize("name", list(IMAGES))
def test_the_fast_detector_finds_the_same_boxes_and_landmarks(
    name: str, searches: tuple[FaceSearch, FaceSearch]
) -> None:
    image = decode_image(IMAGES[name], 50_000_000)
    border = (image.shape[0] // 2, image.shape[1] // 2)  # as DeepFace pads
    reference, fast = (search.detect_faces(image, *border) for search in searches)

    def rounded(faces: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (f["box"], {name: tuple(map(int, p)) for name, p in f["keypoints"].items()})
            for f in faces
        ]

    assert rounded(fast) == rounded(reference)


def chips() -> list[np.ndarray]:
    """Face-sized RGB chips cut at random from every test image: many inputs, real pixels."""
    rng = np.random.default_rng(14)
    cut = []
    for data in IMAGES.values():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        image = cv2.resize(image, None, fx=0.25, fy=0.25) if image.shape[0] > 2000 else image
        height, width = image.shape[:2]
        for _ in range(6):
            side = int(rng.integers(40, min(height, width) + 1))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            chip = cv2.resize(image[top : top + side, left : left + side], (150, 150))
            cut.append(np.ascontiguousarray(chip[:, :, ::-1]))
    return cut


def test_the_resnet_on_onnxruntime_gives_dlibs_numbers(placed_weights: PlacedWeights) -> None:
    assert placed_weights.model_weights is not None and placed_weights.model_graph is not None
    dlib, onnx = (
        DlibEmbedder(placed_weights.model_weights),
        OnnxEmbedder(placed_weights.model_graph),
    )
    cut = chips()

    shifts = [np.abs(np.subtract(onnx.embed(c), dlib.embed(c))).max() for c in cut]

    assert len(cut) >= 100
    assert max(shifts) <= 1e-5
