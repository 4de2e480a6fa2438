"""Health: status message content, Prometheus metrics (own registry, real HTTP endpoint), and
structured, repeat-limited logs."""
from __future__ import annotations

import io
import json
import logging
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from edge.health import (
    FpsMeter,
    StationMetrics,
    blackbody_summary,
    build_status,
    station_state,
)
from edge.io.capture import CameraStats
from edge.io.pairing import PairingStats
from edge.logs import JsonFormatter, RepeatFilter, setup_logging
from edge.thermal.blackbody import BlackbodyStatus
from edge.types import Detections
from tests.support import free_port


def cams(**states: str) -> dict:
    out = {}
    for cam, state in states.items():
        s = CameraStats(state=state, frames=100, dropped=3, corrupt=1, reconnects=2, fps=8.7)
        out[cam] = s.snapshot()
    return out


@pytest.mark.parametrize("states, expected", [
    ({"rgb": "online", "thermal": "online"}, "ok"),
    ({"rgb": "online", "thermal": "offline"}, "degraded"),
    ({"rgb": "starting", "thermal": "online"}, "degraded"),
    ({"rgb": "starting", "thermal": "starting"}, "starting"),
    ({"rgb": "ended", "thermal": "ended"}, "ended"),
    ({"rgb": "ended", "thermal": "offline"}, "degraded"),
])
def test_station_state(states, expected):
    assert station_state(cams(**states)) == expected


def test_status_message_carries_the_figures():
    m = StationMetrics("gate-1", CollectorRegistry())
    dets = Detections.empty()
    for ms in (10.0, 20.0, 30.0):
        m.observe_pair({"detect": ms, "measure": 1.0, "publish": 0.2}, dets,
                       BlackbodyStatus("ok", 35.02, -0.03))
    st = build_status("gate-1", cams(rgb="online", thermal="offline"), m,
                      PairingStats(pairs=3, unpaired_thermal=1), version="1.2.3")
    assert st["state"] == "degraded" and st["version"] == "1.2.3" and st["station_id"] == "gate-1"
    assert st["cameras"]["thermal"] == {"state": "offline", "fps": 8.7, "frames": 100, "dropped": 3, "corrupt": 1,
                                        "reconnects": 2, "ts_jumps": 0, "last_error": "", "sensor_temp_c": None,
                                        "ffc_state": None}
    assert st["detector_latency_ms"]["p50"] == 20.0 and st["detector_latency_ms"]["n"] == 3
    assert st["blackbody"] == {"state": "ok", "reason": "", "measured_c": 35.02, "offset_c": -0.03}
    assert st["pairing"]["unpaired_thermal"] == 1
    assert st["uptime_s"] >= 0
    json.dumps(st)  # JSON-safe as published


def test_blackbody_summary_turns_nan_into_null():
    assert blackbody_summary(BlackbodyStatus("missing", float("nan"), 0.0, "no patch")) == {
        "state": "missing", "reason": "no patch", "measured_c": None, "offset_c": 0.0}


def test_fps_from_counter_deltas():
    f = FpsMeter()
    assert f.update("rgb", 0, 10.0) == 0.0
    assert f.update("rgb", 60, 12.0) == 30.0


def test_fps_has_a_rate_at_the_first_tick_after_start():
    f = FpsMeter()
    f.start(["rgb", "thermal"], 5.0)
    assert f.update("rgb", 30, 6.0) == 30.0 and f.update("thermal", 9, 6.0) == 9.0


def test_metrics_in_own_registries_do_not_collide():
    a, b = StationMetrics("a", CollectorRegistry()), StationMetrics("b", CollectorRegistry())
    a.observe_pair({"detect": 12.0})
    assert a.registry.get_sample_value("thermal_edge_pairs_total") == 1.0
    assert b.registry.get_sample_value("thermal_edge_pairs_total") == 0.0



