"""What a detector found, and the rule that a registration image holds one usable face."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from service.domain.errors import ErrorCode, Rejected

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Landmarks:
    """Eyes as seen by the observer (left of the picture first), nose tip and mouth corners."""

    left_eye: Point
    right_eye: Point
    nose: Point | None = None
    mouth_left: Point | None = None
    mouth_right: Point | None = None


@dataclass(frozen=True)
class Detection:
    box: Box
    confidence: float
    landmarks: Landmarks | None

    def mapped(self, shift_x: float, shift_y: float, scale: float) -> Detection:
        """This detection in another frame, where a point p becomes (p - shift) / scale."""

        def point(p: Point) -> Point:
            return ((p[0] - shift_x) / scale, (p[1] - shift_y) / scale)

        def optional(p: Point | None) -> Point | None:
            return None if p is None else point(p)

        marks = self.landmarks
        return Detection(
            box=Box(
                x=round((self.box.x - shift_x) / scale),
                y=round((self.box.y - shift_y) / scale),
                w=round(self.box.w / scale),
                h=round(self.box.h / scale),
            ),
            confidence=self.confidence,
            landmarks=None
            if marks is None
            else Landmarks(
                left_eye=point(marks.left_eye),
                right_eye=point(marks.right_eye),
                nose=optional(marks.nose),
                mouth_left=optional(marks.mouth_left),
                mouth_right=optional(marks.mouth_right),
            ),
        )


@dataclass(frozen=True)
class Pose:
    yaw_degrees: float
    roll_degrees: float


@dataclass(frozen=True)
class FacePolicy:
    min_confidence: float
    min_size_px: int
    max_yaw_degrees: float
    max_roll_degrees: float


def estimate_pose(landmarks: Landmarks) -> Pose:
    """Roll from the eye line; yaw from how far the nose tip sits off the eyes' midpoint.

    The nose tip stands out of the eye plane by about half the distance between the eyes, so
    a head turned by `yaw` moves it sideways by `tan(yaw)` half-eye-distances (after roll
    is undone). Coarse, but the detector's landmarks are coarse too.
    """
    (lx, ly), (rx, ry) = landmarks.left_eye, landmarks.right_eye
    dx, dy = rx - lx, ry - ly
    roll = math.degrees(math.atan2(dy, dx))
    half_eye_distance = math.hypot(dx, dy) / 2
    if landmarks.nose is None or half_eye_distance == 0:
        return Pose(yaw_degrees=0.0, roll_degrees=roll)
    mid_x, mid_y = (lx + rx) / 2, (ly + ry) / 2
    nx, ny = landmarks.nose[0] - mid_x, landmarks.nose[1] - mid_y
    angle = math.radians(-roll)
    sideways = nx * math.cos(angle) - ny * math.sin(angle)
    yaw = math.degrees(math.atan(sideways / half_eye_distance))
    return Pose(yaw_degrees=yaw, roll_degrees=roll)


def choose_single_face(detections: list[Detection], policy: FacePolicy) -> Detection:
    """The one face a registration image must hold, or the reason it does not."""
    faces = [d for d in detections if d.confidence >= policy.min_confidence]
    if not faces:
        raise Rejected(ErrorCode.NO_FACE, "no face was found in the image")
    if len(faces) > 1:
        raise Rejected(
            ErrorCode.MULTIPLE_FACES,
            f"the image holds {len(faces)} faces; exactly one is required",
        )
    face = faces[0]
    size = min(face.box.w, face.box.h)
    if size < policy.min_size_px:
        raise Rejected(
            ErrorCode.FACE_TOO_SMALL,
            f"the face is {size} px; at least {policy.min_size_px} px is required",
        )
    if face.landmarks is not None:
        pose = estimate_pose(face.landmarks)
        if abs(pose.roll_degrees) > policy.max_roll_degrees:
            raise Rejected(
                ErrorCode.FACE_NOT_FRONTAL,
                f"the face is tilted {abs(pose.roll_degrees):.0f} degrees; "
                f"at most {policy.max_roll_degrees:.0f} is accepted",
            )
        if abs(pose.yaw_degrees) > policy.max_yaw_degrees:
            raise Rejected(
                ErrorCode.FACE_NOT_FRONTAL,
                f"the face is turned {abs(pose.yaw_degrees):.0f} degrees; "
                f"at most {policy.max_yaw_degrees:.0f} is accepted",
            )
    return face


def faces_to_search(
    detections: list[Detection], policy: FacePolicy, max_faces: int
) -> list[Detection]:
    """The faces a search looks for: any pose, at least the minimum size, largest first."""
    faces = [
        d
        for d in detections
        if d.confidence >= policy.min_confidence and min(d.box.w, d.box.h) >= policy.min_size_px
    ]
    if not faces:
        raise Rejected(
            ErrorCode.NO_FACE,
            f"no face of at least {policy.min_size_px} px was found in the image",
        )
    faces.sort(key=lambda d: (-d.box.w * d.box.h, d.box.y, d.box.x))
    return faces[:max_faces]


@dataclass(frozen=True)
class AnalysedFace:
    """A face found and embedded: the single face of a registration image, or one of the
    faces a search looks for."""

    box: Box
    confidence: float
    embedding: tuple[float, ...]
    # Where the worker's time went (decode, detect, embed): for logs and the benchmark.
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)
