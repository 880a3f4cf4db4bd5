"""mtcnn's three networks on the runtime the settings name, as the face search calls them.

- `onnxruntime`: the graphs built from the mtcnn package's weight files
  (mtcnn_graphs.py); outputs within about 1e-6 of Keras', and no TensorFlow loaded.
- `tensorflow`: the Keras models as TensorFlow graphs (`tf.function`), traced once for any
  input size; the same kernels on the same inputs, so bit for bit the eager output.
- `keras`: the models run eagerly, layer by layer, as mtcnn runs them: the reference.
  Eager Keras costs a few milliseconds of dispatch per call whatever the input, and P-Net
  is called once per pyramid level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

DetectorRuntime = Literal["onnxruntime", "tensorflow", "keras"]
NETWORKS = ("pnet", "rnet", "onet")
# The graphs' input, and each network's outputs in the order the Keras model returns them:
# (name, softmax).
INPUT = "images"
HEADS: dict[str, list[tuple[str, bool]]] = {
    "pnet": [("bbox_reg", False), ("bbox_class", True)],
    "rnet": [("bbox_reg", False), ("bbox_class", True)],
    "onet": [("bbox_reg", False), ("landmarks", False), ("bbox_class", True)],
}
Network = Callable[[NDArray[np.float32]], Sequence[Any]]
Networks = tuple[Network, Network, Network]  # P-Net, R-Net, O-Net


@dataclass(frozen=True)
class MtcnnNetworks:
    runtime: DetectorRuntime
    graphs: tuple[Path, Path, Path] | None = None  # for onnxruntime: P-Net, R-Net, O-Net

    def load(self) -> Networks:
        if self.runtime == "onnxruntime":
            if self.graphs is None:
                raise ValueError("the onnxruntime detector needs mtcnn's graphs")
            pnet, rnet, onet = (
                _onnx(graph, name) for graph, name in zip(self.graphs, NETWORKS, strict=True)
            )
            return pnet, rnet, onet
        from mtcnn import MTCNN

        pnet, rnet, onet = (stage._model for stage in MTCNN().stages)
        if self.runtime == "keras":
            return pnet, rnet, onet
        return (
            _traced(pnet, [1, None, None, 3]),
            _traced(rnet, [None, 24, 24, 3]),
            _traced(onet, [None, 48, 48, 3]),
        )


def _onnx(graph: Path, name: str) -> Network:
    from service.adapters.onnx_session import cpu_session

    session = cpu_session(graph)
    outputs = [head for head, _ in HEADS[name]]
    return lambda batch: session.run(outputs, {INPUT: batch})


def _traced(model: Any, shape: list[int | None]) -> Network:
    """`model` as one TensorFlow graph for every input of `shape` (None: any size): a
    signature with open dimensions, so no new trace per pyramid level or batch size."""
    import tensorflow as tf

    signature = [tf.TensorSpec(shape, tf.float32)]
    run = tf.function(model, input_signature=signature)
    return lambda batch: run(tf.convert_to_tensor(batch, tf.float32))
