"""Smoke test of the benchmark harness (edge/bench/suite.py, edge/bench/) on a tiny simulated
stream. Timing values are never asserted (speed is measured by `make bench`); the JSON keys,
the structure and the pure judging functions are."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge.bench.gateway import judge, search
from edge.bench.replay import rss_growth
from edge.bench.suite import TARGETS, format_table, judge_targets, run_bench

TINY_SCENARIO = """
name = "tiny_bench"
description = "one person walks up, 2 s"
seed = 3
duration_s = 2.0
[[person]]
id = 1
core_c = 38.8
waypoints = [[0.0, 0.0, 0.0, 0.7], [2.0, 0.02, 0.0, 0.6]]
"""

HEADLINE = ("pairs_per_s_1core", "pairs_per_s_2core", "detector_ms", "pipeline_ms_per_pair",
            "pipeline_to_detector_ratio", "latency_p50_ms", "latency_p99_ms", "rss_peak_mb", "rss_growth_pct",
            "camera_pairs_realtime", "web_viewer_cpu_pct")
STAGES = ("decode", "pairing", "preprocess", "inference", "postprocess", "registration", "measurement",
          "tracking", "decision", "publish")


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    scen = d / "tiny_bench.toml"
    scen.write_text(TINY_SCENARIO)
    plan = {"runs": 1, "loops": 1.0, "live_s": 3.0, "long_loops": 3.0, "long_max_wall_s": 30.0,
            "gateway_s": 2.0, "gateway_trials": 1, "gateway_k_max": 1}
    logs: list[str] = []
    res = run_bench(quick=True, log=logs.append, scenario=scen, stream_dir=d / "stream", plan=plan)
    return res, logs, d


@pytest.mark.slow
def test_bench_json_has_every_headline_key_and_stage(bench_result):
    res, logs, _ = bench_result
    assert not any(r.get("error") for r in res["runs"]["replay_1core"]), res["runs"]["replay_1core"]
    for key in HEADLINE:
        assert key in res
        # a figure is either measured (a finite number) or listed as missing with a reason
        assert (res[key] is not None and math.isfinite(res[key])) or key in res["missing"], (key, res["missing"])
    for key in ("pairs_per_s_1core", "pairs_per_s_2core", "detector_ms", "pipeline_ms_per_pair",
                "pipeline_to_detector_ratio", "rss_peak_mb"):
        assert res[key] is not None and res[key] > 0, key
    assert set(STAGES) <= set(res["stage_ms"])
    assert all(v is not None for k, v in res["stage_ms"].items() if k in STAGES)
    assert set(res["targets"]) == set(TARGETS)
    json.dumps(res)  # JSON-ready throughout
    assert any("rendering" in line for line in logs)  # rendered from the scenario, not committed


@pytest.mark.slow
def test_bench_runs_count_what_they_processed(bench_result):
    res, _, _ = bench_result
    one = res["runs"]["replay_1core"][0]
    # the 2 s stream: ~17 thermal frames, every one paired (RGB at 30 fps is within 20 ms)
    assert one["frames"]["thermal"] == res["stream"]["thermal_frames"]
    assert one["frames"]["rgb"] == res["stream"]["rgb_frames"]
    assert 0 < one["pairs"] <= one["frames"]["thermal"]
    assert one["threads"] == 1 and one["faces_per_pair"] > 0.5  # the person is found
    long = res["runs"]["long"]
    assert long["pairs"] >= 2 * one["pairs"]  # the long replay loops the stream
    live = res["runs"]["live"]
    assert live["pairs"] > 0 and live["pair_latency_ms"]["n"] > 0
    gw = res["runs"]["gateway"]
    assert [t["k"] for t in gw["trials"]] == [1]
    assert res["camera_pairs_realtime"] in (0, 1)


@pytest.mark.slow
def test_rendered_once_then_reused(bench_result, tmp_path):
    from edge.bench.stream import ensure_stream

    _, _, d = bench_result
    logs: list[str] = []
    out = ensure_stream(d / "tiny_bench.toml", d / "stream", log=logs.append)
    assert out == d / "stream" and logs == []  # stamp matches: no second render


def test_table_names_missing_figures():
    res = {"pairs_per_s_1core": 12.5, "latency_p99_ms": None, "missing": {"latency_p99_ms": "live run failed: x"},
           "stage_ms": {"decode": 1.0}, "machine": {}}
    res["targets"] = judge_targets(res)
    text = format_table(res)
    assert "missing latency_p99_ms: live run failed: x" in text
    assert res["targets"]["pairs_per_s_1core"]["met"] is False
    assert res["targets"]["pairs_per_s_1core"]["factor_off"] == pytest.approx(4.8)
    assert res["targets"]["latency_p99_ms"]["met"] is None


def _station(pairs=87, expected=88.0, dropped=0, p99=40.0, cpu_s=3.0, rgb_dropped=0, dropped_warmup=0):
    return {"pairs": pairs, "expected_pairs": expected, "rgb_dropped": rgb_dropped, "thermal_dropped": dropped,
            "thermal_dropped_warmup": dropped_warmup,
            "frames": {"rgb": 300, "thermal": 88}, "pair_latency_ms": {"p99": p99}, "cpu_s": cpu_s}


@pytest.mark.parametrize("stations, sustained, why", [
    ([_station(), _station()], True, ""),
    ([_station(), _station(dropped=30)], False, "dropped"),
    ([_station(dropped=2, dropped_warmup=2)], True, ""),  # drops while warming up are not a backlog
    ([_station(dropped=3, dropped_warmup=2)], False, "1 of 91 thermal frames dropped after warm-up"),
    ([_station(rgb_dropped=30)], True, ""),  # RGB drops alone are not a backlog
    ([_station(pairs=60)], False, "expected"),
    ([_station(p99=900.0)], False, "p99"),
    ([_station(cpu_s=9.0), _station(cpu_s=9.0)], False, "CPU"),
    ([{"error": "exit 1: boom"}], False, "boom"),
])
def test_gateway_judge(stations, sustained, why):
    t = judge(stations, wall_s=10.0, cores=2)
    assert t["sustained"] is sustained
    assert why in " ".join(t["why_not"])


def test_gateway_search_finds_the_edge():
    calls = []

    def trial(k):
        calls.append(k)
        return [_station(cpu_s=2.0) for _ in range(k)], 10.0  # 10 % of 2 cores per station

    res = search(trial, start_k=3, cores=2, max_trials=10, log=lambda s: None)
    assert res["camera_pairs_realtime"] == 8  # 9 stations use 90 % > 85 %
    assert calls == [3, 4, 5, 6, 7, 8, 9]


def test_gateway_search_steps_down_after_a_bad_first_guess():
    calls = []

    def trial(k):
        calls.append(k)
        return [_station(dropped=0 if k <= 2 else 50) for _ in range(k)], 10.0

    res = search(trial, start_k=9, cores=2, max_trials=10, log=lambda s: None)
    assert res["camera_pairs_realtime"] == 2 and not res["bounded_by_trials"]
    assert calls == [9, 8, 7, 6, 5, 4, 3, 2]
    res = search(lambda k: ([_station(dropped=50)] * k, 10.0), start_k=4, cores=2, max_trials=5, log=lambda s: None)
    assert res["camera_pairs_realtime"] == 0  # not even one pair
    res = search(trial, start_k=9, cores=2, max_trials=1, log=lambda s: None)
    assert res["camera_pairs_realtime"] is None  # one failed trial decides nothing
    calls.clear()
    res = search(trial, start_k=3, cores=2, max_trials=3, log=lambda s: None)
    assert calls == [3, 2] and res["camera_pairs_realtime"] == 2  # estimate one too high


def test_rss_growth_flat_and_growing():
    t = np.arange(100.0)
    assert rss_growth(t, np.full(100, 200.0))["growth_pct"] == 0.0
    g = rss_growth(t, 200.0 + t * 0.5)
    assert g["growth_pct"] > 15 and g["slope_mb_per_min"] == pytest.approx(30.0)
    assert rss_growth(t[:5], np.full(5, 1.0))["growth_pct"] is None
