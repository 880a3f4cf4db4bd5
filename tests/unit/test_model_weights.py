"""Model weights placed from the installed packages, also by services starting together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from service.adapters.dlib_weights import UnexpectedWeights, read_network
from service.adapters.model_weights import place_weights


def test_services_starting_at_once_on_one_home_all_place_the_same_weights_and_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))  # place_weights sets it; restored after

    with ThreadPoolExecutor(max_workers=6) as pool:
        placed = list(pool.map(lambda _: place_weights(tmp_path, "Dlib", "mtcnn"), range(6)))

    assert len({p.model_weights_sha256 for p in placed}) == 1
    assert len({(p.model_graph, p.detector_graphs) for p in placed}) == 1
    weights = tmp_path / ".deepface" / "weights"
    digest = placed[0].model_weights_sha256[:16]
    names = sorted(p.name for p in weights.iterdir())
    assert names[:2] == [
        "dlib_face_recognition_resnet_model_v1.dat",
        f"dlib_face_recognition_resnet_model_v1.graph2-{digest}.onnx",
    ]
    assert [name.split(".")[0] for name in names[2:]] == ["mtcnn-onet", "mtcnn-pnet", "mtcnn-rnet"]


def test_a_placed_graph_is_found_in_place_not_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    first = place_weights(tmp_path, "Dlib", "mtcnn")
    assert first.model_graph is not None
    built = first.model_graph.stat().st_mtime_ns

    again = place_weights(tmp_path, "Dlib", "mtcnn")

    assert again.model_graph == first.model_graph
    assert again.model_graph.stat().st_mtime_ns == built


@pytest.fixture
def resnet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Dlib ResNet's weights as placed, without the graphs built from them."""
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    placed = place_weights(tmp_path, "Dlib", "mtcnn", model_graph=False, detector_graphs=False)
    assert placed.model_weights is not None
    return placed.model_weights


@pytest.fixture
def resnet_bytes(resnet_file: Path) -> bytes:
    return resnet_file.read_bytes()


def test_the_resnet_weights_file_reads_as_dlibs_network(resnet_file: Path) -> None:
    network = read_network(resnet_file)

    assert network.scaling.size == 150
    kinds = [type(layer).__name__ for layer in network.layers]
    # 29 convolutions, each with its affine layer; one 128-wide dense layer at the end.
    assert kinds.count("Conv") == kinds.count("Affine") == 29
    assert kinds[-1] == "Dense"


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_cut_weights_file_is_refused_not_half_read(
    keep: float, resnet_bytes: bytes, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.dat"
    cut.write_bytes(resnet_bytes[: int(len(resnet_bytes) * keep)])

    with pytest.raises(UnexpectedWeights):
        read_network(cut)


def test_a_convolution_of_another_stride_is_refused(resnet_bytes: bytes, tmp_path: Path) -> None:
    # The first convolution's sizes as dlib writes them: 32 filters, 7x7, stride 2 and 2.
    first = b"\x01\x20\x01\x07\x01\x07\x01\x02\x01\x02"
    at = resnet_bytes.index(first)
    changed = tmp_path / "stride1.dat"
    changed.write_bytes(
        resnet_bytes[:at] + first[:-4] + b"\x01\x01\x01\x01" + resnet_bytes[at + 10 :]
    )

    with pytest.raises(UnexpectedWeights, match="stride"):
        read_network(changed)


def test_a_corrupted_weights_file_is_refused_or_read_never_misread(
    resnet_bytes: bytes, tmp_path: Path
) -> None:
    """A flipped byte lands in the weights (the network reads, other numbers) or in the
    structure, which is refused as such: never another error, never a huge allocation."""
    rng = np.random.default_rng(7)
    refused = 0
    corrupted = tmp_path / "corrupted.dat"
    for _ in range(60):
        data = bytearray(resnet_bytes)
        # Every other flip among the layers' versions, which fill the file's first bytes.
        at = int(rng.integers(0, 300)) if rng.random() < 0.5 else int(rng.integers(len(data)))
        data[at] = int(rng.integers(256))
        corrupted.write_bytes(bytes(data))
        try:
            read_network(corrupted)
        except UnexpectedWeights:
            refused += 1
    assert refused > 0


def test_a_different_network_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    # The 5-point shape predictor is dlib's too, but no ResNet.
    place_weights(tmp_path, "Dlib", "dlib")
    other = tmp_path / ".deepface" / "weights" / "shape_predictor_5_face_landmarks.dat"

    with pytest.raises(UnexpectedWeights):
        read_network(other)
