"""A small builder of ONNX graphs from NumPy weights, for the networks this service runs."""

from __future__ import annotations

from typing import Any

import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

OPSET = 17


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, value: NDArray[Any]) -> str:
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], *, output: str = "", **attributes: Any) -> str:
        """Adds `op` and returns its output's name (`output`, or one made up)."""
        output = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def model(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
    ) -> bytes:
        """The checked, serialized model."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.constants)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="face-register-service",
        )
        onnx.checker.check_model(model)
        serialized: bytes = model.SerializeToString()
        return serialized
