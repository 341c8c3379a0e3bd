"""Writes tiny_classifier.onnx: an openWakeWord-shaped classifier (16 × 96 embeddings → probability).

Weights are seeded random numbers; it detects nothing, but has the real input and output shapes, so the
ONNX loading path can be checked against a numpy reference. Needs the `onnx` package (not a test dependency).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
weights = (rng.standard_normal((16 * 96, 1)) * 0.05).astype(np.float32)
bias = np.array([-1.0], dtype=np.float32)
graph = helper.make_graph(
    [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["logit0"]),
        helper.make_node("Add", ["logit0", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ],
    "tiny_classifier",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 96])],
    [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1])],
    [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "tiny_classifier.onnx")
