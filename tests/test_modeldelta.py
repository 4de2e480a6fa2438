"""Our fine-tuned detector ships as a float16 delta on the pinned CenterFace graph
(edge/modeldelta.py, applied at set-up by edge.assets): real files, real onnxruntime."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge.assets import (
    CENTERFACE_MASKED_DELTA,
    CENTERFACE_MASKED_DELTA_SHA256,
    CENTERFACE_MASKED_MODEL,
    CENTERFACE_MASKED_MODEL_SHA256,
    CENTERFACE_MODEL,
    AssetError,
    make_masked_centerface,
    require,
    sha256_file,
)
from edge.modeldelta import DeltaError, apply_delta, load_delta, make_delta, save_delta
from edge.vision.detection import DetectorConfig, build_detector, model_file

# What the shipped model gives on the astronaut portrait, recorded when the delta was trained
# (tools/detector/train.py); the face box (x1, y1, x2, y2) px, score, and the five landmarks.
REFERENCE_ASTRONAUT = {
    "box_xyxy": [179.29, 57.32, 272.7, 177.59], "score": 0.79861,
    "landmarks_xy": [[205.3, 102.06], [247.67, 104.2], [226.66, 123.87], [205.06, 143.65], [241.22, 145.62]]}


@pytest.fixture(scope="module")
def base_model() -> onnx.ModelProto:
    return onnx.load(str(require(CENTERFACE_MODEL)))


def _arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_make_delta_keeps_only_changed_tensors_as_float16(base_model):
    base = _arrays(base_model)
    trained = {k: v.copy() for k, v in base.items()}
    trained["head.pos_conv.bias"] = trained["head.pos_conv.bias"] + 0.5
    trained["head.lm_conv.weight"] = trained["head.lm_conv.weight"] + 1e-9  # lost in the float16 cast
    delta = make_delta(base, trained)
    assert list(delta) == ["head.pos_conv.bias"]
    assert delta["head.pos_conv.bias"].dtype == np.float16


@pytest.mark.parametrize(("name", "value", "message"), [
    ("no.such.tensor", np.zeros(1, np.float32), "not an initializer"),
    ("head.pos_conv.bias", np.zeros(3, np.float32), "shape"),
    ("head.pos_conv.bias", np.array([np.inf], np.float32), "non-finite"),
])
def test_make_delta_rejects_tensors_that_do_not_fit(base_model, name, value, message):
    with pytest.raises(DeltaError, match=message):
        make_delta(_arrays(base_model), {name: value})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("no.such.tensor", np.zeros(1, np.float16), "'no.such.tensor' is not an initializer"),
    ("head.pos_conv.bias", np.zeros((2, 2), np.float16), "has shape"),
    ("head.pos_conv.bias", np.array([np.nan], np.float16), "non-finite"),
])
def test_apply_delta_names_the_tensor_that_does_not_fit(base_model, name, value, message):
    with pytest.raises(DeltaError, match=message):
        apply_delta(copy.deepcopy(base_model), {name: value}, where="x.npz")


def test_apply_delta_replaces_by_name_and_keeps_the_graph(base_model, tmp_path):
    model = copy.deepcopy(base_model)
    path = save_delta(tmp_path / "d.npz", {"head.pos_conv.bias": np.array([-3.0], np.float16)})
    assert apply_delta(model, load_delta(path)) == 1
    after = _arrays(model)
    assert after["head.pos_conv.bias"].dtype == np.float32 and after["head.pos_conv.bias"][0] == -3.0
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in base_model.graph.node]
    assert sum(not np.array_equal(after[k], v) for k, v in _arrays(base_model).items()) == 1


def test_a_damaged_delta_is_refused_and_leaves_no_model(tmp_path):
    bad = tmp_path / "delta.npz"
    bad.write_bytes(CENTERFACE_MASKED_DELTA.read_bytes()[:-100])
    out = tmp_path / "m.onnx"
    with pytest.raises(AssetError, match="sha256 .* != pinned"):
        make_masked_centerface(require(CENTERFACE_MODEL), bad, out, delta_sha256=CENTERFACE_MASKED_DELTA_SHA256,
                               model_sha256=CENTERFACE_MASKED_MODEL_SHA256)
    assert not out.exists()


def test_a_result_with_another_hash_is_refused_and_removed(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(AssetError, match="not the pinned"):
        make_masked_centerface(require(CENTERFACE_MODEL), CENTERFACE_MASKED_DELTA, out,
                               delta_sha256=CENTERFACE_MASKED_DELTA_SHA256, model_sha256="0" * 64)
    assert not out.exists() and not out.with_suffix(".tmp").exists()


def test_the_committed_delta_is_small_and_pinned():
    assert CENTERFACE_MASKED_DELTA.stat().st_size <= 4 * 1024 * 1024
    assert sha256_file(CENTERFACE_MASKED_DELTA) == CENTERFACE_MASKED_DELTA_SHA256
    assert all(v.dtype == np.float16 for v in load_delta(CENTERFACE_MASKED_DELTA).values())


def test_set_up_rebuilds_the_pinned_model_from_the_delta(tmp_path):
    out = make_masked_centerface(require(CENTERFACE_MODEL), CENTERFACE_MASKED_DELTA, tmp_path / "m.onnx",
                                 delta_sha256=CENTERFACE_MASKED_DELTA_SHA256,
                                 model_sha256=CENTERFACE_MASKED_MODEL_SHA256)
    assert sha256_file(out) == CENTERFACE_MASKED_MODEL_SHA256 == sha256_file(require(CENTERFACE_MASKED_MODEL))


def test_the_shipped_model_reproduces_its_recorded_output_on_a_real_photo(astronaut_bgr):
    det = build_detector(DetectorConfig(model="centerface-masked"))
    dets = det.detect(astronaut_bgr)
    assert len(dets) == 1
    ref = REFERENCE_ASTRONAUT
    np.testing.assert_allclose(dets.box_xyxy[0], ref["box_xyxy"], atol=0.05)
    np.testing.assert_allclose(dets.score[0], ref["score"], atol=1e-4)
    np.testing.assert_allclose(dets.landmarks_xy[0], ref["landmarks_xy"], atol=0.05)


@pytest.mark.parametrize(("model", "path"), [("centerface", CENTERFACE_MODEL),
                                             ("centerface-masked", CENTERFACE_MASKED_MODEL)])
def test_detector_model_selects_the_file(model, path):
    assert model_file(DetectorConfig(model=model)) == path


def test_both_models_keep_the_contract_and_the_eyes(astronaut_bgr):
    """Same input and outputs, and the eyes (which place the canthus) stay where the pinned
    model puts them: the fine-tune keeps its box convention and distils its landmarks, and moves
    the eyes by 0.9 and 1.8 px on this 122 px face (2.4 and 4.7 % of the eye distance)."""
    found = {m: build_detector(DetectorConfig(model=m)).detect(astronaut_bgr) for m in ("centerface", "centerface-masked")}
    orig, ours = found["centerface"], found["centerface-masked"]
    assert len(orig) == len(ours) == 1
    face_h = orig.box_xyxy[0, 3] - orig.box_xyxy[0, 1]
    eye_shift = np.linalg.norm(orig.landmarks_xy[0, :2] - ours.landmarks_xy[0, :2], axis=1)
    assert (eye_shift < 0.02 * face_h).all(), eye_shift / face_h


def test_every_detector_model_has_its_files():
    from typing import get_args

    from edge.assets import DETECTOR_MODELS

    assert set(get_args(DetectorConfig.model_fields["model"].annotation)) == set(DETECTOR_MODELS)
