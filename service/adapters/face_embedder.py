"""The Dlib ResNet that turns a face chip into its 128 numbers, on one of two runtimes.

`dlib` is dlib-bin itself, what DeepFace calls: the reference. `onnxruntime` runs the same
network, read from the same weights file (service/adapters/dlib_graph.py), about eight
times cheaper and within about 1e-6 of dlib on every number.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

EmbedderRuntime = Literal["onnxruntime", "dlib"]
CHIP_SIDE = 150
# The ResNet graph's input, (n, 150, 150, 3) uint8 RGB as dlib's input_rgb_image_sized
# takes it, and its output, (n, 128) float32.
GRAPH_INPUT, GRAPH_OUTPUT = "faces", "embeddings"


class FaceEmbedder(Protocol):
    def embed(self, chip: NDArray[np.uint8]) -> tuple[float, ...]:
        """The embedding of one aligned RGB face chip of CHIP_SIDE x CHIP_SIDE pixels."""
        ...


def runtime_name(runtime: EmbedderRuntime) -> str:
    """The runtime and its version, as the face provenance records it."""
    package = "dlib-bin" if runtime == "dlib" else runtime
    return f"{runtime} {version(package)}"


class DlibEmbedder:
    def __init__(self, weights: Path) -> None:
        import dlib

        self._model: Any = dlib.face_recognition_model_v1(str(weights))

    def embed(self, chip: NDArray[np.uint8]) -> tuple[float, ...]:
        return tuple(float(v) for v in self._model.compute_face_descriptor(chip))


class OnnxEmbedder:
    def __init__(self, graph: Path) -> None:
        from service.adapters.onnx_session import cpu_session

        self._session = cpu_session(graph)

    def embed(self, chip: NDArray[np.uint8]) -> tuple[float, ...]:
        [embeddings] = self._session.run([GRAPH_OUTPUT], {GRAPH_INPUT: chip[None]})
        return tuple(float(v) for v in embeddings[0])


@dataclass(frozen=True)
class Embedding:
    """The Dlib ResNet's weights file, its ONNX graph, and which of the two runs."""

    runtime: EmbedderRuntime
    weights: Path
    graph: Path | None

    def embedder(self) -> FaceEmbedder:
        if self.runtime == "dlib":
            return DlibEmbedder(self.weights)
        if self.graph is None:
            raise ValueError("the onnxruntime embedder needs the model's graph")
        return OnnxEmbedder(self.graph)
