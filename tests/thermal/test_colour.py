"""Thermal -> 8-bit / false colour in one place (edge/thermal/colour.py): the scales, and no
other module converting on its own."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edge.paths import REPO_ROOT
from edge.thermal.colour import false_colour, to_u8


def test_fixed_scale_clamps_and_shows_nan_as_the_bottom():
    c = np.array([[20.0, 25.0, 32.5, 40.0, 45.0, np.nan]], np.float32)
    assert to_u8(c, (25.0, 40.0)).tolist() == [[0, 0, 127, 255, 255, 0]]
    img = false_colour(c, (25.0, 40.0))
    assert img.shape == (1, 6, 3) and img.dtype == np.uint8 and (img[0, 5] == img[0, 0]).all()


@pytest.mark.parametrize("percentiles", [(1.0, 99.0), (0, 100)])
def test_stretch_spans_0_to_255_and_nan_is_the_minimum(percentiles):
    rng = np.random.default_rng(3)
    t = rng.normal(30, 3, (60, 80)).astype(np.float32)
    t[5, 5] = np.nan
    g = to_u8(t, percentiles=percentiles)
    assert g.dtype == np.uint8 and g.min() == 0 and g.max() >= 254
    assert g[5, 5] == 0
    if percentiles == (0, 100):
        assert g.max() == 255 and (g == 0).sum() >= 2  # the minimum and the NaN shown as it
    # hotter is never darker
    order = np.argsort(np.nan_to_num(t, nan=-1).ravel(), kind="stable")
    assert (np.diff(g.ravel()[order].astype(int)) >= 0).all()


def test_bgr_input_is_made_grey_first():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[:2] = 200
    g = to_u8(bgr)
    assert g[:2].min() >= 254 and g[2:].max() == 0  # values are truncated, not rounded


def test_no_other_module_makes_thermal_images_8_bit():
    """A second false-colour map or 8-bit stretch elsewhere would drift from this one."""
    pattern = re.compile(r"applyColorMap|NORM_MINMAX|COLORMAP_|def (stretch_to_u8|_to_u8|false_colour)\b")
    offenders = [p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "edge").rglob("*.py")
                 if p.name != "colour.py" and "web" not in p.parts and "sim" not in p.parts
                 and pattern.search(p.read_text())]
    assert offenders == []
