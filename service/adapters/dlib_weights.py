"""dlib's face recognition ResNet, read from the very file `dlib.face_recognition_model_v1` loads.

dlib writes a network as nested layers, outermost first: each wrapper writes its version,
then the network under it, then its own parameters, so the bytes name no layer types and
the reader must know the architecture. It is the one dlib's Python module compiles in
(`tools/python/src/face_recognition.cpp`, `anet_type`), spelled here as `ARCHITECTURE`;
every stored size, stride and padding is checked against it, so a different file fails to
load instead of computing something else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float32]


@dataclass(frozen=True)
class Conv:
    filters: Floats  # (out, in, rows, cols): cross-correlation, as ONNX's Conv
    biases: Floats
    stride: int
    padding: int


@dataclass(frozen=True)
class Affine:
    gamma: Floats  # per channel
    beta: Floats


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"
    size: int  # 0: the whole image
    stride: int
    padding: int


@dataclass(frozen=True)
class Tag:
    """Remembers the output under it as `name` (dlib's tag1, tag2)."""

    name: int


@dataclass(frozen=True)
class Skip:
    """Continues from the output remembered as `name`, not from the layer under it."""

    name: int


@dataclass(frozen=True)
class AddTagged:
    """The output under it plus the one remembered as `name`; where the two differ in size,
    the smaller counts as zero beyond its end (dlib's `add_prev`)."""

    name: int


@dataclass(frozen=True)
class Dense:
    weights: Floats  # (inputs, outputs)


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddTagged | Dense


@dataclass(frozen=True)
class InputScaling:
    """Each RGB value v enters the network as (v - mean) / 256."""

    means: tuple[float, float, float]
    size: int


@dataclass(frozen=True)
class DlibNetwork:
    scaling: InputScaling
    layers: tuple[Layer, ...]  # in the order they run


# The architecture, outermost layer first, as dlib writes it. Each entry is what the
# reader expects: ("con", filters, size, stride), ("affine",), ("relu",), ("max_pool" |
# "avg_pool", size, stride), ("add_prev", tag), ("tag", n), ("skip", n), ("fc", outputs).
Spec = tuple[str | int, ...]


def _block(filters: int, stride: int) -> list[Spec]:
    return [
        ("affine",),
        ("con", filters, 3, 1),
        ("relu",),
        ("affine",),
        ("con", filters, 3, stride),
    ]


def _residual(filters: int) -> list[Spec]:
    return [("relu",), ("add_prev", 1), *_block(filters, 1), ("tag", 1)]


def _residual_down(filters: int) -> list[Spec]:
    return [
        ("relu",),
        ("add_prev", 2),
        ("avg_pool", 2, 2),
        ("skip", 1),
        ("tag", 2),
        *_block(filters, 2),
        ("tag", 1),
    ]


ARCHITECTURE: tuple[Spec, ...] = (
    ("fc", 128),
    ("avg_pool", 0, 1),
    *_residual_down(256),
    *_residual(256),
    *_residual(256),
    *_residual_down(256),
    *_residual(128),
    *_residual(128),
    *_residual_down(128),
    *_residual(64),
    *_residual(64),
    *_residual(64),
    *_residual_down(64),
    *_residual(32),
    *_residual(32),
    *_residual(32),
    ("max_pool", 3, 2),
    ("relu",),
    ("affine",),
    ("con", 32, 7, 2),
)
INPUT_SIZE = 150


class UnexpectedWeights(ValueError):
    """The file is not the network `ARCHITECTURE` describes, or not whole."""


def read_network(path: Path) -> DlibNetwork:
    with path.open("rb") as stream:
        reader = _Reader(stream, path.stat().st_size)
        network = reader.network()
        if stream.read(1):
            raise UnexpectedWeights(f"{path}: bytes left after the network")
        return network


# The layer versions of dlib_face_recognition_resnet_model_v1.dat. Later dlib releases
# write newer ones for new networks; this file, as shipped, has exactly these.
_LOSS, _CONV, _AFFINE, _RELU, _DENSE = "loss_metric_2", "con_4", "affine_", "relu_", "fc_2"
_CONV_MODE = 0  # an affine layer's one scale and shift per channel
_NO_BIAS = 1  # fc_no_bias
_SPECIAL_EXPONENTS = 32000  # and above: dlib's infinities and NaN


class _Reader:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size

    def network(self) -> DlibNetwork:
        self._version(1)  # the loss layer
        self._expect_string(_LOSS)
        self.real()  # margin and distance threshold: training only
        self.real()
        # Each wrapper's version, outermost first: layers 2 (with their gradients), tags
        # and skips 1, the layer on the input 3.
        for spec in ARCHITECTURE[:-1]:
            self._version(1 if spec[0] in {"tag", "skip"} else 2)
        self._version(3)
        scaling = self._input()
        layers: list[Layer] = [self._details(ARCHITECTURE[-1])]
        self._layer_state()
        self.integer()  # sample expansion factor
        for spec in reversed(ARCHITECTURE[:-1]):
            kind = spec[0]
            if kind == "tag":
                layers.append(Tag(int(spec[1])))
            elif kind == "skip":
                layers.append(Skip(int(spec[1])))
            else:
                layers.append(self._details(spec))
                self._layer_state()
        return DlibNetwork(scaling=scaling, layers=tuple(layers))

    def _input(self) -> InputScaling:
        name = self.string()
        if name != "input_rgb_image_sized":
            raise UnexpectedWeights(f"input layer {name!r}")
        means = (self.real(), self.real(), self.real())
        rows, cols = self.integer(), self.integer()
        if rows != INPUT_SIZE or cols != INPUT_SIZE:
            raise UnexpectedWeights(f"input of {rows}x{cols}, expected {INPUT_SIZE}")
        return InputScaling(means=means, size=INPUT_SIZE)

    def _layer_state(self) -> None:
        """What dlib keeps of a layer for training: three flags and three gradient tensors
        (on the input's layer, the final gradient instead of the parameters')."""
        for _ in range(3):
            self.boolean()
        for _ in range(3):
            self.tensor()

    def _details(self, spec: Spec) -> Layer:
        kind = spec[0]
        if kind == "con":
            return self._conv(*(int(v) for v in spec[1:]))
        if kind == "affine":
            return self._affine()
        if kind == "relu":
            self._expect_string(_RELU)
            return Relu()
        if kind in {"max_pool", "avg_pool"}:
            return self._pool(str(kind), int(spec[1]), int(spec[2]))
        if kind == "add_prev":
            self._expect_string("add_prev_")
            return AddTagged(int(spec[1]))
        if kind == "fc":
            return self._dense(int(spec[1]))
        raise AssertionError(kind)

    def _conv(self, filters: int, size: int, stride: int) -> Conv:
        self._expect_string(_CONV)
        params = self.tensor()
        stored = [self.integer() for _ in range(7)]
        padding = 0 if stride != 1 else size // 2  # dlib's default, which anet_type keeps
        if stored != [filters, size, size, stride, stride, padding, padding]:
            raise UnexpectedWeights(
                f"convolution {stored}, expected {filters} of {size}x{size} stride {stride}"
            )
        filter_shape, bias_shape = self._alias(), self._alias()
        if filter_shape[0] != filters or filter_shape[2:] != (size, size):
            raise UnexpectedWeights(f"filters of shape {filter_shape}")
        if bias_shape != (1, filters, 1, 1):
            raise UnexpectedWeights(f"biases of shape {bias_shape}")
        for _ in range(4):
            self.real()  # learning rate and weight decay multipliers
        filter_values, biases = _split(params, [filter_shape, bias_shape])
        return Conv(
            filters=filter_values.reshape(filter_shape),
            biases=biases,
            stride=stride,
            padding=padding,
        )

    def _affine(self) -> Affine:
        self._expect_string(_AFFINE)
        params = self.tensor()
        gamma_shape, beta_shape = self._alias(), self._alias()
        if self.integer() != _CONV_MODE:
            raise UnexpectedWeights("an affine layer not per channel")
        if gamma_shape != beta_shape:
            raise UnexpectedWeights(f"affine scales {gamma_shape} and shifts {beta_shape}")
        gamma, beta = _split(params, [gamma_shape, beta_shape])
        return Affine(gamma=gamma, beta=beta)

    def _pool(self, kind: str, size: int, stride: int) -> Pool:
        self._expect_string(f"{kind}_2")
        stored = [self.integer() for _ in range(6)]
        padding = 0 if stride != 1 or size == 0 else size // 2
        if stored != [size, size, stride, stride, padding, padding]:
            raise UnexpectedWeights(f"{kind} pooling {stored}, expected {size}/{stride}")
        return Pool(kind=kind.removesuffix("_pool"), size=size, stride=stride, padding=padding)

    def _dense(self, outputs: int) -> Dense:
        self._expect_string(_DENSE)
        stored_outputs, inputs = self.integer(), self.integer()
        params = self.tensor()
        weight_shape, bias_shape = self._alias(), self._alias()
        if self.integer() != _NO_BIAS or any(bias_shape) or stored_outputs != outputs:
            raise UnexpectedWeights(f"a dense layer of {stored_outputs} outputs, or with biases")
        if weight_shape != (inputs, outputs, 1, 1):
            raise UnexpectedWeights(f"dense weights of shape {weight_shape}")
        for _ in range(4):
            self.real()
        [weights] = _split(params, [weight_shape])
        return Dense(weights=weights.reshape(inputs, outputs))

    # dlib's encodings (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h)

    def _version(self, expected: int) -> None:
        version = self.integer()
        if version != expected:
            raise UnexpectedWeights(f"layer version {version}, expected {expected}")

    def _expect_string(self, expected: str) -> None:
        found = self.string()
        if found != expected:
            raise UnexpectedWeights(f"{found!r} where {expected!r} was expected")

    def _read(self, count: int) -> bytes:
        # Checked against what is left first: a corrupted length must not allocate.
        if count < 0 or count > self._size - self._stream.tell():
            raise UnexpectedWeights(f"a length of {count} bytes, past the end of the file")
        return self._stream.read(count)

    def integer(self) -> int:
        """A control byte (sign bit, byte count) and that many little-endian bytes."""
        control = self._read(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise UnexpectedWeights(f"an integer of {size} bytes")
        value = int.from_bytes(self._read(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        try:
            return self._read(self.integer()).decode("ascii")
        except UnicodeDecodeError:
            raise UnexpectedWeights("a layer name that is not text") from None

    def boolean(self) -> bool:
        value = self._read(1)
        if value not in {b"0", b"1"}:
            raise UnexpectedWeights(f"boolean {value!r}")
        return value == b"1"

    def real(self) -> float:
        """A mantissa and a power of two, as two integers."""
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= _SPECIAL_EXPONENTS:
            raise UnexpectedWeights("an infinite or undefined number")
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise UnexpectedWeights(f"a number of 2**{exponent}") from None

    def tensor(self) -> Floats:
        """Four dimensions, then that many little-endian float32 values."""
        self._version(2)
        shape = [self.integer() for _ in range(4)]
        if min(shape) < 0:
            raise UnexpectedWeights(f"a tensor of shape {shape}")
        return np.frombuffer(self._read(4 * math.prod(shape)), dtype="<f4").astype(np.float32)

    def _alias(self) -> tuple[int, ...]:
        """The shape of a part of a layer's parameters."""
        self._version(1)
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise UnexpectedWeights(f"a parameter shape {shape}")
        return shape


def _split(params: Floats, shapes: list[tuple[int, ...]]) -> list[Floats]:
    """`params` cut into consecutive parts of `shapes`, which must use it all."""
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) != len(params):
        raise UnexpectedWeights(f"{len(params)} parameters for parts of {sizes}")
    return np.split(params, np.cumsum(sizes)[:-1])
