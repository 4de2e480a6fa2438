"""The station runner: survives injected camera faults while the rest keeps running, reports
health, replays deterministically through the real pipeline, and shuts down cleanly on SIGTERM
with a real feed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq
from prometheus_client import CollectorRegistry

from edge.config import validate_data
from edge.paths import REPO_ROOT as REPO
from edge.station import Station
from tests.support import Subscriber, free_port
from tests.synth_streams import make_recording

SAMPLE = REPO / "sample_streams" / "walkthrough"
CALIBRATION = REPO / "calibration" / "sample-gate-1.toml"



class PairLog:
    """Stands in for the pipeline where only the capture side is under test."""

    def __init__(self) -> None:
        self.pairs: list = []
        self.finished = False

    def process_pair(self, pair):
        self.pairs.append(pair)
        return SimpleNamespace(events=[], detections=None, blackbody=None)

    def finish(self):
        self.finished = True
        return []


def station_cfg(tmp_path: Path, rec: Path, thermal_faults: list[str], mode: str = "live",
                rgb_faults: tuple[str, ...] = (), **health):
    cal = tmp_path / "cal.toml"
    cal.write_text('station_id = "test-gate"\ndate = 2026-11-26\n')
    cam = {"kind": "recording", "path": str(rec), "loop": mode == "live"}
    return validate_data({
        "station": {"id": "test-gate"}, "calibration": {"path": str(cal)},
        "sources": {"mode": mode, "rgb": {**cam, "faults": list(rgb_faults)}, "thermal": {**cam, "faults": thermal_faults},
                    "watchdog_timeout_s": 0.6, "watchdog_period_s": 0.1, "reconnect_initial_s": 0.1,
                    "reconnect_max_s": 1.0},
        "pairing": {"tolerance_ms": 20},
        "health": {"status_interval_s": 0.5, "metrics_port": 0, **health},
    })


@pytest.mark.slow
def test_station_survives_faults_and_reports_degraded(tmp_path):
    rec = make_recording(tmp_path / "rec", seconds=3.0)
    port = free_port()
    cfg = station_cfg(tmp_path, rec, ["corrupt@2", "stall@5:1.5", "disconnect@12:1.0", "ts_jump@20:1"],
                      rgb_faults=("corrupt@7",), metrics_port=port)
    pipe = PairLog()
    st = Station(cfg, pipeline=pipe, registry=CollectorRegistry())
    scraped: list[str] = []

    def on_pair(pair, res):
        if not scraped and st.workers["thermal"].stats.reconnects:
            scraped.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())

    st.on_pair = on_pair
    result = st.run(max_seconds=6.0)
    th, rgb = st.workers["thermal"].stats, st.workers["rgb"].stats
    assert th.corrupt == 1 and th.reconnects == 2 and th.ts_jumps == 1
    assert rgb.reconnects == 0 and rgb.corrupt == 1  # an MJPEG frame cut short
    states = [s["state"] for s in result.statuses]
    assert "degraded" in states and states[-1] == "stopped"
    assert result.statuses[-1]["cameras"]["thermal"]["reconnects"] == 2
    assert pipe.finished and result.stop_reason == "ran 6.0 s"
    # screening went on after the faults: pairs from after the last outage
    t_last_out = max(f.t_ns for f in (p.thermal for p in pipe.pairs) if f.index <= 12)
    assert any(p.t_ns > t_last_out + 1e9 for p in pipe.pairs)
    t = [p.t_ns for p in pipe.pairs]
    assert t == sorted(t)  # one clock, forward
    assert scraped and 'thermal_edge_camera_reconnects_total{camera="thermal"}' in scraped[0]


def test_replay_mode_processes_every_frame_in_order(tmp_path):
    rec = make_recording(tmp_path / "rec", seconds=2.0)
    pipe = PairLog()
    result = Station(station_cfg(tmp_path, rec, [], mode="replay"), pipeline=pipe).run()
    assert result.stop_reason == "end of streams"
    assert [p.thermal.index for p in pipe.pairs] == list(range(18))  # every thermal frame paired
    assert result.statuses[-1]["cameras"]["rgb"]["dropped"] == 0


def test_rgb_decoded_only_when_paired_and_a_damaged_one_skips_its_pair(tmp_path, caplog):
    """MJPEG frames reach pairing compressed; the station decodes the ones pairing picks. One
    damaged inside (only decoding can tell) is logged naming camera and frame, counted as the
    camera's corrupt frame, and costs its pair alone."""
    from edge.io.sources import JpegFrame, RecordingCameraSource
    from tests.io.test_jpegframes import damaged_inside

    rec = make_recording(tmp_path / "rec", seconds=2.0)  # 60 RGB frames at 30 fps, 18 thermal at 9 Hz
    sent: list = []

    class Recorded:  # the recording's RGB camera, frame 10 (thermal 3's partner) damaged in transfer
        name = "rgb"

        def __init__(self):
            self.src = RecordingCameraSource(rec, "rgb")

        def read(self):
            f = self.src.read()
            if f is not None and f.index == 10:
                f = JpegFrame("rgb", f.index, f.t_ns, damaged_inside(f.jpeg))
            if f is not None:
                sent.append(f)
            return f

        def close(self):
            self.src.close()

    pipe = PairLog()
    st = Station(station_cfg(tmp_path, rec, [], mode="replay"), pipeline=pipe, openers={"rgb": Recorded})
    result = st.run()
    assert [p.thermal.index for p in pipe.pairs] == [0, 1, 2, *range(4, 18)]  # only thermal 3 lost its pair
    assert all(isinstance(p.rgb, JpegFrame) and p.rgb.decoded for p in pipe.pairs)
    decoded = sorted(f.index for f in sent if f.decoded)
    assert decoded == sorted(p.rgb.index for p in pipe.pairs) and len(sent) == 60  # 17 of 60 decoded
    rgb = st.workers["rgb"].stats
    assert rgb.corrupt == 1 and result.statuses[-1]["cameras"]["rgb"]["corrupt"] == 1
    lines = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("camera rgb: corrupt frame skipped: rgb frame 10: damaged JPEG")
    assert "\n" not in lines[0]


