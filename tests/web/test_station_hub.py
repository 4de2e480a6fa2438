"""The live view's hub and drawing on real pipeline results (real ONNX detector, a real sample
recording): nothing is kept or drawn without a viewer, the station never waits (slot of one,
latest wins), frames are JPEGs of the documented layout, and a station publishes guidance on a
real feed."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from edge.config import validate_data
from edge.feed.messages import decode
from edge.paths import REPO_ROOT
from edge.replay import replay
from edge.station import Station
from edge.thermal.calibration import load_calibration
from edge.types import Verdict
from edge.web.station.hub import StationHub, person_labels
from edge.web.station.render import HEADER_PX, colour_bar, thermal_to_rgb_matrix
from tests.support import free_port, sample_stream

CALIBRATION = REPO_ROOT / "calibration" / "sample-gate-1.toml"


@pytest.fixture(scope="module")
def results():
    """PairResults of the glasses sample (a face in most of them)."""
    got = []
    replay(sample_stream("glasses"), on_pair=got.append)
    return got


def _info():
    return {"station": "t", "pairs_per_s": 8.7, "cameras": {"rgb": ("online", 30.0), "thermal": ("online", 8.7)}}


def _hub():
    return StationHub(load_calibration(CALIBRATION).registration, max_fps=10).start()


@pytest.mark.slow
def test_nothing_is_kept_or_drawn_without_a_viewer(results):
    hub = _hub()
    try:
        calls = []
        for res in results[:20]:
            hub.offer(res.pair, res, lambda tid: calls.append(tid), lambda: calls.append("info") or _info())
        assert calls == [] and hub._slot is None and hub.rendered == {"live": 0, "align": 0}
    finally:
        hub.close()


def test_viewer_gets_jpeg_frames_and_rendering_stops_when_it_leaves(results):
    hub = _hub()
    try:
        res = max(results, key=lambda r: len(r.detections))
        with hub.viewer("live"):
            hub.offer(res.pair, res, lambda tid: None, _info)
            f = hub.next_frame("live", 0, 10.0)
            assert f is not None and f.jpeg[:2] == b"\xff\xd8"
            img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
            rgb_h, rgb_w = res.pair.rgb.image.shape[:2]
            assert img.shape[0] > rgb_h + HEADER_PX and img.shape[1] >= 2 * rgb_w  # RGB + thermal + bar
        assert hub.viewers() == {"live": 0, "align": 0}
        n = hub.rendered["live"]
        hub.offer(res.pair, res, lambda tid: None, _info)
        time.sleep(0.3)
        assert hub.rendered["live"] == n and hub._slot is None
    finally:
        hub.close()


def test_offer_never_waits_latest_wins(results):
    """The render thread is held up; the station's offers still return at once and replace the
    slot (view frames dropped), and the frame drawn next is the latest pair."""
    hub = _hub()
    try:
        with hub.viewer("live"):
            gate = threading.Event()
            real_render = hub._render

            def slow_render(view):
                gate.wait(5)
                real_render(view)

            hub._render = slow_render
            hub.offer(results[0].pair, results[0], lambda tid: None, _info)
            time.sleep(0.2)  # the render thread took it and is stuck in slow_render
            t0 = time.perf_counter()
            for res in results[1:30]:
                hub.offer(res.pair, res, lambda tid: None, _info)
            assert time.perf_counter() - t0 < 0.5
            assert hub.dropped >= 27
            gate.set()
            last = results[29].pair.t_ns
            f = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (f is None or f.t_ns != last):
                f = hub.next_frame("live", 0 if f is None else f.seq, 1.0) or f
            assert f is not None and f.t_ns == last
    finally:
        hub.close()


def test_person_labels_from_gate_and_live_verdict(results):
    res = next(r for r in results if len(r.detections) and (r.detections.data["track_id"] >= 0).any())
    tid = int(res.detections.data["track_id"][0])
    gate = str(res.detections.data["gate"][0])
    labels = person_labels(res.detections, lambda t: None)
    assert labels[tid].state == ("gated" if gate else "measuring") and labels[tid].reason == gate
    v = Verdict("indeterminate", "borderline", core_temp_c=37.4)
    labels = person_labels(res.detections, lambda t: v)
    assert (labels[tid].state, labels[tid].reason, labels[tid].core_c) == ("indeterminate", "borderline", None)
    labels = person_labels(res.detections, lambda t: Verdict("elevated", core_temp_c=38.4))
    assert (labels[tid].state, labels[tid].core_c) == ("elevated", 38.4)


def test_alignment_matrix_inverts_the_registration():
    reg = load_calibration(CALIBRATION).registration
    rgb = np.array([[200.0, 150.0], [420.0, 300.0]])
    for d in (0.5, 1.5, 3.0):
        iod = reg.rgb_focal_px * reg.iod_m / d  # the face distance the parallax is computed for
        th = reg.map_points(rgb, np.full(2, iod))
        back = cv2.perspectiveTransform(th.reshape(-1, 1, 2).astype(np.float64), thermal_to_rgb_matrix(reg, d))
        assert np.allclose(back.reshape(-1, 2), rgb, atol=1e-3)


def test_colour_bar_is_hot_at_the_top():
    bar = colour_bar(480)
    top, bottom = bar[20, 15].astype(int), bar[440, 15].astype(int)
    assert top.sum() > bottom.sum() + 200  # inferno: pale yellow at 40 degC, near black at 25


@pytest.mark.slow
def test_station_publishes_guidance_on_the_feed(tmp_path):
    """A replayed glasses scenario through a real Station and feed: guidance messages arrive on
    a SUB socket, follow the schema, and tell the person to remove their glasses."""
    from edge.feed.publishing import open_feed

    stream = sample_stream("glasses")
    cam = {"kind": "recording", "path": str(stream)}
    cfg = validate_data({
        "station": {"id": "gate-g"}, "calibration": {"path": str(CALIBRATION)},
        "sources": {"mode": "replay", "rgb": cam, "thermal": cam},
        "health": {"metrics_port": 0},
        "feed": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "catchup_endpoint": None, "journal_path": None},
        "guidance": {"publish": True},
    })
    ctx = zmq.Context()
    feed = open_feed(ctx, cfg.feed, "gate-g")
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"guidance.")
    sub.connect(feed.endpoint)
    got = []
    try:
        time.sleep(0.5)  # the subscription is through before the replay starts
        Station(cfg, publisher=feed.publisher).run(max_seconds=60)
        while sub.poll(500):
            got.append(decode(sub.recv_multipart()))
    finally:
        sub.close(0)
        feed.close()
        ctx.term()
    keys = [m.body["message_key"] for m in got]
    assert "glasses" in keys and "proceed" not in keys, keys
    assert all(m.body["text"] and m.body["language"] == "en" for m in got)
    # on change, not per pair: far fewer messages than the ~50 pairs
    assert len(got) < 25


def test_bind_beyond_loopback_without_tls_is_refused(tmp_path):
    from edge.errors import UserError
    from edge.web.station.app import start_station_web

    cfg = validate_data({
        "station": {"id": "gate-w"}, "calibration": {"path": str(CALIBRATION)},
        "web": {"enabled": True, "host": "0.0.0.0", "port": free_port(), "users_file": str(tmp_path / "u.txt"),
                "session_secret_file": str(tmp_path / "s")},
    })
    with pytest.raises(UserError, match="not loopback and no TLS"):
        start_station_web(cfg)


@pytest.mark.parametrize("show", [False, True])
def test_kiosk_temperature_only_when_enabled(tmp_path, show):
    import re

    from starlette.testclient import TestClient

    from edge.guidance import Guidance
    from edge.web.auth import Users
    from edge.web.station.app import build_station_app
    from edge.web.station.config import StationWebConfig

    cfg = StationWebConfig(enabled=True, users_file=str(tmp_path / "u.txt"), session_secret_file=str(tmp_path / "s"),
                           kiosk_show_temperature=show)
    Users(cfg.users_file).set("kiosk", "viewer", "kiosk screen 1")
    hub = _hub()
    try:
        hub.set_guidance(Guidance("proceed", "Thank you, please proceed", "en", 4, "normal", 1, 10, 5), temp_c=36.84)
        client = TestClient(build_station_app(cfg, hub, "gate-w", "Screening paused"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"username": "kiosk", "password": "kiosk screen 1", "csrf_token": token})
        r = client.get("/guidance")
        assert r.headers["cache-control"].startswith("no-store")
        body = r.json()
        assert body["message_key"] == "proceed" and body["track_id"] == 4
        assert ("temp_c" in body) is show and (not show or body["temp_c"] == 36.8)
        assert 'data-paused="Screening paused"' in client.get("/kiosk").text
    finally:
        hub.close()


def test_no_pairs_frame_instead_of_a_frozen_picture(results, tmp_path):
    hub = _hub()
    try:
        hub.offer_no_pairs(3.0, _info)  # no viewer: nothing
        assert hub._slot is None
        res = max(results, key=lambda r: len(r.detections))
        with hub.viewer("live"):
            hub.offer(res.pair, res, lambda tid: None, _info)
            live = hub.next_frame("live", 0, 10.0)
            hub.offer_no_pairs(3.0, _info)
            f = hub.next_frame("live", live.seq, 10.0)
            assert f is not None
            img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
            first = cv2.imdecode(np.frombuffer(live.jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == first.shape  # same size: the page does not jump
            cv2.imwrite(str(tmp_path / "no_pairs.png"), img)
            # mostly flat grey: not the camera picture
            assert float(np.mean(np.abs(img.astype(int) - 40) < 8)) > 0.8
    finally:
        hub.close()
