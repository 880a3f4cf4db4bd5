"""dlib's face recognition ResNet as an ONNX graph, built from the weights dlib loads.

dlib-bin computes it with dlib's own matrix code (no BLAS): about 75 ms a face. The same
layers on ONNX Runtime take a tenth of that and agree with dlib to about 1e-6
(tests/integration/test_face_runtimes.py).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from service.adapters.dlib_weights import (
    AddTagged,
    Affine,
    Conv,
    Dense,
    DlibNetwork,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
    UnexpectedWeights,
)
from service.adapters.face_embedder import GRAPH_INPUT, GRAPH_OUTPUT
from service.adapters.onnx_graph import GraphBuilder

Shape = tuple[int, int, int]  # channels, rows, columns


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - kernel) // stride


def build_graph(network: DlibNetwork) -> bytes:
    """The serialized ONNX model of `network`, one image or a batch at a time."""
    graph = GraphBuilder()
    means = np.asarray(network.scaling.means, dtype=np.float32)
    pixels = graph.node("Cast", [GRAPH_INPUT], to=TensorProto.FLOAT)
    # dlib computes (v - mean) / 256 in float: dividing by a power of two is exact.
    centred = graph.node("Sub", [pixels, graph.constant("means", means)])
    scale = graph.constant("scale", np.asarray([1 / 256], dtype=np.float32))
    scaled = graph.node("Mul", [centred, scale])
    current = graph.node("Transpose", [scaled], perm=[0, 3, 1, 2])
    side = network.scaling.size
    shape: Shape = (3, side, side)
    tagged: dict[int, tuple[str, Shape]] = {}
    for layer in network.layers:
        current, shape = _apply(graph, layer, current, shape, tagged)
    graph.node("Identity", [current], output=GRAPH_OUTPUT)
    return graph.model(
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(GRAPH_INPUT, TensorProto.UINT8, ["n", side, side, 3])],
        [helper.make_tensor_value_info(GRAPH_OUTPUT, TensorProto.FLOAT, ["n", shape[0]])],
    )


def _apply(
    graph: GraphBuilder,
    layer: Layer,
    current: str,
    shape: Shape,
    tagged: dict[int, tuple[str, Shape]],
) -> tuple[str, Shape]:
    """`layer` applied to `current` of `shape`; a weight that does not fit is refused."""
    channels, rows, cols = shape
    match layer:
        case Conv(filters=filters, biases=biases, stride=stride, padding=padding):
            _fits(filters.shape[1], channels, "convolution inputs")
            kernel = filters.shape[2]
            output = graph.node(
                "Conv",
                [current, graph.constant("filters", filters), graph.constant("biases", biases)],
                strides=[stride, stride],
                pads=[padding] * 4,
                kernel_shape=[kernel, kernel],
            )
            size = (_out(rows, kernel, stride, padding), _out(cols, kernel, stride, padding))
            return output, (filters.shape[0], *size)
        case Affine(gamma=gamma, beta=beta):
            _fits(len(gamma), channels, "affine scales")
            gamma_name = graph.constant("gamma", gamma.reshape(-1, 1, 1))
            scaled = graph.node("Mul", [current, gamma_name])
            beta_name = graph.constant("beta", beta.reshape(-1, 1, 1))
            return graph.node("Add", [scaled, beta_name]), shape
        case Relu():
            return graph.node("Relu", [current]), shape
        case Pool(size=0):
            return graph.node("GlobalAveragePool", [current]), (channels, 1, 1)
        case Pool(kind=kind, size=size, stride=stride, padding=padding):
            op = "MaxPool" if kind == "max" else "AveragePool"
            output = graph.node(
                op,
                [current],
                kernel_shape=[size, size],
                strides=[stride, stride],
                pads=[padding] * 4,
            )
            return output, (
                channels,
                _out(rows, size, stride, padding),
                _out(cols, size, stride, padding),
            )
        case Tag(name=name):
            tagged[name] = (current, shape)
            return current, shape
        case Skip(name=name):
            return tagged[name]
        case AddTagged(name=name):
            other, other_shape = tagged[name]
            total: Shape = (
                max(channels, other_shape[0]),
                max(rows, other_shape[1]),
                max(cols, other_shape[2]),
            )
            grown = [
                _padded(graph, current, shape, total),
                _padded(graph, other, other_shape, total),
            ]
            return graph.node("Add", grown), total
        case Dense(weights=weights):
            _fits(weights.shape[0], channels * rows * cols, "dense inputs")
            flat = graph.node("Flatten", [current], axis=1)
            return graph.node("MatMul", [flat, graph.constant("weights", weights)]), (
                weights.shape[1],
                1,
                1,
            )
    raise TypeError(f"no ONNX form for {layer!r}")


def _fits(found: int, expected: int, what: str) -> None:
    if found != expected:
        raise UnexpectedWeights(f"{found} {what} where the layer below gives {expected}")


def _padded(graph: GraphBuilder, tensor: str, shape: Shape, total: Shape) -> str:
    """`tensor` grown to `total` with zeros after its end, as dlib's add_prev reads it."""
    if shape == total:
        return tensor
    ends = [0, *(t - s for t, s in zip(total, shape, strict=True))]
    pads = np.asarray([0, 0, 0, 0, *ends], dtype=np.int64)
    return graph.node("Pad", [tensor, graph.constant("pads", pads)])
