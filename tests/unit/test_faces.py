import pytest

from service.domain.errors import ErrorCode, Rejected
from service.domain.faces import (
    Box,
    Detection,
    FacePolicy,
    Landmarks,
    choose_single_face,
    estimate_pose,
    faces_to_search,
)

POLICY = FacePolicy(min_confidence=0.9, min_size_px=64, max_yaw_degrees=30, max_roll_degrees=30)
FRONTAL = Landmarks(left_eye=(100, 100), right_eye=(160, 100), nose=(130, 130))


def face(size: int = 100, confidence: float = 0.99, marks: Landmarks | None = FRONTAL) -> Detection:
    return Detection(box=Box(80, 60, size, size), confidence=confidence, landmarks=marks)


def test_a_frontal_face_has_no_yaw_or_roll() -> None:
    pose = estimate_pose(FRONTAL)
    assert abs(pose.yaw_degrees) < 1 and abs(pose.roll_degrees) < 1


def test_a_nose_off_centre_means_a_turned_head() -> None:
    turned = Landmarks(left_eye=(100, 100), right_eye=(160, 100), nose=(160, 130))
    assert estimate_pose(turned).yaw_degrees == pytest.approx(45, abs=1)


def test_a_sloped_eye_line_means_a_tilted_head_and_no_yaw() -> None:
    tilted = Landmarks(left_eye=(100, 100), right_eye=(150, 150), nose=(115, 135))
    pose = estimate_pose(tilted)
    assert pose.roll_degrees == pytest.approx(45, abs=1)
    assert abs(pose.yaw_degrees) < 10


def code_of(detections: list[Detection]) -> ErrorCode:
    with pytest.raises(Rejected) as refused:
        choose_single_face(detections, POLICY)
    return refused.value.code


def test_one_good_face_is_chosen() -> None:
    assert choose_single_face([face()], POLICY) == face()


def test_no_face_and_low_confidence_detections_are_no_face() -> None:
    assert code_of([]) is ErrorCode.NO_FACE
    assert code_of([face(confidence=0.5)]) is ErrorCode.NO_FACE


def test_two_faces_are_refused() -> None:
    assert code_of([face(), face(size=90)]) is ErrorCode.MULTIPLE_FACES


def test_a_small_face_is_refused() -> None:
    assert code_of([face(size=40)]) is ErrorCode.FACE_TOO_SMALL


def test_turned_or_tilted_faces_are_not_frontal() -> None:
    turned = Landmarks(left_eye=(100, 100), right_eye=(160, 100), nose=(165, 130))
    tilted = Landmarks(left_eye=(100, 100), right_eye=(150, 150), nose=(115, 135))
    assert code_of([face(marks=turned)]) is ErrorCode.FACE_NOT_FRONTAL
    assert code_of([face(marks=tilted)]) is ErrorCode.FACE_NOT_FRONTAL


def test_a_search_takes_faces_of_any_pose_largest_first_and_ignores_small_ones() -> None:
    turned = Landmarks(left_eye=(100, 100), right_eye=(160, 100), nose=(175, 130))
    small, large, middle = face(size=40), face(size=200, marks=turned), face(size=120)

    assert faces_to_search([small, middle, large], POLICY, 10) == [large, middle]
    assert faces_to_search([small, middle, large], POLICY, 1) == [large]
    with pytest.raises(Rejected) as refused:
        faces_to_search([small, face(confidence=0.5)], POLICY, 10)
    assert refused.value.code is ErrorCode.NO_FACE and "64 px" in refused.value.message
