"""ONNX Runtime sessions as the inference workers run them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(graph: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # The inference pool is the unit of parallelism: one thread per worker process.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
