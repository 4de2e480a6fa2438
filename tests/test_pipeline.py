"""End to end: the bundled sample stream through the real pipeline (real ONNX detector, real
recording files) into a real ZeroMQ SUB socket on a random loopback port, scored against the
stream's ground truth."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import zmq

from edge.feed.publishing import Publisher
from edge.io.recording import open_recording
from edge.paths import REPO_ROOT as REPO
from edge.replay import replay
from edge.vision.boxes import iou_matrix
from tests.support import Subscriber

SAMPLE = REPO / "sample_streams" / "walkthrough"


def _iou(a, b) -> float:
    return float(iou_matrix(a, b)[0, 0])


def _truth_person(truth: dict, t_ns: int, box) -> dict | None:
    """The truth person whose RGB box (nearest frame in time) overlaps ``box`` best."""
    frame = min(truth["frames"]["rgb"], key=lambda f: abs(f["t_ns"] - t_ns))
    best = max(frame["faces"], key=lambda f: _iou(f["box_xyxy"], box), default=None)
    if best is None or _iou(best["box_xyxy"], box) < 0.3:
        return None
    return next(p for p in truth["persons"] if p["id"] == best["id"])


@pytest.fixture(scope="module")
def sample_run():
    """Replay the sample with a real PUB -> SUB pair; return (result, received bodies, truth)."""
    if not (SAMPLE / "stream.json").is_file():
        pytest.fail(f"{SAMPLE} is not rendered; `make test` renders it (python -m edge.sim.render_all)")
    rec = open_recording(SAMPLE)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = Subscriber(ctx, f"tcp://127.0.0.1:{port}", b"alert.", b"screening.")
    assert pub.poll(5000, zmq.POLLIN), "subscription never reached the publisher"
    while pub.poll(200, zmq.POLLIN):
        pub.recv()
    try:
        with sub.collecting():
            result = replay(SAMPLE, publisher=Publisher(pub, rec.meta.station_id, None))
    finally:
        sub.close()
        pub.close(linger=0)
        ctx.term()
    received = [(f[0], json.loads(f[1])) for f in sub.frames]
    return result, received, rec.truth()


@pytest.mark.slow
def test_every_published_message_reaches_the_subscriber(sample_run):
    result, received, _ = sample_run
    assert len(result.published) > 0
    assert [b["msg_id"] for _, b in received] == [b["msg_id"] for b in result.published]


@pytest.mark.slow
def test_febrile_person_gives_exactly_one_alert_within_0_3_c(sample_run):
    result, received, truth = sample_run
    febrile = [p for p in truth["persons"] if p["febrile"]]
    assert len(febrile) == 1
    new_alerts = [b for t, b in received if t.startswith(b"alert.") and b["type"] == "new"]
    assert len(new_alerts) == 1, [b["track_id"] for b in new_alerts]
    alert = new_alerts[0]
    person = _truth_person(truth, alert["t_ns"], alert["box_xyxy_rgb"])
    assert person is not None and person["id"] == febrile[0]["id"]
    # The camera measures skin: compare with the true canthus temperature.
    assert abs(alert["skin_temp_c"] - person["canthus_c"]) <= 0.3
    assert alert["verdict"]["status"] == "elevated"
    assert alert["core_temp_c"] >= alert["threshold_c"]
    # the alert's lifecycle ends with the person leaving: one 'end' for the same event id
    ends = [b for t, b in received if t.startswith(b"alert.") and b["type"] == "end"]
    assert [b["event_id"] for b in ends] == [alert["event_id"]]


@pytest.mark.slow
def test_non_febrile_person_gives_no_alert_and_a_screening_result(sample_run):
    result, received, truth = sample_run
    alerts = [b for t, b in received if t.startswith(b"alert.")]
    other = [p for p in truth["persons"] if not p["febrile"]]
    for b in alerts:
        person = _truth_person(truth, b["t_ns"], b["box_xyxy_rgb"])
        assert person is None or person["febrile"], f"alert for non-febrile person {person}"
    screenings = [b for t, b in received if t.startswith(b"screening.")]
    statuses = {_truth_person(truth, b["t_ns"], b["box_xyxy_rgb"])["id"]: b["verdict"]["status"]
                for b in screenings if _truth_person(truth, b["t_ns"], b["box_xyxy_rgb"])}
    for p in other:
        assert statuses.get(p["id"]) in ("normal", "indeterminate"), statuses


@pytest.mark.slow
def test_masked_face_is_detected(sample_run):
    result, _, truth = sample_run
    masked_ids = {p["id"] for p in truth["persons"] if p["mask"] != "none"}
    assert masked_ids
    hits = total = 0
    for rec in result.frames:
        tf = truth["frames"]["rgb"][rec.rgb_index]
        for face in tf["faces"]:
            if face["id"] in masked_ids and face["in_view"] and face["box_xyxy"][3] - face["box_xyxy"][1] >= 32:
                total += 1
                hits += any(_iou(face["box_xyxy"], b) >= 0.5 for b in rec.detections.box_xyxy)
    assert total > 0
    assert hits / total >= 0.8, f"masked face found in {hits}/{total} frames"


@pytest.mark.slow
def test_verdicts_are_backed_by_measurements(sample_run):
    _, received, _ = sample_run
    results = [b for t, b in received if b["type"] == "end"]
    assert results
    for b in results:
        v = b["verdict"]
        if v["status"] == "indeterminate":
            assert v["reason"], b
        else:  # normal and elevated name the rule and the measurement it used
            assert v["method"] in ("absolute", "relative") and b["core_temp_c"] is not None, b
            assert (b["core_temp_c"] >= b["threshold_c"]) == (v["status"] == "elevated") or v["method"] == "relative"


@pytest.mark.parametrize("make_bad, match", [
    (lambda p: p / "missing", "recording folder not found"),
    (lambda p: (p / "stream.json").write_text("{not json") and p, r"stream\.json: invalid JSON"),
])
def test_cli_bad_input_is_one_line_error_without_traceback(tmp_path, make_bad, match):
    import re
    import shutil

    stream = tmp_path / "s"
    shutil.copytree(SAMPLE, stream)
    target = make_bad(stream)
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "demo", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert re.search(match, lines[0])
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_short_thermal_video_is_reported_as_lost(tmp_path):
    """A video shorter than timestamps.csv replays what is there and says what is missing, one
    line naming the file; --strict makes that exit 1 (issue 14 item 6: no capture lost whole)."""
    import shutil

    stream = tmp_path / "s"
    shutil.copytree(SAMPLE, stream)
    ts = stream / "timestamps.csv"
    last_t = max(int(r.split(",")[2]) for r in ts.read_text().splitlines()[1:])
    n_thermal = sum(1 for r in ts.read_text().splitlines() if r.startswith("thermal,"))
    ts.write_text(ts.read_text() + f"thermal,{n_thermal},{last_t + 1},none\n")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "demo", str(stream), "--strict"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "summary: subjects seen 2" in proc.stdout  # every readable frame was processed
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "thermal: 1 of 70 frames lost" in err[0] and "thermal.mkv: ends after" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_built_pipeline_leaves_no_set_up_objects_for_the_collector():
    """build_pipeline freezes what set-up left alive: a later full collection has little to scan
    (tens of thousands of onnx/pydantic/zmq objects otherwise, ~50 ms per pass)."""
    import gc

    from edge.pipeline import build_pipeline, default_config

    build_pipeline(default_config("sample-gate-1"))
    assert gc.get_freeze_count() > 10_000
    assert len(gc.get_objects()) < 5_000


def test_gc_freeze_does_not_outlive_its_test():
    """The test above (and every replay) froze the heap; tests/conftest.py undoes it after each
    test, so this one -- and the rest of the session -- starts with nothing frozen."""
    import gc

    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_observer_sees_each_pair_its_stage_times_and_every_published_body():
    """The Pipeline's observer hook (what the bench uses instead of wrapping methods): per pair
    pair_started, event_published for each body it sent, pair_done with every stage's time."""
    from edge.pipeline import STAGES, PipelineObserver

    class Watch(PipelineObserver):
        def __init__(self):
            self.calls: list[tuple[str, object]] = []

        def pair_started(self, pair):
            self.calls.append(("start", pair.t_ns))

        def event_published(self, event, body):
            self.calls.append(("body", body))

        def pair_done(self, result):
            self.calls.append(("done", (result.pair.t_ns, dict(result.timing_ms))))

    rec = open_recording(SAMPLE)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)  # nobody listens: the bodies are what was handed to the socket
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("inproc://observer-test")
    watch = Watch()
    try:
        result = replay(SAMPLE, publisher=Publisher(pub, rec.meta.station_id, None, include_images=False),
                        observers=[watch])
    finally:
        pub.close(linger=0)
        ctx.term()
    started = [v for k, v in watch.calls if k == "start"]
    done = [v for k, v in watch.calls if k == "done"]
    assert started == [f.t_ns for f in result.frames] == [t for t, _ in done]
    assert all(set(timing) == set(STAGES) and min(timing.values()) >= 0 for _, timing in done)
    assert [v for k, v in watch.calls if k == "body"] == result.published and result.published
    # every body of a pair comes between that pair's start and done (finish()'s come last)
    open_pair = None
    for k, v in watch.calls:
        if k == "start":
            assert open_pair is None
            open_pair = v
        elif k == "done":
            assert v[0] == open_pair
            open_pair = None
