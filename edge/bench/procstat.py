"""Process readings for the benchmark: resident memory from /proc, CPU time, percentiles."""
from __future__ import annotations

import os
import resource

import numpy as np


def _status_kb(field: str, pid: int | str = "self") -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident set size, MiB (None where /proc is missing)."""
    kb = _status_kb("VmRSS", pid)
    return None if kb is None else kb / 1024.0


def rss_peak_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size of the process so far, MiB (VmHWM; ru_maxrss as a fallback)."""
    kb = _status_kb("VmHWM", pid)
    if kb is None and pid == "self":
        kb = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return None if kb is None else kb / 1024.0


def cpu_s() -> float:
    """User + system CPU seconds this process used (all its threads)."""
    t = os.times()
    return t.user + t.system


def pct(values, q: float) -> float | None:
    """q-th percentile (0..100) of ``values``, None when empty."""
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.percentile(v, q)) if v.size else None


def median(values) -> float | None:
    return pct(values, 50)


def rnd(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)
