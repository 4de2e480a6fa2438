"""Small-array statistics that return exactly what numpy's return, without numpy's overhead.

The per-frame stages take medians, means and SDs of a few to a few thousand pixels. On arrays
that small, ``np.nanmedian``/``np.nanstd``/``np.percentile`` spend 10-50 us each in Python-level
argument handling, NaN bookkeeping and temporaries -- more than the arithmetic. The functions
here do the same floating-point operations in the same order, so their results are bit-identical
to numpy's (tests/test_faststats.py checks that against numpy on random and edge-case inputs);
anything outside the fast path (NaN in a mean/SD, other dtypes) falls back to numpy itself.
"""
from __future__ import annotations

import math

import numpy as np

_FLOATS = (np.float32, np.float64)


def nanmedian(a: np.ndarray) -> float:
    """``float(np.nanmedian(a))`` over all elements of a float array; NaN if none is finite.

    numpy: drop the NaNs, partition, and take the middle value, or for an even count the mean
    of the two middle values in the array's dtype ((lo + hi) / 2) -- done here with one
    ``isnan`` and one ``partition``. Unlike numpy, an all-NaN input does not warn.
    """
    v = np.asarray(a)
    if v.dtype.type not in _FLOATS:
        return float(np.nanmedian(v))
    v = v.ravel()
    nan = np.isnan(v)
    if nan.any():
        v = v[~nan]
    n = v.size
    if n == 0:
        return float("nan")
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    p = np.partition(v, (k - 1, k))
    return float((p[k - 1] + p[k]) / 2)


def nanmean_std(a: np.ndarray) -> tuple[float, float]:
    """``(float(np.nanmean(a)), float(np.nanstd(a)))`` over all elements; ``(nan, inf)`` when
    no element is finite (the blackbody ROI's convention: no reading, infinitely noisy).

    numpy (no NaN present): sum of a contiguous copy in the array's dtype, divided by the count
    in float64 and rounded back to the dtype; the SD is the square root of the same division of
    the summed squared deviations. Inputs with NaN or inf go to numpy itself.
    """
    v = np.asarray(a)
    fin = np.isfinite(v)
    if not fin.all():
        if not fin.any():
            return float("nan"), float("inf")
        return float(np.nanmean(v)), float(np.nanstd(v))
    t = v.dtype.type
    if t not in _FLOATS:
        return float(np.nanmean(v)), float(np.nanstd(v))
    c = np.ascontiguousarray(v).ravel()
    n = c.size
    mean = t(np.float64(c.sum()) / n)
    d = c - mean
    var = t(np.float64((d * d).sum()) / n)
    return float(mean), float(np.sqrt(var))


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """``(float(np.mean(x)), float(np.std(x)))`` of a 1-D float64 array (n >= 1)."""
    n = len(values)
    m = values.sum() / n
    d = values - m
    return float(m), float(np.sqrt((d * d).sum() / n))


def percentile(values, p: float) -> float:
    """``float(np.percentile(values, p))`` (method 'linear') of a short 1-D sequence of floats.

    numpy: virtual index (n - 1) * p / 100 between sorted neighbours a <= b at fraction t, and
    a + (b - a) * t below t = 0.5, b - (b - a) * (1 - t) from it; the maximum at the top.
    Non-finite input goes to numpy itself.
    """
    s = sorted(values)
    n = len(s)
    if n == 0 or not all(map(math.isfinite, s)):
        return float(np.percentile(np.asarray(values, np.float64), p))
    vi = (n - 1) * (p / 100)
    if vi >= n - 1:
        return float(s[-1])
    lo = math.floor(vi)
    a, b, t = float(s[lo]), float(s[lo + 1]), vi - lo
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def median(values) -> float:
    """``float(np.median(values))`` of a short 1-D sequence of floats (non-finite in -> numpy)."""
    s = sorted(values)
    n = len(s)
    if n == 0 or not all(map(math.isfinite, s)):
        return float(np.median(np.asarray(values, np.float64)))
    k = n // 2
    return float(s[k]) if n % 2 else (float(s[k - 1]) + float(s[k])) / 2