@pytest.mark.slow
def test_station_replay_gives_the_pipeline_replay_verdicts(centerface_path):
    """The live runner in replay mode and edge.replay.replay reach the same verdicts."""
    from edge.pipeline import default_config
    from edge.replay import replay

    if not (SAMPLE / "stream.json").is_file():
        pytest.skip(f"{SAMPLE} not rendered (make setup renders it)")
    ref = replay(SAMPLE, default_config("sample-gate-1", CALIBRATION))
    cam = {"kind": "recording", "path": str(SAMPLE)}
    cfg = validate_data({"station": {"id": "sample-gate-1"}, "calibration": {"path": str(CALIBRATION)},
                         "sources": {"mode": "replay", "rgb": cam, "thermal": cam}, "health": {"metrics_port": 0}})
    st = Station(cfg)
    result = st.run()
    verdicts = {tid: v.status for tid, v in st.pipeline.screener.verdicts().items()}
    assert verdicts == {tid: v.status for tid, v in ref.verdicts.items()}
    assert result.pairs == ref.pairs
    assert "elevated" in verdicts.values()


@pytest.mark.slow
def test_sigterm_shuts_down_cleanly_with_a_real_feed(tmp_path):
    rec = make_recording(tmp_path / "rec", seconds=3.0)
    cal = tmp_path / "cal.toml"
    cal.write_text('station_id = "test-gate"\ndate = 2026-11-26\n')
    pub_port, catchup_port = free_port(), free_port()
    (tmp_path / "station.toml").write_text(f"""
[station]
id = "test-gate"
[calibration]
path = "cal.toml"
[sources.rgb]
kind = "recording"
path = "{rec}"
loop = true
[sources.thermal]
kind = "recording"
path = "{rec}"
loop = true
[health]
status_interval_s = 0.5
metrics_port = 0
[feed]
endpoint = "tcp://127.0.0.1:{pub_port}"
catchup_endpoint = "tcp://127.0.0.1:{catchup_port}"
journal_path = "{tmp_path / 'journal.sqlite'}"
""")
    ctx = zmq.Context()
    sub = Subscriber(ctx, f"tcp://127.0.0.1:{pub_port}", b"status.test-gate")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(tmp_path / "station.toml")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sub.receive(lambda s: any(b["status"]["state"] == "ok" for b in s.bodies()), timeout_s=60,
                    what="an 'ok' status message from the station")
        proc.send_signal(signal.SIGTERM)
        sub.receive(lambda s: s.bodies()[-1]["status"]["state"] == "stopped", timeout_s=30,
                    what="the 'stopped' status message")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        ctx.term()
    bodies = sub.bodies()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert bodies[-1]["status"]["state"] == "stopped"
    cams = bodies[-1]["status"]["cameras"]
    assert cams["thermal"]["frames"] > 0 and cams["rgb"]["frames"] > 0
    assert "stopped (SIGTERM)" in err.decode()


def test_service_unit_runs_the_station_hardened():
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "deploy" / "thermal-edge.service")
    svc = unit["Service"]
    assert svc["Restart"] == "always" and svc["User"] == "thermal-edge" and svc["Type"] == "notify"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("ReadWritePaths", "/var/lib/thermal-edge"),
                       ("SupplementaryGroups", "video")):
        assert svc[key] == value, key
    # the commands it runs exist in our CLI, with the options it passes
    from edge.cli import build_parser

    for line in (svc["ExecStartPre"], svc["ExecStart"]):
        argv = line.split()[1:]
        args = build_parser().parse_args(argv)
        assert args.func is not None
    assert "--config /etc/thermal-edge/station.toml" in svc["ExecStart"]
    # the journal the feed writes lies inside the one writable path
    assert "THERMAL_EDGE_JOURNAL=/var/lib/thermal-edge/" in svc["Environment"]


@pytest.mark.slow
def test_a_failing_pair_does_not_stop_a_live_station(tmp_path):
    class Flaky(PairLog):
        def process_pair(self, pair):
            if len(self.pairs) == 2 and not getattr(self, "raised", False):
                self.raised = True
                raise RuntimeError("boom")
            return super().process_pair(pair)

    rec = make_recording(tmp_path / "rec", seconds=3.0)
    pipe = Flaky()
    result = Station(station_cfg(tmp_path, rec, []), pipeline=pipe).run(max_seconds=1.5)
    assert result.pipeline_errors == 1 and len(pipe.pairs) >= 5 and pipe.finished


def test_sd_notify_speaks_the_systemd_protocol(tmp_path, monkeypatch):
    from edge.station import sd_notify

    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1")
        assert server.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("WATCHDOG=1")  # outside systemd: a no-op
