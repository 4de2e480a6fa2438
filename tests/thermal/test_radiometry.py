"""Radiometric conversion: linear TLinear units and the FLIR raw-count formula."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.thermal.radiometry import (
    KELVIN_OFFSET,
    UNIT_SCALE_K,
    PlanckParams,
    atmospheric_transmission,
    celsius_to_raw,
    from_celsius,
    raw_to_celsius,
    to_celsius,
)


@pytest.mark.parametrize("units,raw,expect_c", [
    ("centikelvin", 30815, 35.0),   # 308.15 K
    ("centikelvin", 27315, 0.0),
    ("centikelvin", 31065, 37.5),
    ("decikelvin", 3082, 35.05),    # 308.2 K
    ("decikelvin", 2732, 0.05),
])
def test_to_celsius_table(units, raw, expect_c):
    out = to_celsius(np.full((2, 3), raw, np.uint16), units)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    assert np.allclose(out, expect_c, atol=1e-3)


def test_to_celsius_zero_is_nan_and_roundtrip():
    raw = np.array([[0, 30815], [31065, 65535]], np.uint16)
    c = to_celsius(raw, "centikelvin")
    assert np.isnan(c[0, 0]) and np.isfinite(c[1:]).all()
    assert np.array_equal(from_celsius(c[1:], "centikelvin"), raw[1:])


def test_to_celsius_rejects_unknown_units():
    with pytest.raises(ValueError, match="millikelvin.*allowed"):
        to_celsius(np.zeros((2, 2), np.uint16), "millikelvin")
    with pytest.raises(ValueError, match="millikelvin.*allowed"):
        from_celsius(np.zeros((2, 2), np.float32), "millikelvin")


def test_planck_no_atmosphere_hand_computed():
    # emissivity 1, distance 0 (tau = 1), no window: T = B / ln(R1/(R2*(raw+O)) + F) - 273.15
    # raw 18109 with R1 21106.77, R2 0.012545258, B 1501, F 1, O -7340:
    #   raw+O = 10769; R2*10769 = 135.0999; R1/135.0999 = 156.2308; +1 -> ln(157.2308) = 5.05772
    #   1501 / 5.05772 = 296.774 K -> 23.62 degC
    p = PlanckParams(emissivity=1.0, distance_m=0.0)
    assert atmospheric_transmission(p) == pytest.approx(1.0)
    got = float(raw_to_celsius(np.array([18109]), p)[0])
    assert got == pytest.approx(23.62, abs=0.01)


def _reference_scalar(raw, p: PlanckParams) -> float:
    """Straight transcription of the published formula (Thermimage raw2temp), scalar math."""
    h2o = p.humidity * math.exp(1.5587 + 0.06939 * p.atmosphere_c - 0.00027816 * p.atmosphere_c ** 2
                                + 0.00000068455 * p.atmosphere_c ** 3)
    tau1 = p.x * math.exp(-math.sqrt(p.distance_m / 2) * (p.alpha1 + p.beta1 * math.sqrt(h2o))) + \
        (1 - p.x) * math.exp(-math.sqrt(p.distance_m / 2) * (p.alpha2 + p.beta2 * math.sqrt(h2o)))
    tau2 = tau1
    def planck(tc):
        return p.r1 / (p.r2 * (math.exp(p.b / (tc + 273.15)) - p.f)) - p.o
    e, irt = p.emissivity, p.ir_window_transmission
    refl1 = (1 - e) / e * planck(p.reflected_c)
    atm1 = (1 - tau1) / e / tau1 * planck(p.atmosphere_c)
    wind = (1 - irt) / e / tau1 / irt * planck(p.ir_window_c)
    atm2 = (1 - tau2) / e / tau1 / irt / tau2 * planck(p.atmosphere_c)
    obj = raw / e / tau1 / irt / tau2 - atm1 - atm2 - wind - refl1
    return p.b / math.log(p.r1 / (p.r2 * (obj + p.o)) + p.f) - 273.15


@pytest.mark.parametrize("kw", [
    dict(emissivity=0.98, distance_m=1.0, humidity=0.5, reflected_c=20.0, atmosphere_c=20.0),
    dict(emissivity=0.95, distance_m=5.0, humidity=0.8, reflected_c=25.0, atmosphere_c=30.0),
    dict(emissivity=0.98, distance_m=2.0, humidity=0.3, reflected_c=18.0, atmosphere_c=22.0,
         ir_window_transmission=0.9, ir_window_c=24.0),
    # FLIR One constants (R1 16528.178, B 1427.5, O -1307, R2 0.012258549)
    dict(r1=16528.178, r2=0.012258549, b=1427.5, f=1.0, o=-1307.0, emissivity=0.95, distance_m=1.0),
])
def test_planck_matches_scalar_reference_and_inverts(kw):
    p = PlanckParams(**kw)
    raws = np.array([12000.0, 15000.0, 18109.0, 22000.0])
    got = raw_to_celsius(raws, p)
    ref = [_reference_scalar(r, p) for r in raws]
    assert np.allclose(got, ref, atol=1e-3)
    temps = np.array([30.0, 34.5, 37.5, 40.0])
    assert np.allclose(raw_to_celsius(celsius_to_raw(temps, p), p), temps, atol=1e-3)


def test_planck_emissivity_raises_skin_reading():
    # Same counts read as a warmer object when the object is a worse emitter (cold room).
    raw = celsius_to_raw(np.array([34.0]), PlanckParams(emissivity=1.0, distance_m=0.0, reflected_c=20.0))
    t98 = float(raw_to_celsius(raw, PlanckParams(emissivity=0.98, distance_m=0.0, reflected_c=20.0))[0])
    assert 34.1 < t98 < 34.5


def test_planck_vectorised_frame_and_invalid_counts():
    p = PlanckParams()
    frame = np.full((120, 160), 18000, np.uint16)
    frame[0, 0] = 0  # below -O: no physical temperature
    out = raw_to_celsius(frame, p)
    assert out.shape == (120, 160) and out.dtype == np.float32
    assert np.isnan(out[0, 0]) and np.isfinite(out[1:]).all()


def test_planck_params_bounds():
    with pytest.raises(ValueError, match="emissivity=1.5"):
        PlanckParams(emissivity=1.5)


def test_ambient_estimate_follows_the_scene_median_smoothly_and_a_fixed_reading_wins():
    from edge.thermal.radiometry import AmbientEstimator

    scene = np.full((120, 160), 22.0, np.float32)
    scene[40:90, 60:100] = 34.0  # a face: does not move the median
    scene[0, 0] = np.nan  # dead pixel
    est = AmbientEstimator()
    assert est.update(scene) == pytest.approx(22.0)
    warmer = scene + 2.0
    assert est.update(warmer) == pytest.approx(22.2)  # smoothed, not jumped
    assert AmbientEstimator(fixed_c=25.0).update(scene) == 25.0
    with pytest.raises(ValueError, match="smoothing=0"):
        AmbientEstimator(smoothing=0)


@pytest.mark.parametrize("units", ["centikelvin", "decikelvin"])
def test_to_celsius_every_count_is_float32_formula(units):
    """Every uint16 count, also through a strided view: float32(count) * float32(scale) - 273.15
    in float32, and NaN for the dead count 0 -- exactly, whatever the implementation."""
    raw = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expect = raw.astype(np.float32) * np.float32(UNIT_SCALE_K[units]) - np.float32(KELVIN_OFFSET)
    expect[0, 0] = np.nan
    assert np.array_equal(to_celsius(raw, units), expect, equal_nan=True)
    assert np.array_equal(to_celsius(raw[::3, 1::2], units), expect[::3, 1::2], equal_nan=True)
