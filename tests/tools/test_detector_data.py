"""The detector fine-tune's training data (tools/detector/data.py): numpy only, no PyTorch.

The targets must be what the product's decoder reads back: a box taught through ``targets``
and decoded by ``CenterFaceDetector._decode`` lands on the same box, or training would teach
the network a convention the product does not use.
"""
import importlib.util
import json

import numpy as np
import pytest

from edge.paths import REPO_ROOT
from edge.vision.detection import CenterFaceDetector, DetectorConfig


def _module():
    spec = importlib.util.spec_from_file_location("detector_data", REPO_ROOT / "tools" / "detector" / "data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


data = _module()
CFG = json.loads((REPO_ROOT / "tools" / "detector" / "config.json").read_text())


class _NoSession:
    def get_inputs(self):
        return [type("I", (), {"name": "input.1"})()]

    def get_outputs(self):
        return [type("O", (), {"name": n})() for n in ("537", "538", "539", "540")]


@pytest.mark.parametrize("box", [(40.0, 30.0, 90.0, 95.0), (101.3, 7.9, 117.6, 29.2), (250.0, 180.0, 319.0, 255.0)])
def test_targets_decode_back_to_the_box_with_the_products_decoder(box):
    w, h = CFG["input_wh"]
    h4, w4 = h // data.STRIDE, w // data.STRIDE
    heat_t, use, cells, sizes, offs = data.targets(np.array([box], np.float32), np.zeros((0, 4), np.float32), h4, w4)
    (iy, ix), (lh, lw), (oy, ox) = cells[0], sizes[0], offs[0]
    assert heat_t[iy, ix] == 1.0 and heat_t.max() == 1.0 and use.all()
    heat = np.zeros((h4, w4), np.float32)
    heat[iy, ix] = 0.9
    scale = np.zeros((2, h4, w4), np.float32)
    scale[:, iy, ix] = lh, lw
    off = np.zeros((2, h4, w4), np.float32)
    off[:, iy, ix] = oy, ox
    det = CenterFaceDetector(_NoSession(), DetectorConfig())  # type: ignore[arg-type]
    det._set_geometry(h, w)  # a frame the size of the input: identity mapping
    dets = det._decode(heat, scale, off, np.zeros((10, h4, w4), np.float32), h, w)
    assert len(dets) == 1
    np.testing.assert_allclose(dets.box_xyxy[0], box, atol=1e-3)


def test_ignored_boxes_blank_their_cells_only():
    heat_t, use, cells, _, _ = data.targets(np.zeros((0, 4), np.float32), np.array([[8, 8, 24, 24]], np.float32), 64, 80)
    assert cells == [] and heat_t.max() == 0
    assert use[2:6, 2:6].sum() == 0 and use.sum() == 64 * 80 - 16


def test_gaussian_radius_grows_with_the_face_and_stays_inside_it():
    # CenterNet's formula: the spread of the centre target, in cells, for a face of h x w cells
    radii = [data.gaussian_radius(s, s * 0.8) for s in (2.0, 5.0, 10.0, 20.0, 40.0)]
    assert all(a < b for a, b in zip(radii, radii[1:]))
    assert all(0 < r < s * 0.8 / 2 for r, s in zip(radii, (2.0, 5.0, 10.0, 20.0, 40.0)))


def test_augment_keeps_faces_inside_the_input_and_reports_the_rest():
    rng = np.random.default_rng(5)
    photo = np.full((300, 400, 3), 120, np.uint8)
    boxes = np.array([[10, 10, 60, 70], [380, 250, 399, 299], [150, 100, 200, 160]], np.float32)
    w, h = CFG["input_wh"]
    taught = ignored = 0
    for _ in range(40):
        img, teach, ign = data.augment(photo, boxes, CFG, rng)
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        assert len(teach) + len(ign) <= 3
        for x1, y1, x2, y2 in teach:  # taught faces are mostly visible and big enough
            vis_w, vis_h = min(x2, w) - max(x1, 0), min(y2, h) - max(y1, 0)
            assert vis_w * vis_h >= CFG["min_visible_fraction"] * (x2 - x1) * (y2 - y1) - 1e-3
            assert y2 - y1 >= CFG["min_positive_px"]
        taught += len(teach)
        ignored += len(ign)
    assert taught > 40 and ignored > 0
