"""The pinned CenterFace ONNX graph as a trainable PyTorch module (training only; needs `.[train]`).

The graph uses six operators (Conv, ConvTranspose, BatchNormalization, Relu, Add, Sigmoid), so
we interpret it node by node instead of converting it with a general tool: every ONNX
initializer becomes one ``nn.Parameter`` (or a buffer, for BatchNorm running statistics) under
its own ONNX name, which is exactly what the shipped delta needs (edge/modeldelta.py replaces
initializers by name). ``tests``-style check: ``python tools/detector/graph.py`` compares the
module against onnxruntime on a real photo.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

SUPPORTED_OPS = ("Conv", "ConvTranspose", "BatchNormalization", "Relu", "Add", "Sigmoid")


def _key(name: str) -> str:
    """ONNX names contain dots, which nn.ParameterDict refuses: one reversible escape."""
    return name.replace(".", "::")


class OnnxGraphModule(nn.Module):
    """forward(x: (N,3,H,W) float32 RGB 0..255) -> the graph's outputs in graph order
    (for CenterFace: heatmap (N,1,H/4,W/4), scale, offset, landmarks)."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        bn_stats = {n.input[3] for n in g.node if n.op_type == "BatchNormalization"} | \
                   {n.input[4] for n in g.node if n.op_type == "BatchNormalization"}
        self.params = nn.ParameterDict()
        for init in g.initializer:
            arr = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32).copy())
            if init.name in bn_stats:
                self.register_buffer(_key(init.name), arr)
            else:
                self.params[_key(init.name)] = nn.Parameter(arr)
        self.nodes = []
        for n in g.node:
            if n.op_type not in SUPPORTED_OPS:
                raise ValueError(f"node {n.name or n.output[0]}: op {n.op_type} not supported; "
                                 f"allowed {', '.join(SUPPORTED_OPS)}")
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        self.input_name = g.input[0].name
        self.output_names = [o.name for o in g.output]

    def tensor(self, name: str) -> torch.Tensor:
        k = _key(name)
        if k in self.params:
            return self.params[k]
        return getattr(self, k)

    def named_initializers(self) -> dict[str, torch.Tensor]:
        """Every initializer under its ONNX name (parameters and BatchNorm statistics)."""
        out = {k.replace("::", "."): v for k, v in self.params.items()}
        out.update({k.replace("::", "."): v for k, v in self.named_buffers()})
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor:
            return env[name] if name in env else self.tensor(name)

        for op, ins, outs, a in self.nodes:
            if op == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                if p[0] != p[2] or p[1] != p[3]:
                    raise ValueError(f"Conv {outs[0]}: asymmetric pads {p} not supported")
                bias = get(ins[2]) if len(ins) > 2 else None
                y = F.conv2d(get(ins[0]), get(ins[1]), bias, stride=a.get("strides", [1, 1]),
                             padding=p[:2], dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
            elif op == "ConvTranspose":
                p = a.get("pads", [0, 0, 0, 0])
                bias = get(ins[2]) if len(ins) > 2 else None
                y = F.conv_transpose2d(get(ins[0]), get(ins[1]), bias, stride=a.get("strides", [1, 1]),
                                       padding=p[:2], dilation=a.get("dilations", [1, 1]),
                                       groups=a.get("group", 1))
            elif op == "BatchNormalization":
                # always inference statistics: batches of 8 photos are too small to re-estimate them
                y = F.batch_norm(get(ins[0]), get(ins[3]), get(ins[4]), get(ins[1]), get(ins[2]),
                                 training=False, eps=a.get("epsilon", 1e-5))
            elif op == "Relu":
                y = F.relu(get(ins[0]))
            elif op == "Add":
                y = get(ins[0]) + get(ins[1])
            else:  # Sigmoid
                y = torch.sigmoid(get(ins[0]))
            env[outs[0]] = y
        return [env[name] for name in self.output_names]


def load(path: str | Path) -> OnnxGraphModule:
    return OnnxGraphModule(onnx.load(str(path)))


def _check(model_path: Path, image: Path) -> float:
    """Largest absolute output difference between this module and onnxruntime on one photo."""
    import cv2
    import onnxruntime as ort

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    x = np.zeros((1, 3, 256, 320), np.float32)
    small = cv2.resize(bgr, (320, 256))
    x[0] = small[:, :, ::-1].transpose(2, 0, 1)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})
    with torch.no_grad():
        got = load(model_path)(torch.from_numpy(x))
    return max(float(np.abs(r - g.numpy()).max()) for r, g in zip(ref, got))


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parents[2]
    diff = _check(root / "models" / "centerface_dyn.onnx", root / "assets" / "astronaut.png")
    print(f"largest output difference vs onnxruntime: {diff:.2e}")
    sys.exit(0 if diff < 1e-3 else 1)
