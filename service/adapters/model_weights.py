"""Model weights come from installed packages, placed where DeepFace looks for them."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# DeepFace model or detector name -> weight files it loads from $DEEPFACE_HOME.
# mtcnn is absent on purpose: the mtcnn package loads the weights it ships itself.
_WEIGHT_FILES = {
    "Dlib": ("dlib_face_recognition_resnet_model_v1.dat",),
    "dlib": ("shape_predictor_5_face_landmarks.dat",),
}
_SELF_CONTAINED = {"mtcnn"}


class MissingWeights(RuntimeError):
    """A model needs weights that no installed package provides; nothing is downloaded."""


@dataclass(frozen=True)
class PlacedWeights:
    model_weights_sha256: str


def _packaged_models_dir() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.__file__).parent / "models"


def place_weights(deepface_home: Path, model: str, detector: str) -> PlacedWeights:
    """Copy packaged weights under `deepface_home` and point DeepFace at it."""
    target_dir = deepface_home / ".deepface" / "weights"
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in (model, detector):
        if name not in _WEIGHT_FILES and name not in _SELF_CONTAINED:
            raise MissingWeights(
                f"no installed package ships weights for {name!r}; "
                f"usable offline: {sorted({*_WEIGHT_FILES, *_SELF_CONTAINED})}"
            )
        for file_name in _WEIGHT_FILES.get(name, ()):
            _copy_if_changed(_packaged_models_dir() / file_name, target_dir / file_name)
    # Read at call time by DeepFace, so setting it before the first model build suffices.
    os.environ["DEEPFACE_HOME"] = str(deepface_home)
    model_files = _WEIGHT_FILES.get(model, ())
    digest = _sha256(target_dir / model_files[0]) if model_files else ""
    return PlacedWeights(model_weights_sha256=digest)


def _copy_if_changed(source: Path, target: Path) -> None:
    if not source.is_file():
        raise MissingWeights(f"packaged weight file {source} is missing")
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    # A name of its own: two services starting at once on one DEEPFACE_HOME each copy,
    # and the last atomic rename wins with an identical file.
    with (
        tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=target.name, suffix=".partial", delete=False
        ) as partial,
        source.open("rb") as packaged,
    ):
        shutil.copyfileobj(packaged, partial)
    Path(partial.name).replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
