"""`make bench` / `thermal-edge bench`: throughput, latency, memory and capacity of the pipeline.

Input: benchmarks/bench_scenario.toml rendered by the simulator into build/bench/ (VGA RGB at
30 fps + 160x120 thermal at 8.7 Hz, one to three faces in view). Every measurement runs in its
own subprocess so pinning, thread counts and memory readings belong to that measurement alone:

  replay-1core  whole pipeline, no sleeping, ``taskset -c 0`` + onnxruntime intra-op threads 1;
                the detector's own time on the same frames in the same run; per-stage times
  replay-2core  the same on both cores, intra-op threads 2
  live          the live station (capture threads, queues, pairing, pipeline, PUB + SUB) in
                real time: capture-to-alert latency
  long          a long replay (20 min of stream by default, the stream looped; bounded in wall
                time) sampling resident memory: peak and growth
  gateway       K live stations in parallel, real time: the largest K sustained with CPU to spare

Throughput figures are medians over several runs; ratios come from within one run (the
detector and the pipeline timed on the same pairs), which is what to trust on a noisy machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bench import procstat as ps
from edge.bench.stream import BENCH_SCENARIO, REPO_ROOT, ensure_stream, stream_info
from edge.eval.report import git_commit, shared_data_dir
from edge.eval.tables import fmt_num
from edge.utc import utc_iso

JSON_DEFAULT = REPO_ROOT / "benchmarks" / "latest.json"
REAL_THERMAL_HZ = 8.7

# name -> (comparison, target, description)
TARGETS = {
    "pairs_per_s_1core": (">=", 60.0, "pairs/s through the whole pipeline on one core"),
    "pipeline_to_detector_ratio": ("<=", 1.25, "pipeline time per pair / detector time per pair"),
    "latency_p99_ms": ("<=", 50.0, "p99 capture-to-alert latency, live mode, ms"),
    "rss_growth_pct": ("<=", 2.0, "RSS growth over the long replay, % (flat = within noise)"),
    "camera_pairs_realtime": (">=", 4, "camera pairs one 2-core gateway sustains in real time"),
    "web_viewer_cpu_pct": ("<=", 10.0, "extra CPU of one live-view viewer, % of one core"),
}
STAGE_KEYS = ("decode", "decode_wait", "pairing", "radiometry", "preprocess", "inference", "postprocess", "mask",
              "registration", "measurement", "tracking", "decision", "publish", "other")

PLANS = {  # quick: < 2 min once the stream is rendered; full: < 10 min
    "quick": {"runs": 2, "loops": 0.4, "live_s": 12.0, "long_loops": 3.0, "long_max_wall_s": 20.0,
              "gateway_s": 6.0, "gateway_trials": 1, "gateway_k_max": 16,
              "web_runs": 1, "web_phase_s": 4.0, "guidance_s": 0.0},
    "full": {"runs": 3, "loops": 1.0, "live_s": 45.0, "long_loops": 40.0, "long_max_wall_s": 180.0,
             "gateway_s": 20.0, "gateway_trials": 4, "gateway_k_max": 16,
             "web_runs": 3, "web_phase_s": 10.0, "guidance_s": 60.0},
}


# ----------------------------------------------------------------------------- environment

def machine_info() -> dict:
    import cv2
    import numpy
    import onnxruntime

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "mem_gb": mem_gb,
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()], "os": platform.platform(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__, "numpy": numpy.__version__}


# ----------------------------------------------------------------------------- subprocess workers

def run_worker(kind: str, stream: Path, *, timeout_s: float = 900, **opts: Any) -> dict:
    """Run ``python -m edge.bench.suite worker KIND`` in a subprocess and return its JSON result, or
    {'error': one line} if it failed (opts: as for start_worker)."""
    return collect(start_worker(kind, stream, **opts), timeout_s)


def start_worker(kind: str, stream: Path, *, pin_core: int | None = None, **opts: Any) -> subprocess.Popen:
    """Start ``python -m edge.bench.suite worker KIND --stream STREAM --<opt> <value>...`` (pinned to
    ``pin_core`` if given) and return it; ``collect`` reads its result."""
    cmd = [sys.executable, "-m", "edge.bench.suite", "worker", kind, "--stream", str(stream)]
    for k, v in opts.items():
        if v is None or v is False:
            continue
        cmd += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    if pin_core is not None:
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(pin_core)] + cmd
        else:  # util-linux missing: pin the child ourselves
            cmd = [sys.executable, "-c", f"import os,sys; os.sched_setaffinity(0, {{{pin_core}}}); "
                   f"os.execv(sys.executable, {cmd!r})"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def collect(proc: subprocess.Popen, timeout_s: float) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [ln for ln in err.strip().splitlines() if ln.strip()]
        return {"error": f"exit {proc.returncode}: {last[-1] if last else 'no output'}"}
    return json.loads(lines[-1])


def _worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.bench.suite worker")
    ap.add_argument("kind", choices=("replay", "live"))
    ap.add_argument("--stream", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loops", type=float, default=1.0)
    ap.add_argument("--max-wall-s", type=float)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--no-subscribe", action="store_true")
    ap.add_argument("--start-at", type=float, help="CLOCK_MONOTONIC second to start at (parallel trials)")
    ap.add_argument("--detector-size", help="WxH network input, e.g. 320x256")
    ap.add_argument("--detector-precision", choices=("int8", "float32"), help="default: the config default")
    a = ap.parse_args(argv)
    det: dict[str, Any] = {}
    if a.detector_size:
        w, h = (int(x) for x in a.detector_size.lower().split("x"))
        det.update(input_width_px=w, input_height_px=h)
    if a.detector_precision:
        det["precision"] = a.detector_precision
    if a.kind == "replay":
        from edge.bench.replay import run_replay

        res = run_replay(a.stream, loops=a.loops, threads=a.threads, max_wall_s=a.max_wall_s, detector=det)
    else:
        from edge.bench.live import run_live

        res = run_live(a.stream, seconds=a.seconds, threads=a.threads, detector=det,
                       subscribe=not a.no_subscribe, start_at=a.start_at)
    print(json.dumps(res))
    return 0


def _sizes_main(argv: list[str]) -> int:
    """Detector input size vs recall vs speed; not part of `make bench` (needs ../shared/data)."""
    from edge.bench.sizes import SIZES_DEFAULT, format_sizes, run_sizes

    ap = argparse.ArgumentParser(prog="python -m edge.bench.suite sizes")
    ap.add_argument("--faces-dir", type=Path, default=shared_data_dir() / "masked_faces")
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES_DEFAULT))
    ap.add_argument("--json-out", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    a = ap.parse_args(argv)
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in a.sizes.split(",")]
    res = run_sizes(ensure_stream(), a.faces_dir, sizes, log=lambda s: print(s, file=sys.stderr, flush=True))
    res["machine"], res["commit"] = machine_info(), git_commit()
    if a.json_out:
        a.json_out.write_text(json.dumps(res, indent=1) + "\n")
    print(format_sizes(res))
    return 0


# ----------------------------------------------------------------------------- the benchmark

def _detector_info() -> dict:
    """The detector every measurement uses (the config defaults), and its model file."""
    from edge.assets import sha256_file
    from edge.vision.detection import DetectorConfig, model_file

    cfg = DetectorConfig()
    path = model_file(cfg)
    return {"precision": cfg.precision, "input_wh": [cfg.input_width_px, cfg.input_height_px],
            "model": path.name, "model_sha256": sha256_file(path)}


def _median_of(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if "error" not in r and r.get(key) is not None]
    return ps.median(vals)


def _errors(runs: list[dict]) -> str:
    return "; ".join(sorted({r["error"] for r in runs if "error" in r}))


def run_bench(quick: bool = False, log: Callable[[str], None] = print,
              scenario: Path = BENCH_SCENARIO, stream_dir: Path | None = None,
              plan: dict | None = None) -> dict:
    """Run every measurement; returns the result dict (JSON-ready). Missing figures are None
    with the reason in result['missing']."""
    plan = {**PLANS["quick" if quick else "full"], **(plan or {})}
    t_start = time.monotonic()
    stream = ensure_stream(scenario, stream_dir, log=log)
    info = stream_info(stream)
    res: dict[str, Any] = {"schema": 1, "quick": quick, "plan": plan,
                           "command": "thermal-edge bench" + (" --quick" if quick else ""),
                           "time_utc": utc_iso(),
                           "commit": git_commit(), "machine": machine_info(), "stream": info,
                           "detector": _detector_info(),
                           "scenario": str(Path(scenario).resolve().relative_to(REPO_ROOT))
                           if Path(scenario).resolve().is_relative_to(REPO_ROOT) else str(scenario)}
    missing: dict[str, str] = {}
    cores = res["machine"]["cores_usable"]
    runs = {}
    runs.update(_replay_figures(res, missing, stream, info, plan, cores, log))
    runs["live"] = _live_figures(res, missing, stream, plan, cores, log)
    runs["long"] = _long_figures(res, missing, stream, info, plan, log)
    runs["gateway"] = _gateway_figures(res, missing, stream, plan, cores, log)
    runs["web"] = _web_figures(res, missing, plan, log)
    res["targets"] = judge_targets(res)
    res["missing"] = missing
    res["runs"] = runs
    res["bench_wall_s"] = round(time.monotonic() - t_start, 1)
    return res


def _replay_figures(res: dict, missing: dict, stream: Path, info: dict, plan: dict, cores: int, log) -> dict:
    log(f"bench: replay on one core ({plan['runs']} runs x {plan['loops']} x {info['duration_s']:.0f} s of stream)")
    one = [run_worker("replay", stream, pin_core=0, threads=1, loops=plan["loops"]) for _ in range(plan["runs"])]
    log(f"bench: replay on {cores} cores ({plan['runs']} runs)")
    two = [run_worker("replay", stream, threads=cores, loops=plan["loops"]) for _ in range(plan["runs"])]
    # both cores with ONE onnxruntime thread: OpenCV, decode and the pipeline may use the other
    # core; on a busy box ORT's second thread can cost more than it gains
    two_t1 = [run_worker("replay", stream, threads=1, loops=plan["loops"]) for _ in range(plan["runs"])]
    # the same one-core replay with the other detector precision: what int8 buys, on this machine
    other = "float32" if res["detector"]["precision"] == "int8" else "int8"
    if other == "int8":
        from edge.vision.quantize import ensure_int8

        log("bench: building the int8 detector for the comparison (python -m edge.vision.quantize)")
        ensure_int8(verbose=False)
    log(f"bench: replay on one core with the {other} detector ({plan['runs']} runs)")
    alt = [run_worker("replay", stream, pin_core=0, threads=1, loops=plan["loops"], detector_precision=other)
           for _ in range(plan["runs"])]
    res[f"pairs_per_s_1core_{other}"] = ps.rnd(_median_of(alt, "pairs_per_s"))
    res[f"detector_ms_{other}"] = ps.rnd(_median_of(alt, "detector_ms"))
    res[f"pipeline_to_detector_ratio_{other}"] = ps.rnd(_median_of(alt, "pipeline_to_detector_ratio"), 3)
    ok1 = [r for r in one if "error" not in r]
    res["pairs_per_s_1core"] = ps.rnd(_median_of(one, "pairs_per_s"))
    res["pairs_per_s_2core"] = ps.rnd(_median_of(two, "pairs_per_s"))
    res["pairs_per_s_2core_ort1"] = ps.rnd(_median_of(two_t1, "pairs_per_s"))
    res["detector_ms"] = ps.rnd(_median_of(one, "detector_ms"))
    res["detector_inference_ms"] = ps.rnd(_median_of(one, "detector_inference_ms"))
    res["pipeline_ms_per_pair"] = ps.rnd(_median_of(one, "pipeline_ms_per_pair"))
    res["pipeline_to_detector_ratio"] = ps.rnd(_median_of(one, "pipeline_to_detector_ratio"), 3)
    res["cpu_ms_per_pair_1core"] = ps.rnd(_median_of(one, "cpu_ms_per_pair"))
    res["cpu_ms_per_pair_2core"] = ps.rnd(_median_of(two, "cpu_ms_per_pair"))
    res["detector_ms_2core"] = ps.rnd(_median_of(two, "detector_ms"))
    res["pipeline_to_detector_ratio_2core"] = ps.rnd(_median_of(two, "pipeline_to_detector_ratio"), 3)
    res["stage_ms"] = {k: ps.rnd(ps.median([r["stage_ms_mean"][k] for r in ok1 if r["stage_ms_mean"].get(k) is not None]), 3)
                       for k in STAGE_KEYS}
    res["faces_per_pair"] = ps.rnd(_median_of(one, "faces_per_pair"), 3)
    failed = [(k, one) for k in ("pairs_per_s_1core", "detector_ms", "pipeline_ms_per_pair",
                                 "pipeline_to_detector_ratio")] + [("pairs_per_s_2core", two)]
    for key, runs in failed:
        if res[key] is None:
            missing[key] = f"every run failed: {_errors(runs)}"
    return {"replay_1core": one, "replay_2core": two, "replay_2core_ort1": two_t1, f"replay_1core_{other}": alt}


def _live_figures(res: dict, missing: dict, stream: Path, plan: dict, cores: int, log) -> dict:
    log(f"bench: live station in real time for {plan['live_s']:.0f} s (capture threads, queues, PUB/SUB)")
    live = run_worker("live", stream, threads=1, seconds=plan["live_s"])
    if "error" in live:
        missing["latency_p99_ms"] = missing["latency_p50_ms"] = f"live run failed: {live['error']}"
        missing["camera_pairs_cpu_estimate"] = missing["latency_p99_ms"]
        res["latency_p50_ms"] = res["latency_p99_ms"] = None
    else:
        res["latency_p50_ms"] = live["pair_latency_ms"]["p50"]
        res["latency_p99_ms"] = live["pair_latency_ms"]["p99"]
        res["latency_samples"] = live["pair_latency_ms"]["n"]
        # where the live latency goes: the pipeline's own time vs waiting (pairing, queues)
        res["latency_processing_p50_ms"] = live["pair_processing_ms"]["p50"]
        res["latency_processing_p99_ms"] = live["pair_processing_ms"]["p99"]
        res["latency_wait_p50_ms"] = live["pair_wait_ms"]["p50"]
        res["latency_wait_p99_ms"] = live["pair_wait_ms"]["p99"]
        res["alert_latency_p50_ms"] = live["alert_latency_ms"]["p50"]
        res["alert_latency_p99_ms"] = live["alert_latency_ms"]["p99"]
        res["alert_latency_max_ms"] = live["alert_latency_ms"]["max"]
        res["alerts_received"] = live["alert_latency_ms"]["n"]
        res["live_cpu_cores_per_station"] = live["cpu_cores_used"]
        # what the CPU alone allows: stations whose measured real-time CPU use fits in 85 %
        # of the cores (an estimate, not a trial; the trial below is the measurement)
        if live["cpu_cores_used"]:
            res["camera_pairs_cpu_estimate"] = int(0.85 * cores / live["cpu_cores_used"])
    return live


def _long_figures(res: dict, missing: dict, stream: Path, info: dict, plan: dict, log) -> dict:
    stream_min = plan["long_loops"] * info["duration_s"] / 60
    log(f"bench: long replay for RSS ({stream_min:.0f} min of stream, at most {plan['long_max_wall_s']:.0f} s wall)")
    # ORT threads 1 (the station default): more stream per second of wall time on a busy box
    long = run_worker("replay", stream, threads=1, loops=plan["long_loops"], max_wall_s=plan["long_max_wall_s"])
    if "error" in long:
        missing["rss_peak_mb"] = missing["rss_growth_pct"] = f"long replay failed: {long['error']}"
        res["rss_peak_mb"] = res["rss_growth_pct"] = None
    else:
        res["rss_peak_mb"] = long["rss_peak_mb"]
        res["rss_growth_pct"] = long["rss_growth"]["growth_pct"]
        res["rss_slope_mb_per_min"] = long["rss_growth"]["slope_mb_per_min"]  # per wall minute
        if long["rss_growth"]["slope_mb_per_min"] is not None and long["stream_s"]:
            res["rss_slope_mb_per_stream_min"] = round(
                long["rss_growth"]["slope_mb_per_min"] * long["wall_s"] / long["stream_s"], 4)
        res["rss_long_stream_min"] = round(long["stream_s"] / 60, 2)
        if res["rss_growth_pct"] is None:
            missing["rss_growth_pct"] = f"only {long['rss_growth']['samples']} RSS samples (< 10)"
    return long


def _gateway_figures(res: dict, missing: dict, stream: Path, plan: dict, cores: int, log) -> dict:
    from edge.bench.gateway import search

    # first guess: the CPU estimate from the live run, else what the one-core rate carries at 85 %
    pps1 = res["pairs_per_s_1core"] or 0.0
    start_k = res.get("camera_pairs_cpu_estimate") or max(1, int(0.85 * cores * pps1 / REAL_THERMAL_HZ))

    def trial(k: int) -> tuple[list[dict], float]:
        start_at = time.monotonic() + 6.0 + 1.5 * k  # every station set up before any starts
        procs = [start_worker("live", stream, threads=1, seconds=plan["gateway_s"], no_subscribe=True,
                            start_at=round(start_at, 3)) for _ in range(k)]
        return [collect(p, plan["gateway_s"] + 120) for p in procs], plan["gateway_s"]

    log(f"bench: gateway capacity, {plan['gateway_s']:.0f} s trials from K={start_k}")
    gw = search(trial, start_k, cores, max_trials=plan["gateway_trials"], k_max=plan["gateway_k_max"], log=log)
    res["camera_pairs_realtime"] = gw["camera_pairs_realtime"]
    if gw["camera_pairs_realtime"] is None:
        missing["camera_pairs_realtime"] = "no trial decided it: " + "; ".join(
            w for t in gw["trials"] for w in t["why_not"])[:300]
    elif gw["bounded_by_trials"]:
        res["camera_pairs_realtime_note"] = (f"at least {gw['camera_pairs_realtime']}: the trial budget ran out "
                                             "before a K that is not sustained")
    return gw


def _web_figures(res: dict, missing: dict, plan: dict, log) -> dict:
    """The station web pages (edge/bench/web.py, in its own process): CPU of one live-view viewer
    (median of web_runs runs) and visitor-guidance timing on the looping febrile sample."""
    keys = ("web_viewer_cpu_pct", "web_no_viewer_cpu_pct", "web_after_viewer_cpu_pct", "web_view_fps",
            "guidance_p50_ms", "guidance_p99_ms")
    log(f"bench: station web pages ({plan['web_runs']} runs, {plan['web_phase_s']:.0f} s per phase)")
    cmd = [sys.executable, "-m", "edge.bench.web", "--runs", str(plan["web_runs"]),
           "--phase-s", str(plan["web_phase_s"]), "--guidance-s", str(plan["guidance_s"])]
    try:
        out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                             timeout=120 + plan["web_runs"] * (4 * plan["web_phase_s"] + 30) + plan["guidance_s"])
        web = json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError) as e:
        why = (getattr(e, "stderr", None) or str(e)).strip().splitlines()[-1:] or [str(e)]
        for k in keys:
            res[k] = None
            missing[k] = f"web bench failed: {why[0][:200]}"
        return {"error": why[0][:200]}
    res["web_viewer_cpu_pct"] = web["web_viewer_cpu_pct"]
    res["web_after_viewer_cpu_pct"] = web["web_after_viewer_cpu_pct"]
    res["web_no_viewer_cpu_pct"] = web["web_no_viewer_cpu_pct"]
    res["web_view_fps"] = web["view_fps"]
    g = web.get("guidance") or {}
    res["guidance_p50_ms"], res["guidance_p99_ms"] = g.get("p50_ms"), g.get("p99_ms")
    if not g:
        missing["guidance_p50_ms"] = missing["guidance_p99_ms"] = "not run in this plan (guidance_s = 0)"
    return web


def judge_targets(res: dict) -> dict:
    out = {}
    for key, (op, target, desc) in TARGETS.items():
        v = res.get(key)
        met = None if v is None else (v >= target if op == ">=" else v <= target)
        miss = None
        if met is False and v is not None:  # how far off, as a factor (None when the value is 0)
            miss = (round(target / v, 2) if v else None) if op == ">=" else round(v / target, 2)
        out[key] = {"value": v, "target": f"{op} {target}", "met": met, "factor_off": miss, "what": desc}
    return out


def format_table(res: dict) -> str:
    """The headline figures and the per-stage times as one Markdown table."""
    t = res.get("targets", {})
    rows = [
        ("pairs_per_s_1core", "pairs/s, whole pipeline, 1 core (taskset -c 0, ORT threads 1)"),
        ("pairs_per_s_2core", "pairs/s, whole pipeline, 2 cores (ORT threads 2)"),
        ("pairs_per_s_2core_ort1", "pairs/s, whole pipeline, 2 cores, ORT threads 1"),
        ("detector_ms", "detector time per pair (pre + inference + post), 1 core, ms"),
        ("detector_inference_ms", "of which onnxruntime inference, ms"),
        ("pairs_per_s_1core_int8", "pairs/s, 1 core, with the opt-in int8 detector"),
        ("detector_ms_int8", "detector time per pair with the int8 detector, 1 core, ms"),
        ("pipeline_ms_per_pair", "pipeline wall time per pair, 1 core, ms"),
        ("pipeline_to_detector_ratio", "pipeline / detector time per pair, 1 core"),
        ("cpu_ms_per_pair_1core", "CPU time per pair, 1 core, ms (robust to other load)"),
        ("latency_p50_ms", "capture-to-alert p50, live, ms (every pair)"),
        ("latency_p99_ms", "capture-to-alert p99, live, ms (every pair)"),
        ("latency_processing_p99_ms", "of which pipeline processing, p99, ms (p50 in JSON)"),
        ("latency_wait_p99_ms", "of which waiting (pairing, queues), p99, ms"),
        ("alert_latency_p50_ms", "capture-to-alert p50 at a SUB socket, ms (alerts only)"),
        ("rss_peak_mb", "peak RSS, MiB"),
        ("rss_growth_pct", "RSS growth over the long replay, %"),
        ("camera_pairs_realtime", "camera pairs per gateway in real time (K live stations trial)"),
        ("camera_pairs_cpu_estimate", "camera pairs the CPU allows (85 % / one live station's CPU)"),
        ("web_viewer_cpu_pct", "extra CPU of one live-view viewer, % of one core (median)"),
        ("web_no_viewer_cpu_pct", "extra CPU of [web] on without a viewer, % of one core"),
        ("web_after_viewer_cpu_pct", "extra CPU after the viewer left, % of one core"),
        ("guidance_p99_ms", "person appears -> kiosk message, p99, ms (p50 in JSON)"),
    ]
    lines = ["| metric | value | target | met |", "|---|---|---|---|"]
    for key, desc in rows:
        tg = t.get(key, {})
        off = f" (x{tg['factor_off']} off)" if tg.get("factor_off") is not None else ""
        met = {True: "yes", False: f"NO{off}", None: "-"}[tg.get("met")] if tg else ""
        extra = ""
        if key == "alert_latency_p50_ms" and res.get("alerts_received") is not None:
            extra = f" (n={res['alerts_received']}, p99 {fmt_num(res.get('alert_latency_p99_ms'), missing='missing')})"
        if key == "rss_growth_pct" and res.get("rss_long_stream_min") is not None:
            extra = f" (over {res['rss_long_stream_min']} min of stream)"
        lines.append(f"| {desc} | {fmt_num(res.get(key), 3 if 'ratio' in key else 2, missing='missing')}{extra} | {tg.get('target', '')} | {met} |")
    notes = {"decode": " (work in the reader threads)", "decode_wait": " (the loop waiting for frames)",
             "other": " (loop overhead; rest of wall time)"}
    for k, v in (res.get("stage_ms") or {}).items():
        lines.append(f"| stage `{k}`{notes.get(k, '')}, mean ms per pair, 1 core | {fmt_num(v, 3, missing='missing')} | | |")
    lines.append("")
    m = res.get("machine", {})
    d = res.get("detector", {})
    lines.append(f"detector {d.get('model')} ({d.get('precision')}, input {d.get('input_wh')}, "
                 f"sha256 {str(d.get('model_sha256'))[:12]}...)")
    lines.append(f"commit {res.get('commit') or 'unknown'}, "
                 f"{res.get('time_utc')}, {m.get('cpu')} x{m.get('cores')}, load {m.get('load_avg_1_5_15')}, "
                 f"onnxruntime {m.get('onnxruntime')}, opencv {m.get('opencv')}, "
                 f"{'quick' if res.get('quick') else 'full'} run in {res.get('bench_wall_s')} s")
    for k, why in (res.get("missing") or {}).items():
        lines.append(f"missing {k}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        return _worker_main(argv[1:])
    if argv and argv[0] == "sizes":
        return _sizes_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m edge.bench.suite")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json-out", type=Path, default=JSON_DEFAULT, metavar="PATH")
    a = ap.parse_args(argv)
    return run_and_report(a.quick, a.json_out)


def run_and_report(quick: bool, json_path: Path | None, log: Callable[[str], None] | None = None) -> int:
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    res = run_bench(quick=quick, log=log)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=1) + "\n")
        log(f"bench: wrote {json_path}")
    print(format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
