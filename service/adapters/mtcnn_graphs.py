"""mtcnn's three networks as ONNX graphs, built from the weight files the mtcnn package ships.

The layers are those of `mtcnn/network/{pnet,rnet,onet}.py`, in the order `set_weights`
takes the arrays: a convolution or dense layer takes a kernel and a bias, a PReLU its
slopes. The graphs take and give what the Keras models do (NHWC in, NHWC or flat out), so
the face search runs either unchanged. Reading the files needs neither TensorFlow nor the
mtcnn package's own import, which loads TensorFlow.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from onnx import TensorProto, helper

from service.adapters.mtcnn_networks import HEADS, INPUT
from service.adapters.onnx_graph import GraphBuilder

# ("conv", padding), ("prelu",), ("pool", size, stride, padding), ("flatten",), ("dense",),
# then the heads: ("head", kind, name, softmax).
_Layer = tuple[Any, ...]
# R-Net and O-Net begin alike: three convolutions, the first two pooled.
_REFINING: list[_Layer] = [
    ("conv",),
    ("prelu",),
    ("pool", 3, 2, "same"),
    ("conv",),
    ("prelu",),
    ("pool", 3, 2, "valid"),
    ("conv",),
    ("prelu",),
]
_BODIES: dict[str, list[_Layer]] = {
    "pnet": [
        ("conv",),
        ("prelu",),
        ("pool", 2, 2, "same"),
        ("conv",),
        ("prelu",),
        ("conv",),
        ("prelu",),
    ],
    "rnet": [*_REFINING, ("flatten",), ("dense",), ("prelu",)],
    "onet": [
        *_REFINING,
        ("pool", 2, 2, "same"),
        ("conv",),
        ("prelu",),
        ("flatten",),
        ("dense",),
        ("prelu",),
    ],
}
_INPUT_SIDES = {"pnet": None, "rnet": 24, "onet": 48}


def weight_file(network: str) -> Path:
    """The package's file of `network`'s weights, found without importing the package."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the mtcnn package is not installed")
    return Path(spec.submodule_search_locations[0]) / "assets" / "weights" / f"{network}.lz4"


def build_graph(network: str) -> bytes:
    import joblib

    weights: Iterator[NDArray[np.float32]] = iter(joblib.load(weight_file(network)))
    graph = GraphBuilder()
    current = graph.node("Transpose", [INPUT], perm=[0, 3, 1, 2])  # NHWC in, NCHW inside
    for layer in _BODIES[network]:
        current = _layer(graph, layer, current, weights)
    outputs: list[tuple[str, int]] = []  # name, rank
    for name, softmax in HEADS[network]:
        kernel, bias = next(weights), next(weights)
        if kernel.ndim == 4:  # P-Net: 1x1 convolutions over the map, NHWC out
            head = _conv(graph, current, kernel, bias)
            head = graph.node("Transpose", [head], perm=[0, 2, 3, 1])
            axis = 3
        else:
            head = _dense(graph, current, kernel, bias)
            axis = 1
        if softmax:
            graph.node("Softmax", [head], output=name, axis=axis)
        else:
            graph.node("Identity", [head], output=name)
        outputs.append((name, 4 if axis == 3 else 2))
    if next(weights, None) is not None:
        raise ValueError(f"{network}: more weights than layers")
    side = _INPUT_SIDES[network]
    shape: list[str | int | None] = [1, None, None, 3] if side is None else ["n", side, side, 3]
    return graph.model(
        f"mtcnn_{network}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)
            for name, rank in outputs
        ],
    )


def _layer(
    graph: GraphBuilder, layer: _Layer, current: str, weights: Iterator[NDArray[np.float32]]
) -> str:
    kind = layer[0]
    if kind == "conv":
        return _conv(graph, current, next(weights), next(weights))
    if kind == "prelu":
        slopes = next(weights)
        # Shared over rows and columns: one slope per channel, broadcast over NCHW's H, W.
        shaped = slopes.reshape(-1, 1, 1) if slopes.ndim == 3 else slopes.reshape(-1)
        return graph.node("PRelu", [current, graph.constant("slopes", shaped)])
    if kind == "pool":
        _, size, stride, padding = layer
        # Keras' "same" pads at the end when the padding is odd: ONNX's SAME_UPPER.
        return graph.node(
            "MaxPool",
            [current],
            kernel_shape=[size, size],
            strides=[stride, stride],
            auto_pad="SAME_UPPER" if padding == "same" else "VALID",
        )
    if kind == "flatten":
        # Keras permutes (rows, columns, channels) to (columns, rows, channels), then flattens.
        swapped = graph.node("Transpose", [current], perm=[0, 3, 2, 1])
        return graph.node("Flatten", [swapped], axis=1)
    if kind == "dense":
        return _dense(graph, current, next(weights), next(weights))
    raise AssertionError(kind)


def _conv(graph: GraphBuilder, current: str, kernel: NDArray[Any], bias: NDArray[Any]) -> str:
    filters = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO to OIHW
    return graph.node(
        "Conv",
        [current, graph.constant("filters", filters), graph.constant("biases", bias)],
        kernel_shape=list(filters.shape[2:]),
    )


def _dense(graph: GraphBuilder, current: str, kernel: NDArray[Any], bias: NDArray[Any]) -> str:
    product = graph.node("MatMul", [current, graph.constant("weights", kernel)])
    return graph.node("Add", [product, graph.constant("bias", bias)])
