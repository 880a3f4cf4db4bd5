"""Model weights placed from the installed packages, also by services starting together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.adapters.model_weights import place_weights


def test_services_starting_at_once_on_one_home_all_place_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))  # place_weights sets it; restored after

    with ThreadPoolExecutor(max_workers=6) as pool:
        placed = list(pool.map(lambda _: place_weights(tmp_path, "Dlib", "mtcnn"), range(6)))

    assert len({p.model_weights_sha256 for p in placed}) == 1
    weights = tmp_path / ".deepface" / "weights"
    assert sorted(p.name for p in weights.iterdir()) == [
        "dlib_face_recognition_resnet_model_v1.dat"
    ]
