"""How many camera pairs one gateway sustains in real time.

K live stations (edge/benchlib/live.py, no subscriber) run side by side in K processes on the
machine's cores, each replaying the benchmark stream at its recorded rate (30 fps RGB, 8.7 Hz
thermal) through capture threads, pairing, the pipeline and a feed. A trial with K pairs is
sustained when every station kept up -- no frame dropped by a capture queue (beyond 0.5 %),
at least 95 % of the expected pairs processed, capture-to-result p99 under ``max_p99_ms`` --
and the stations together used at most ``cpu_budget`` of the cores (CPU to spare).
"""
from __future__ import annotations

from typing import Callable

MAX_DROP_FRAC = 0.005
MIN_PAIR_FRAC = 0.95


def judge(runs: list[dict], wall_s: float, cores: int, *, cpu_budget: float = 0.85,
          max_p99_ms: float = 250.0) -> dict:
    """Summarise one trial (the K per-station results) and say whether it was sustained."""
    cpu = sum(r.get("cpu_s", 0.0) for r in runs)
    util = cpu / (wall_s * cores) if wall_s > 0 else None
    reasons = []
    for k, r in enumerate(runs):
        if "error" in r:
            reasons.append(f"station {k}: {r['error']}")
            continue
        frames = sum(r["frames"].values()) or 1
        dropped = r["rgb_dropped"] + r["thermal_dropped"]
        if dropped / frames > MAX_DROP_FRAC:
            reasons.append(f"station {k}: {dropped} of {frames} frames dropped (backlog)")
        if r["pairs"] < MIN_PAIR_FRAC * r["expected_pairs"]:
            reasons.append(f"station {k}: {r['pairs']} pairs of {r['expected_pairs']} expected")
        p99 = r["pair_latency_ms"]["p99"]
        if p99 is None or p99 > max_p99_ms:
            reasons.append(f"station {k}: p99 capture-to-result {p99} ms > {max_p99_ms} ms")
    if util is not None and util > cpu_budget:
        reasons.append(f"CPU {100 * util:.0f} % of {cores} cores > {100 * cpu_budget:.0f} %")
    return {"k": len(runs), "cpu_util": None if util is None else round(util, 3),
            "p99_ms": [r.get("pair_latency_ms", {}).get("p99") for r in runs],
            "dropped": [r.get("rgb_dropped", 0) + r.get("thermal_dropped", 0) for r in runs],
            "pairs": [r.get("pairs") for r in runs], "sustained": not reasons, "why_not": reasons}


def search(run_trial: Callable[[int], tuple[list[dict], float]], start_k: int, cores: int, *,
           max_trials: int = 4, k_max: int = 16, log=print) -> dict:
    """Find the largest sustained K, starting from ``start_k`` and stepping by one.

    run_trial(k) -> (per-station results, wall seconds). Returns {camera_pairs_realtime,
    trials}; camera_pairs_realtime is 0 when even one pair is not sustained, None when no trial
    could decide (e.g. the first failed and K=1 was not reached within max_trials)."""
    trials: dict[int, dict] = {}
    k = max(1, min(start_k, k_max))
    best, worst = 0, None  # largest sustained, smallest not sustained
    for _ in range(max_trials):
        runs, wall = run_trial(k)
        t = judge(runs, wall, cores)
        trials[k] = t
        log(f"bench: gateway K={k}: {'sustained' if t['sustained'] else 'NOT sustained'} "
            f"(CPU {t['cpu_util']}, p99 {t['p99_ms']} ms, dropped {t['dropped']})")
        if t["sustained"]:
            best = max(best, k)
        else:
            worst = k if worst is None else min(worst, k)
        if worst is not None and worst == best + 1:
            break
        if t["sustained"]:
            if k >= k_max:
                break
            k += 1
        else:
            if k <= 1:
                break
            k -= 1
        if k in trials:
            break
    decided = best > 0 or (worst == 1)
    return {"camera_pairs_realtime": best if decided else None,
            "bounded_by_trials": not (worst is not None and worst == best + 1) and best > 0,
            "trials": [trials[key] for key in sorted(trials)]}
