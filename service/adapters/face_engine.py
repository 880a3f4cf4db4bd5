"""DeepFace detection and embedding, run on already decoded pixels.

Blocking and CPU-bound: called only from the inference pool, never on the event loop, and
by one thread at a time (decoded images share memory, see `ReusedPixels`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from service.adapters.face_embedder import CHIP_SIDE, Embedding, FaceEmbedder
from service.adapters.face_search import FaceSearch
from service.adapters.image_decoder import ReusedPixels, decode_image
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.domain.errors import ErrorCode, Rejected
from service.domain.faces import (
    AnalysedFace,
    Box,
    Detection,
    FacePolicy,
    Landmarks,
    choose_single_face,
    faces_to_search,
)
from service.timings import timed

_WARM_UP_SIZE = 160
# Decoded images up to this size share one block of memory: a 12 MP photo takes 36 MB.
_REUSED_PIXEL_BYTES = 64 * 1024 * 1024


class DeepFaceEngine:
    """DeepFace's Dlib recognition model behind its detectors: the embedding is the one
    `DeepFace.represent(model_name="Dlib")` computes for the same face."""

    def __init__(
        self,
        detector_name: str,
        policy: FacePolicy,
        max_pixels: int,
        max_level_side_px: int,
        embedding: Embedding,
        detection: MtcnnNetworks,
    ) -> None:
        self.detector_name = detector_name
        self._policy = policy
        self._max_pixels = max_pixels
        self._max_level_side = max_level_side_px
        self._detection = detection
        self._embedding = embedding
        self._embedder: FaceEmbedder | None = None
        self._detector: Any = None
        self._search: FaceSearch | None = None
        self._pixels = ReusedPixels(_REUSED_PIXEL_BYTES)

    def load(self) -> None:
        """Build both models and run them once, so the first command pays no start-up cost."""
        self._embedder = self._embedding.embedder()
        if self.detector_name == "mtcnn":
            self._search = FaceSearch(
                self._detection.load(),
                self._max_level_side,
                # The reference runs mtcnn's networks as mtcnn does, on all of each copy.
                whole_copies=self._detection.runtime == "keras",
            )
        else:
            from deepface.modules import modeling

            self._detector = modeling.build_model(
                task="face_detector", model_name=self.detector_name
            )
        blank = np.zeros((_WARM_UP_SIZE, _WARM_UP_SIZE, 3), dtype=np.uint8)
        self._detect(blank)
        self._embed_crop(blank)

    def analyse(self, data: bytes) -> AnalysedFace:
        """Decode, find the one usable face, embed it; `Rejected` says why not."""
        [face] = self._analysed(data, lambda found: [choose_single_face(found, self._policy)])
        return face

    def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        """Decode, find up to `max_faces` faces of any pose (largest first), embed each."""
        return self._analysed(data, lambda found: faces_to_search(found, self._policy, max_faces))

    def _analysed(
        self, data: bytes, choose: Callable[[list[Detection]], list[Detection]]
    ) -> list[AnalysedFace]:
        """The faces `choose` keeps of those detected, embedded; its refusal, explained."""
        timings: dict[str, float] = {}
        with timed(timings, "decode"):
            image = decode_image(data, self._max_pixels, self._pixels)
        with timed(timings, "detect"):
            detections = self._detect(image)
        try:
            faces = choose(detections)
        except Rejected as refusal:
            raise self._explained(refusal, image) from None
        with timed(timings, "embed"):
            embeddings = [self._embed(image, face) for face in faces]
        return [
            AnalysedFace(
                box=Box(x=max(0, face.box.x), y=max(0, face.box.y), w=face.box.w, h=face.box.h),
                confidence=face.confidence,
                embedding=embedding,
                timings_ms=timings,
            )
            for face, embedding in zip(faces, embeddings, strict=True)
        ]

    def _explained(self, refusal: Rejected, image: NDArray[np.uint8]) -> Rejected:
        """A "no face" says how small a face this image could have shown, when it matters."""
        if refusal.code is not ErrorCode.NO_FACE or self._search is None:
            return refusal
        smallest = self._search.smallest_face_px(image, *_deepface_border(image))
        if smallest <= self._policy.min_size_px:
            return refusal
        return Rejected(
            ErrorCode.NO_FACE,
            f"no face of at least {smallest} px was found in the image "
            f"(smaller ones are not searched for in a {image.shape[1]}x{image.shape[0]} image)",
        )

    def _detect(self, image: NDArray[np.uint8]) -> list[Detection]:
        """Faces in the image's coordinates, found as plain `DeepFace.represent` finds them.

        DeepFace pads by half the image on every side before it detects. The detector's
        boxes and eyes depend on it, and Dlib embeddings move with every pixel of the crop:
        searching the same padded picture keeps ours equal to DeepFace's.
        """
        border_y, border_x = _deepface_border(image)
        if self._search is not None:
            faces = self._search.detect_faces(image, border_y, border_x)
            found = [_from_mtcnn(item) for item in faces]
        else:
            padded = cv2.copyMakeBorder(
                image, border_y, border_y, border_x, border_x, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            )
            found = [_from_deepface(region) for region in self._detector.detect_faces(padded)]
        return [face.mapped(border_x, border_y, 1.0) for face in found]

    def _embed(self, image: NDArray[np.uint8], face: Detection) -> tuple[float, ...]:
        from deepface.models.Detector import FacialAreaRegion
        from deepface.modules import detection

        # DeepFace aligns on its padded image, so a face box may reach past the picture's
        # edge (tight crops do): a window around the face, black beyond the picture, gives
        # the same pixels and coordinates without padding the whole image.
        margin = max(face.box.w, face.box.h)
        left, top = face.box.x - margin, face.box.y - margin
        window = _window(image, left, top, face.box.w + 2 * margin, face.box.h + 2 * margin)
        face = face.mapped(left, top, 1.0)
        marks = face.landmarks
        region = FacialAreaRegion(
            x=face.box.x,
            y=face.box.y,
            w=face.box.w,
            h=face.box.h,
            # DeepFace names eyes from the person's side, the opposite of ours.
            left_eye=_int_point(marks.right_eye) if marks else None,
            right_eye=_int_point(marks.left_eye) if marks else None,
            confidence=face.confidence,
        )
        aligned = detection.extract_face(
            facial_area=region,
            img=window,
            align=marks is not None,
            expand_percentage=0,
            width_border=0,
            height_border=0,
            detector_backend=self.detector_name,
        )
        return self._embed_crop(aligned.img)

    def _embed_crop(self, crop: NDArray[Any]) -> tuple[float, ...]:
        from deepface.modules import preprocessing

        assert self._embedder is not None, "engine used before load()"
        # DeepFace scales the crop to [0, 1] before it resizes it: resizing the 8-bit crop
        # instead rounds every interpolated pixel, which moved embeddings by up to 0.011.
        if crop.dtype == np.uint8:
            crop = crop.astype(np.float64) / 255
        [chip] = preprocessing.resize_image(img=crop, target_size=(CHIP_SIDE, CHIP_SIDE))
        # Then, as DeepFace's Dlib client does: RGB, back to 0-255, truncated to 8 bits.
        chip = chip[:, :, ::-1]
        if chip.max() <= 1:
            chip = chip * 255
        return self._embedder.embed(np.ascontiguousarray(chip.astype(np.uint8)))


def _deepface_border(image: NDArray[np.uint8]) -> tuple[int, int]:
    """The black border DeepFace adds on every side before it detects: half the image."""
    return image.shape[0] // 2, image.shape[1] // 2


def _window(
    image: NDArray[np.uint8], left: int, top: int, width: int, height: int
) -> NDArray[np.uint8]:
    """image[top:top+height, left:left+width], with black where that lies outside it."""
    window = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(image.shape[1], left + width), min(image.shape[0], top + height)
    if x1 > x0 and y1 > y0:
        window[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return window


def _int_point(point: tuple[float, float]) -> tuple[int, int]:
    return (int(point[0]), int(point[1]))


def _from_mtcnn(item: dict[str, Any]) -> Detection:
    x, y, w, h = (int(v) for v in item["box"])
    points = item.get("keypoints") or {}

    def point(name: str) -> tuple[float, float] | None:
        value = points.get(name)
        return (float(value[0]), float(value[1])) if value is not None else None

    left, right = point("left_eye"), point("right_eye")
    landmarks = (
        Landmarks(
            left_eye=left,
            right_eye=right,
            nose=point("nose"),
            mouth_left=point("mouth_left"),
            mouth_right=point("mouth_right"),
        )
        if left is not None and right is not None
        else None
    )
    return Detection(
        box=Box(x=max(0, x), y=max(0, y), w=w, h=h),
        confidence=float(item["confidence"]),
        landmarks=landmarks,
    )


def _from_deepface(region: Any) -> Detection:
    landmarks = None
    if region.left_eye is not None and region.right_eye is not None:
        landmarks = Landmarks(
            left_eye=tuple(region.right_eye),
            right_eye=tuple(region.left_eye),
            nose=tuple(region.nose) if region.nose is not None else None,
        )
    return Detection(
        box=Box(x=int(region.x), y=int(region.y), w=int(region.w), h=int(region.h)),
        confidence=float(region.confidence or 0.0),
        landmarks=landmarks,
    )