def test_prometheus_endpoint_serves_camera_counters_and_stage_histograms():
    stats = {"rgb": CameraStats(state="online", frames=300, dropped=4),
             "thermal": CameraStats(state="offline", frames=87, corrupt=2, reconnects=1, ts_jumps=1)}
    m = StationMetrics("gate-1", CollectorRegistry(), camera_stats=lambda: {c: s.snapshot() for c, s in stats.items()},
                       pairing_stats=lambda: PairingStats(pairs=40, unpaired_thermal=3))
    for stage, ms in (("detect", 40.0), ("measure", 2.0), ("publish", 0.3)):
        m.observe_pair({stage: ms})
    m.observe_capture_age(0.05)
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry=m.registry)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'thermal_edge_camera_frames_total{camera="rgb"} 300.0' in text
    assert 'thermal_edge_camera_dropped_frames_total{camera="rgb"} 4.0' in text
    assert 'thermal_edge_camera_corrupt_frames_total{camera="thermal"} 2.0' in text
    assert 'thermal_edge_camera_reconnects_total{camera="thermal"} 1.0' in text
    assert 'thermal_edge_camera_online{camera="thermal"} 0.0' in text
    assert "\nthermal_edge_station_degraded 1.0" in text  # read at scrape time, no status message built
    assert "\nthermal_edge_unpaired_thermal_frames 3.0" in text
    for stage in ("capture", "detect", "measure", "publish"):
        assert f'thermal_edge_stage_latency_seconds_count{{stage="{stage}"}} 1.0' in text
    assert 'thermal_edge_stage_latency_seconds_bucket{le="0.05",stage="detect"} 1.0' in text


def test_json_log_lines_carry_extras():
    rec = logging.LogRecord("edge.io.capture", logging.WARNING, __file__, 1, "camera %s offline", ("thermal",), None)
    rec.camera, rec.outage_s = "thermal", 1.25
    line = JsonFormatter().format(rec)
    d = json.loads(line)
    assert "\n" not in line
    assert (d["level"], d["logger"], d["msg"], d["camera"], d["outage_s"]) == (
        "warning", "edge.io.capture", "camera thermal offline", "thermal", 1.25)
    assert d["t"].endswith("Z")


def test_repeats_are_limited_and_counted():
    now = [0.0]
    f = RepeatFilter(window_s=60, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("edge.io.capture", logging.WARNING, __file__, 1, msg, None, None)

    passed = []
    for t in range(0, 50, 5):  # every 5 s for 50 s: one line
        now[0] = t
        passed.append(f.filter(rec("camera thermal: corrupt frame")))
    assert passed == [True] + [False] * 9
    assert f.filter(rec("camera rgb: corrupt frame"))  # other text: not a repeat
    now[0] = 61.0
    r = rec("camera thermal: corrupt frame")
    assert f.filter(r) and r.repeated == 9


def test_setup_logging_writes_json_lines():
    buf = io.StringIO()
    handler = setup_logging("json", "info", 60, stream=buf)
    try:
        for _ in range(5):
            logging.getLogger("edge.test").warning("same thing", extra={"camera": "rgb"})
        logging.getLogger("edge.test").debug("hidden")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["camera"] == "rgb"


def test_detector_latency_empty():
    m = StationMetrics("g", CollectorRegistry())
    assert m.detector_latency_ms() == {"p50": None, "p95": None, "n": 0}
    assert m.paired_fps() == 0.0  # fewer than two pairs: no rate yet
    m.observe_pair({"detect": 5.0})
    assert m.paired_fps() == 0.0
    m.observe_pair({"detect": 6.0})
    assert m.paired_fps() > 0.0 and m.detector_latency_ms()["n"] == 2


def test_unpaired_frames_by_reason_in_status_and_metrics():
    """The same PairingStats feed the status message and the metrics: every unpaired frame with its reason."""
    import numpy as np

    from edge.io.pairing import Pairer
    from edge.types import Frame

    pairer = Pairer()
    ms = 1_000_000
    for i, t in enumerate(range(0, 2000, 33)):
        pairer.push(Frame("rgb", i, t * ms, np.zeros((1, 1), np.uint8)))
    for i, t in enumerate([100, 200, 300, 150, 160, 300, 400, 2500]):  # 150, 160 back; 300 again; 2500 alone
        pairer.push(Frame("thermal", i, t * ms, np.zeros((1, 1), np.uint16)))
    pairer.flush()
    m = StationMetrics("gate-1", CollectorRegistry(), pairing_stats=lambda: pairer.stats)
    st = build_status("gate-1", cams(rgb="online", thermal="online"), m, pairer.stats, version="1")
    assert st["pairing"]["unpaired"]["thermal"] == {"out_of_order": 2, "duplicate_time": 1, "no_partner": 1}
    assert st["pairing"]["out_of_order"] == 2 and st["pairing"]["duplicate_time"] == 1
    for reason, n in (("out_of_order", 2.0), ("duplicate_time", 1.0), ("no_partner", 1.0)):
        assert m.registry.get_sample_value("thermal_edge_unpaired_frames_total",
                                           {"camera": "thermal", "reason": reason}) == n
    json.dumps(st)
