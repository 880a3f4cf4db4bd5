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
    """The file is not the network `ARCHITECTURE` describes."""


def read_network(path: Path) -> DlibNetwork:
    with path.open("rb") as stream:
        reader = _Reader(stream)
        network = reader.network()
        if stream.read(1):
            raise UnexpectedWeights(f"{path}: bytes left after the network")
        return network


class _Reader:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def network(self) -> DlibNetwork:
        self._version({1})  # the loss layer
        loss = self.string()
        if loss == "loss_metric_2":
            self.real()
            self.real()
        elif loss != "loss_metric_":
            raise UnexpectedWeights(f"loss {loss!r}, expected dlib's metric loss")
        wrappers = [
            self._version({1, 2} if spec[0] not in {"tag", "skip"} else {1})
            for spec in ARCHITECTURE[:-1]
        ]
        input_version = self._version({2, 3})
        scaling = self._input()
        layers: list[Layer] = []
        innermost = ARCHITECTURE[-1]
        layers.append(self._details(innermost))
        self._layer_state(params_grad=False)
        self.tensor()  # grad_final
        if input_version >= 3:
            self.integer()  # sample expansion factor
        for spec, version in zip(reversed(ARCHITECTURE[:-1]), reversed(wrappers), strict=True):
            kind = spec[0]
            if kind == "tag":
                layers.append(Tag(int(spec[1])))
            elif kind == "skip":
                layers.append(Skip(int(spec[1])))
            else:
                layers.append(self._details(spec))
                self._layer_state(params_grad=version == 2)
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

    def _layer_state(self, params_grad: bool) -> None:
        """What dlib keeps of a layer for training: three flags and gradient tensors."""
        for _ in range(3):
            self.boolean()
        self.tensor()  # x_grad
        self.tensor()  # cached_output
        if params_grad:
            self.tensor()

    def _details(self, spec: Spec) -> Layer:
        kind = spec[0]
        if kind == "con":
            return self._conv(*(int(v) for v in spec[1:]))
        if kind == "affine":
            return self._affine()
        if kind == "relu":
            version = self.string()
            if version == "relu_2":
                if self.boolean():
                    raise UnexpectedWeights("a disabled relu")
            elif version != "relu_":
                raise UnexpectedWeights(f"{version!r} where a relu was expected")
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
        version = self.string()
        if version not in {"con_4", "con_5", "con_6"}:
            raise UnexpectedWeights(f"{version!r} where a convolution was expected")
        params = self.tensor()
        stored = [self.integer() for _ in range(7)]
        padding = 0 if stride != 1 else size // 2  # dlib's default, which anet_type keeps
        if stored != [filters, size, size, stride, stride, padding, padding]:
            raise UnexpectedWeights(
                f"convolution {stored}, expected {filters} of {size}x{size} stride {stride}"
            )
        filter_shape = self._alias()
        bias_shape = self._alias()
        for _ in range(4):
            self.real()  # learning rate and weight decay multipliers
        if version in {"con_5", "con_6"} and not self.boolean():
            raise UnexpectedWeights("a convolution without biases")
        if version == "con_6" and self.boolean():
            raise UnexpectedWeights("a convolution with a fused relu")
        count = math.prod(filter_shape)
        return Conv(
            filters=params[:count].reshape(filter_shape),
            biases=params[count : count + math.prod(bias_shape)],
            stride=stride,
            padding=padding,
        )

    def _affine(self) -> Affine:
        version = self.string()
        if version == "bn_con2":
            # A batch normalization as trained: dlib turns it into an affine layer on load.
            params = self.tensor()
            gamma_size = math.prod(self._alias())
            beta_size = math.prod(self._alias())
            for _ in range(2):
                self.tensor()  # this batch's means and inverse deviations
            running_means, running_variances = self.tensor(), self.tensor()
            self.integer()
            self.integer()
            for _ in range(4):
                self.real()
            eps = np.float32(self.real())
            gamma = params[:gamma_size] / np.sqrt(running_variances + eps)
            beta = params[gamma_size : gamma_size + beta_size] - gamma * running_means
            return Affine(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32))
        if version not in {"affine_", "affine_2"}:
            raise UnexpectedWeights(f"{version!r} where an affine layer was expected")
        params = self.tensor()
        gamma_size = math.prod(self._alias())
        beta_size = math.prod(self._alias())
        mode = self.integer()
        if mode != 0:  # CONV_MODE: one scale and shift per channel
            raise UnexpectedWeights(f"affine layer in mode {mode}")
        if version == "affine_2" and self.boolean():
            raise UnexpectedWeights("a disabled affine layer")
        return Affine(gamma=params[:gamma_size], beta=params[gamma_size : gamma_size + beta_size])

    def _pool(self, kind: str, size: int, stride: int) -> Pool:
        self._expect_string(f"{kind}_2")
        stored = [self.integer() for _ in range(6)]
        padding = 0 if stride != 1 or size == 0 else size // 2
        if stored != [size, size, stride, stride, padding, padding]:
            raise UnexpectedWeights(f"{kind} pooling {stored}, expected {size}/{stride}")
        return Pool(kind=kind.removesuffix("_pool"), size=size, stride=stride, padding=padding)

    def _dense(self, outputs: int) -> Dense:
        version = self.string()
        if version not in {"fc_2", "fc_3"}:
            raise UnexpectedWeights(f"{version!r} where a dense layer was expected")
        stored_outputs, inputs = self.integer(), self.integer()
        params = self.tensor()
        weight_shape = self._alias()
        self._alias()
        bias_mode = self.integer()
        for _ in range(4):
            self.real()
        if version == "fc_3" and self.boolean():
            raise UnexpectedWeights("a dense layer with biases")
        if stored_outputs != outputs or bias_mode != 1:  # FC_NO_BIAS
            raise UnexpectedWeights(f"dense layer of {stored_outputs} outputs, mode {bias_mode}")
        weights = params[: math.prod(weight_shape)].reshape(inputs, outputs)
        return Dense(weights=weights)

    # dlib's encodings (dlib/serialize.h, dlib/cuda/tensor.h)

    def _version(self, accepted: set[int]) -> int:
        version = self.integer()
        if version not in accepted:
            raise UnexpectedWeights(f"layer version {version}, expected one of {sorted(accepted)}")
        return version

    def _expect_string(self, expected: str) -> None:
        found = self.string()
        if found != expected:
            raise UnexpectedWeights(f"{found!r} where {expected!r} was expected")

    def _read(self, count: int) -> bytes:
        if count < 0:
            raise UnexpectedWeights(f"a length of {count}")
        data = self._stream.read(count)
        if len(data) != count:
            raise UnexpectedWeights("the file ends inside the network")
        return data

    def integer(self) -> int:
        """A control byte (sign bit, byte count) and that many little-endian bytes."""
        control = self._read(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise UnexpectedWeights(f"integer of {size} bytes")
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
        mantissa = self.integer()
        exponent = self.integer()
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> Floats:
        self._version({2})
        shape = [self.integer() for _ in range(4)]
        count = math.prod(shape)
        values = np.frombuffer(self._read(4 * count), dtype="<f4").astype(np.float32)
        return values

    def _alias(self) -> tuple[int, ...]:
        self._version({1})
        return tuple(self.integer() for _ in range(4))
