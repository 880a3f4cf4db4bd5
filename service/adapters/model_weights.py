"""Model weights come from installed packages, placed where DeepFace looks for them.

Beside them go the ONNX graphs built from the weights: the Dlib ResNet's (dlib_graph.py)
and mtcnn's three networks (mtcnn_graphs.py, from the files the mtcnn package ships). Each
is made once per weights file, so a service finds it in place at start-up, and an image
built with the weights placed carries them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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


# Part of the graph's file name: a change to how the graph is built makes a new file.
_GRAPH_VERSION = 2


@dataclass(frozen=True)
class PlacedWeights:
    model_weights_sha256: str
    model_weights: Path | None = None
    # The recognition model as an ONNX graph; None for a model that has none.
    model_graph: Path | None = None
    # mtcnn's P-Net, R-Net and O-Net as ONNX graphs; None for another detector.
    detector_graphs: tuple[Path, Path, Path] | None = None


def _packaged_models_dir() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.__file__).parent / "models"


def place_weights(
    deepface_home: Path,
    model: str,
    detector: str,
    *,
    model_graph: bool = True,
    detector_graphs: bool = True,
) -> PlacedWeights:
    """Copy packaged weights under `deepface_home` and point DeepFace at it, and place the
    ONNX graphs of the models asked for (a runtime that does not run them needs none)."""
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
    placed_detector = _mtcnn_graphs(target_dir) if detector_graphs and detector == "mtcnn" else None
    model_files = _WEIGHT_FILES.get(model, ())
    if not model_files:
        return PlacedWeights(model_weights_sha256="", detector_graphs=placed_detector)
    weights = target_dir / model_files[0]
    digest = _sha256(weights)
    graph = None
    if model_graph and model == "Dlib":
        graph = _placed_graph(target_dir, weights, digest, partial(_resnet_graph, weights))
    return PlacedWeights(
        model_weights_sha256=digest,
        model_weights=weights,
        model_graph=graph,
        detector_graphs=placed_detector,
    )


def _resnet_graph(weights: Path) -> bytes:
    from service.adapters.dlib_graph import build_graph
    from service.adapters.dlib_weights import read_network

    return build_graph(read_network(weights))


def _mtcnn_graphs(target_dir: Path) -> tuple[Path, Path, Path]:
    from service.adapters.mtcnn_graphs import build_graph, weight_file
    from service.adapters.mtcnn_networks import NETWORKS

    pnet, rnet, onet = (
        _placed_graph(
            target_dir,
            weight_file(network),
            _sha256(weight_file(network)),
            partial(build_graph, network),
            prefix="mtcnn-",
        )
        for network in NETWORKS
    )
    return pnet, rnet, onet


def _placed_graph(
    target_dir: Path, weights: Path, digest: str, build: Callable[[], bytes], prefix: str = ""
) -> Path:
    """The graph of `weights` (whose sha256 is `digest`) in `target_dir`, built if absent."""
    target = target_dir / f"{prefix}{weights.stem}.graph{_GRAPH_VERSION}-{digest[:16]}.onnx"
    if not target.is_file():
        _write_atomically(target, build())
    return target


def _copy_if_changed(source: Path, target: Path) -> None:
    if not source.is_file():
        raise MissingWeights(f"packaged weight file {source} is missing")
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    _write_atomically(target, source.read_bytes())


def _write_atomically(target: Path, data: bytes) -> None:
    # A name of its own: two services starting at once on one DEEPFACE_HOME each write,
    # and the last atomic rename wins with an identical file.
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=target.name, suffix=".partial", delete=False
    ) as partial:
        try:
            partial.write(data)
            # On disk before it has the final name: a crash must not leave an empty file
            # there, which every later start would take as built.
            partial.flush()
            os.fsync(partial.fileno())
            os.fchmod(partial.fileno(), 0o644)
        except BaseException:
            Path(partial.name).unlink(missing_ok=True)
            raise
    Path(partial.name).replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
