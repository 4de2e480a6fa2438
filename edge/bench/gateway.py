"""How many camera pairs one gateway sustains in real time.

K live stations (edge/bench/live.py, no subscriber) run side by side in K processes on the
machine's cores, each replaying the benchmark stream at its recorded rate (30 fps RGB, 8.7 Hz
thermal) through capture threads, pairing, the pipeline and a feed. A trial with K pairs is
sustained when every station kept up -- no thermal frame dropped by its capture queue (beyond
0.5 %), at least 95 % of the expected pairs processed after a 2 s warm-up, capture-to-result p99 under
``max_p99_ms`` -- and the stations together used at most ``cpu_budget`` of the cores (CPU to
spare). RGB drops are reported but not judged on their own: RGB runs at 30 fps and only about
one frame in 3.5 pairs; a dropped RGB frame that mattered shows up as a missing pair.
"""
from __future__ import annotations

from collections.abc import Callable

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
        frames = r["frames"].get("thermal", 0) + r["thermal_dropped"] or 1
        # judged after the warm-up, like the pairs: K processes starting on the same tick all run
        # their first (slow) inferences at once, and a station may drop a frame then, once
        dropped = r["thermal_dropped"] - r.get("thermal_dropped_warmup", 0)
        if dropped / frames > MAX_DROP_FRAC:
            reasons.append(f"station {k}: {dropped} of {frames} thermal frames dropped after warm-up (backlog)")
        # after warm-up when the station reports it (cameras opening lose a few first frames)
        got, want = r.get("steady_pairs", r["pairs"]), r.get("steady_expected_pairs", r["expected_pairs"])
        if got < MIN_PAIR_FRAC * want:
            reasons.append(f"station {k}: {got} pairs of {want} expected (after warm-up)")
        p99 = r["pair_latency_ms"]["p99"]
        if p99 is None or p99 > max_p99_ms:
            reasons.append(f"station {k}: p99 capture-to-result {p99} ms > {max_p99_ms} ms")
    if util is not None and util > cpu_budget:
        reasons.append(f"CPU {100 * util:.0f} % of {cores} cores > {100 * cpu_budget:.0f} %")
    return {"k": len(runs), "cpu_util": None if util is None else round(util, 3),
            "p99_ms": [r.get("pair_latency_ms", {}).get("p99") for r in runs],
            "thermal_dropped": [r.get("thermal_dropped", 0) for r in runs],
            "thermal_dropped_warmup": [r.get("thermal_dropped_warmup", 0) for r in runs],
            "rgb_dropped": [r.get("rgb_dropped", 0) for r in runs],
            "pairs": [r.get("pairs") for r in runs], "unpaired_thermal": [r.get("unpaired_thermal") for r in runs],
            "sustained": not reasons, "why_not": reasons}


def search(run_trial: Callable[[int], tuple[list[dict], float]], start_k: int, cores: int, *,
           max_trials: int = 4, k_max: int = 16, log=print) -> dict:
    """Find the largest sustained K: from ``start_k`` step up while sustained; if it fails, step
    down one at a time until one is sustained (the CPU estimate is an upper bound, usually off
    by one or two), then bisect if a gap remains.

    run_trial(k) -> (per-station results, wall seconds). Returns {camera_pairs_realtime,
    bounded_by_trials, trials}: camera_pairs_realtime is the largest sustained K, 0 when K=1
    itself was not sustained, None when the trials left it undecided."""
    trials: dict[int, dict] = {}
    k = max(1, min(start_k, k_max))
    best, worst = 0, None  # largest sustained, smallest not sustained
    for _ in range(max_trials):
        runs, wall = run_trial(k)
        t = judge(runs, wall, cores)
        trials[k] = t
        log(f"bench: gateway K={k}: {'sustained' if t['sustained'] else 'NOT sustained'} "
            f"(CPU {t['cpu_util']}, p99 {t['p99_ms']} ms, pairs {t['pairs']}, thermal dropped {t['thermal_dropped']}, of which in warm-up {t['thermal_dropped_warmup']})")
        if t["sustained"]:
            best = max(best, k)
        else:
            worst = k if worst is None else min(worst, k)
        if worst is not None and worst <= best + 1:
            break
        if worst is None:
            if k >= k_max:
                break
            k += 1
        elif best:
            k = (best + worst) // 2
        else:  # nothing sustained yet: one below the smallest failure
            k = max(1, worst - 1)
        if k in trials:
            break
    settled = worst is not None and worst <= best + 1
    return {"camera_pairs_realtime": best if (best > 0 or settled) else None,
            "bounded_by_trials": best > 0 and not settled,
            "trials": [trials[key] for key in sorted(trials)]}
