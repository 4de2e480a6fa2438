"""edge/thermal/faststats.py must return exactly (bit for bit) what numpy returns: the stages that use it
promise unchanged results. Random arrays of the sizes the stages see, as views and copies, with
ties, NaN and inf."""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.thermal.faststats import mean_std, median, nanmean_std, nanmedian, percentile


def same(a: float, b: float) -> bool:
    return (a == b and np.signbit(a) == np.signbit(b)) or (np.isnan(a) and np.isnan(b))


def arrays(seed: int, dtype) -> list[np.ndarray]:
    """Views and copies of random frames: ROI-sized, strip-sized, subsampled scenes."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in ((1, 1), (2, 5), (4, 4), (2, 9), (8, 8), (6, 7), (30, 40), (13, 1)):
        big = rng.normal(35.0, rng.choice([0.01, 0.3, 20.0]), (h + 6, w + 6)).astype(dtype)
        if rng.random() < 0.3:
            big = np.round(big, 1)  # ties around the median
        out += [big[3:3 + h, 2:2 + w], big[::2, ::3], np.ascontiguousarray(big[:h, :w])]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
def test_nanmedian_equals_numpy(seed, dtype):
    rng = np.random.default_rng(1000 + seed)
    for a in arrays(seed, dtype):
        assert same(nanmedian(a), float(np.nanmedian(a))), a
        b = a.copy()
        b[rng.random(b.shape) < 0.3] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on all-NaN
            assert same(nanmedian(b), float(np.nanmedian(b))), b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
def test_nanmean_std_equals_numpy(seed, dtype):
    rng = np.random.default_rng(2000 + seed)
    for a in arrays(seed, dtype):
        for b in (a, np.where(rng.random(a.shape) < 0.2, np.nan, a).astype(dtype),
                  np.where(rng.random(a.shape) < 0.1, np.inf, a).astype(dtype)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf, as numpy warns
                mean, sd = nanmean_std(b)
                if not np.isfinite(b).any():
                    assert np.isnan(mean) and sd == np.inf
                    continue
                assert same(mean, float(np.nanmean(b))) and same(sd, float(np.nanstd(b))), b


def test_all_nan_and_empty():
    nan = np.full((3, 3), np.nan, np.float32)
    assert np.isnan(nanmedian(nan)) and np.isnan(nanmedian(np.zeros(0, np.float32)))
    mean, sd = nanmean_std(nan)
    assert np.isnan(mean) and sd == np.inf


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=1, max_size=40))
def test_mean_std_equals_numpy(values):
    dq = deque(values, maxlen=8)  # the blackbody's averaging window
    for x in (values, dq):
        mean, sd = mean_std(np.array(x))
        assert same(mean, float(np.mean(x))) and same(sd, float(np.std(x)))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.floats(30.0, 45.0, allow_nan=False, width=32), min_size=1, max_size=24),
       st.sampled_from([90.0, 50.0, 0.0, 100.0, 75.5, 33.3]))
@pytest.mark.slow
def test_percentile_and_median_equal_numpy(values, p):
    """The decision's aggregation: percentile of the best frames' readings, median sigmas."""
    arr = np.array(values, np.float64)
    for x in (values, arr):
        assert same(percentile(x, p), float(np.percentile(arr, p)))
        assert same(median(x), float(np.median(arr)))


def test_percentile_and_median_non_finite_as_numpy():
    for v in ([36.0, np.nan, 37.0], [np.inf, 36.5, 36.0, 35.0], [-np.inf, 1.0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert same(percentile(v, 90.0), float(np.percentile(v, 90.0)))
            assert same(median(v), float(np.median(v)))
