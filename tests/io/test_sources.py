"""Sources without camera hardware: PureThermal Y16 frames built byte for byte, the FOURCC
order, telemetry parsing, recording stand-ins, fault injection, real network streams served by
ffmpeg on loopback, and MJPEG handed on compressed (V4L2 MJPG, HTTP MJPEG, files, recordings)
while other codecs are decoded."""
from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time

import cv2
import numpy as np
import pytest

from edge.io.recording import open_recording
from edge.io.sources import (
    CameraConfig,
    ColorSource,
    CorruptFrame,
    FaultPlan,
    FaultySource,
    JpegFrame,
    RecordingCameraSource,
    SourceError,
    Y16Source,
    decode_y16,
    source_opener,
    split_telemetry,
)
from edge.io.telemetry import build_telemetry_words, parse_telemetry, telemetry_rows
from edge.types import FFC_STATES
from tests.io.test_jpegframes import jpeg_bytes, picture
from tests.support import free_port
from tests.synth_streams import make_recording

W, H = 160, 120  # Lepton 3.5


def telemetry_bytes(*, status: int, frame_counter: int, fpa_k100: int, uptime_ms: int = 123456) -> bytes:
    """Telemetry lines A|B|C (240 words) as little-endian bytes, written word by word from the
    Lepton IDD offsets -- independent of edge.io.telemetry's own builder."""
    words = [0] * 240
    words[0] = 0x000E  # revision
    words[1], words[2] = uptime_ms & 0xFFFF, uptime_ms >> 16  # 32-bit values: LSW first
    words[3], words[4] = status & 0xFFFF, status >> 16
    words[20], words[21] = frame_counter & 0xFFFF, frame_counter >> 16
    words[24] = fpa_k100
    words[26] = fpa_k100 - 150
    return struct.pack("<240H", *words)


def purethermal_buffer(pixels: np.ndarray, telemetry: bytes | None) -> np.ndarray:
    """What OpenCV's V4L2 backend returns with CONVERT_RGB=0: the raw buffer as (1, nbytes) uint8.
    Pixels are little-endian 16-bit; telemetry (2 rows at 160 px) follows the image (footer)."""
    raw = pixels.astype("<u2").tobytes()
    if telemetry is not None:
        raw += telemetry + bytes(2 * W * telemetry_rows(W) - len(telemetry))  # pad row 2
    return np.frombuffer(raw, np.uint8).reshape(1, -1)


class FakePureThermal:
    """A cv2.VideoCapture stand-in behaving like OpenCV's V4L2 backend with a PureThermal:
    setting CAP_PROP_FOURCC re-initialises the device and turns RGB conversion back on (as
    cap_v4l.cpp does), so only FOURCC-then-CONVERT_RGB=0 yields raw 16-bit buffers."""

    def __init__(self, frames: list[np.ndarray], rows: int):
        self.frames = list(frames)
        self.rows = rows
        self.calls: list[tuple[int, float]] = []
        self.fourcc = 0
        self.convert_rgb = True
        self.released = False
        self.pos_ms = 0.0  # driver timestamp of the last frame (CAP_PROP_POS_MSEC)

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.calls.append((prop, value))
        if prop == cv2.CAP_PROP_FOURCC:
            self.fourcc = int(value)
            self.convert_rgb = True  # v4l2_reset -> conversion on again
        elif prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert_rgb = bool(value)
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: W, cv2.CAP_PROP_FRAME_HEIGHT: self.rows,
                cv2.CAP_PROP_POS_MSEC: self.pos_ms}.get(prop, 0.0)

    def read(self):
        if not self.frames:
            return False, None
        buf = self.frames.pop(0)
        if self.convert_rgb:  # what the backend does to Y16 when converting: 8-bit BGR
            words = np.frombuffer(buf.tobytes(), "<u2")[: W * self.rows].reshape(self.rows, W)
            return True, cv2.cvtColor((words >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        return True, buf

    def release(self) -> None:
        self.released = True


def y16_source(frames: list[np.ndarray], rows: int, **cfg) -> tuple[Y16Source, FakePureThermal]:
    fake = FakePureThermal(frames, rows)
    src = Y16Source("thermal", CameraConfig(kind="v4l2", device="/dev/video2", width=W, height=H, **cfg),
                    capture_factory=lambda *a, **k: fake)
    return src, fake


def test_fourcc_is_requested_before_convert_rgb_off():
    pixels = np.random.default_rng(1).integers(28000, 32000, (H, W), dtype=np.uint16)
    src, fake = y16_source([purethermal_buffer(pixels, None)], H)
    props = [p for p, _ in fake.calls]
    assert props.index(cv2.CAP_PROP_FOURCC) < props.index(cv2.CAP_PROP_CONVERT_RGB)
    assert fake.fourcc == cv2.VideoWriter.fourcc("Y", "1", "6", " ")
    frame = src.read()
    assert frame.image.dtype == np.uint16
    np.testing.assert_array_equal(frame.image, pixels)


def test_wrong_order_gives_8bit_frames_which_are_rejected():
    """Why the order matters: CONVERT_RGB=0 then FOURCC leaves conversion on -> 8-bit BGR."""
    pixels = np.full((H, W), 30000, np.uint16)
    fake = FakePureThermal([purethermal_buffer(pixels, None)], H)
    fake.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    fake.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc("Y", "1", "6", " "))
    ok, buf = fake.read()
    with pytest.raises(CorruptFrame, match="CONVERT_RGB must be 0 after the FOURCC"):
        decode_y16(buf, W, H)


@pytest.mark.parametrize("state_bits, expected", [(0, "none"), (1, "imminent"), (2, "in_progress"), (3, "complete")])
def test_telemetry_footer_is_stripped_and_parsed(state_bits, expected):
    pixels = np.random.default_rng(2).integers(29000, 31000, (H, W), dtype=np.uint16)
    status = (state_bits << 4) | (1 << 12)  # FFC state bits 4-5, AGC bit 12 set
    tel = telemetry_bytes(status=status, frame_counter=0x00012345, fpa_k100=30515)
    src, _ = y16_source([purethermal_buffer(pixels, tel)], H + 2)
    frame = src.read()
    np.testing.assert_array_equal(frame.image, pixels)  # telemetry rows gone, pixels intact
    assert frame.ffc_state == expected
    assert frame.meta["sensor_temp_c"] == pytest.approx(32.0)
    assert frame.meta["sensor_frame_counter"] == 0x12345
    assert src.telemetry.uptime_ms == 123456


def test_telemetry_header_and_builder_round_trip():
    words = build_telemetry_words(frame_counter=70000, ffc_state="imminent", fpa_temp_c=31.5, uptime_ms=90000,
                                  last_ffc_ms=60000, ffc_desired=True)
    rows = np.zeros((2, W), np.uint16)
    rows.reshape(-1)[:240] = words
    img = np.vstack([rows, np.full((H, W), 30100, np.uint16)])
    pix, tel = split_telemetry(img, H, "header")
    assert pix.shape == (H, W) and int(pix[0, 0]) == 30100
    assert (tel.frame_counter, tel.ffc_state, tel.ffc_desired, tel.ms_since_ffc) == (70000, "imminent", True, 30000)
    assert tel.fpa_temp_c == pytest.approx(31.5)
    assert parse_telemetry(words.reshape(3, 80)).frame_counter == 70000  # Lepton 2 layout: 3 rows of 80


def test_telemetry_rows_per_width():
    assert telemetry_rows(160) == 2 and telemetry_rows(80) == 3


def test_ffc_states_order_matches_lepton_bits():
    assert FFC_STATES == ("none", "imminent", "in_progress", "complete")


@pytest.mark.parametrize("buf, match", [
    (np.zeros((1, W * H * 2 - 100), np.uint8), "short Y16 frame"),
    (np.zeros((H + 1, W), np.uint16), "expected 120 \\+ 2 telemetry rows"),
])
def test_short_and_odd_frames_are_corrupt(buf, match):
    src, _ = y16_source([buf], H if buf.dtype == np.uint8 else H + 1)
    with pytest.raises(CorruptFrame, match=match):
        src.read()


def test_rows_that_are_not_telemetry_are_corrupt():
    img = np.full((H + 2, W), 30000, np.uint16)  # 'telemetry' FPA temp 300.00 - 273.15 = 26.85: plausible
    img[H:] = 0  # zero words: FPA 0 K -> not telemetry
    with pytest.raises(CorruptFrame, match="implausible"):
        split_telemetry(img, H, "footer")


def test_sixteen_bit_file_through_the_same_source(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=0.5)
    rec = open_recording(rec_dir)
    ref = rec.source("thermal")
    want = [ref.read() for _ in range(3)]
    ref.close()
    cfg = CameraConfig(kind="file", path=rec_dir / "thermal.mkv", telemetry="off")
    src = Y16Source("thermal", cfg, rec_dir / "thermal.mkv")
    got = [src.read() for _ in range(3)]
    src.close()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.image, w.image)


def test_recording_source_loops_with_time_moving_forward(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=0.5, thermal_fps=8.0)  # 4 thermal frames
    src = RecordingCameraSource(rec_dir, "thermal", loop=True)
    frames = [src.read() for _ in range(10)]
    src.close()
    t = [f.t_ns for f in frames]
    assert all(b > a for a, b in zip(t, t[1:]))
    assert [int(f.image[0, 0]) - 30000 for f in frames] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_recording_stand_in_resumes_at_now_after_reopen(tmp_path):
    """A reconnected stand-in camera shows the frame playing now (in step with the other camera),
    not the start of the recording."""
    rec_dir = make_recording(tmp_path / "rec", seconds=2.0, thermal_fps=10.0)
    epoch = time.monotonic_ns() - 1_000_000_000  # playing for 1 s already
    src = RecordingCameraSource(rec_dir, "thermal", realtime=True, epoch_ns=epoch)
    first = src.read()
    src.close()
    assert int(first.image[0, 0]) - 30000 >= 10


def test_fault_plan_fires_each_fault_once_across_reopens(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=1.0)
    cfg = CameraConfig(kind="recording", path=rec_dir, realtime=False,
                       faults=["corrupt@1", "ts_jump@2:5", "disconnect@3:30"])
    open_ = source_opener("thermal", cfg, live=False)
    src = open_()
    f0, f1, f2 = src.read(), src.read(), src.read()
    assert f1.image.shape[0] == f0.image.shape[0] // 2  # corrupt: truncated
    assert f2.t_ns == pytest.approx(f0.t_ns + 2 * 1e9 / 9 - 5e9, abs=2e6)  # 5 s back
    assert src.read() is None  # disconnect
    assert src.read() is None
    with pytest.raises(SourceError, match="unavailable"):
        open_()  # unplugged for 30 s
    assert src.plan.fired == ["corrupt@1", "ts_jump@2", "disconnect@3"]


def test_stall_blocks_then_delivers(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=0.5)
    src = FaultySource(RecordingCameraSource(rec_dir, "rgb"), FaultPlan.parse(["stall@0:0.05"]))
    assert src.read() is not None and src.plan.fired == ["stall@0"]


@pytest.mark.parametrize("kind, fields, match", [
    ("url", {"url": "ftp://cam/1"}, "not an rtsp"),
    ("v4l2", {}, "needs 'device'"),
    ("recording", {"path": "/nonexistent/rec"}, "not found"),
    ("recording", {"path": ".", "faults": ["explode@3"]}, "not understood"),
])
def test_camera_config_rejects(kind, fields, match):
    with pytest.raises(ValueError, match=match):
        CameraConfig(kind=kind, **fields)



def _read_when_served(cfg, url: str, tries: int, n: int) -> list:
    """Open ``url`` through the RGB source once the server answers (0.1 s apart), read n frames."""
    for _ in range(tries):
        try:
            src = ColorSource("rgb", cfg, url)
            break
        except SourceError:
            time.sleep(0.1)
    else:
        raise AssertionError(f"could not open {url}")
    try:
        return [src.read() for _ in range(n)]
    finally:
        src.close()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg); "
                                                             "network stream test skipped")
def test_network_stream_served_by_ffmpeg_on_loopback(tmp_path):
    """ffmpeg in listen mode serves a recording's RGB video over HTTP (MPEG-TS), as an IP camera
    would; the RGB source reads it through OpenCV's FFmpeg backend."""
    rec_dir = make_recording(tmp_path / "rec", seconds=2.0)
    url = f"http://127.0.0.1:{free_port()}/stream.ts"
    server = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(rec_dir / "rgb.avi"),
                               "-c:v", "mpeg4", "-q:v", "2", "-f", "mpegts", "-listen", "1", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cfg = CameraConfig(kind="url", url=url, open_timeout_s=10, read_timeout_s=10)
        frames = _read_when_served(cfg, url, tries=50, n=10)  # ffmpeg needs a moment to listen
    finally:
        server.kill()
        server.wait(5)
    assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
    assert not any(isinstance(f, JpegFrame) for f in frames)  # MPEG-4 cannot be handed on raw: decoded
    assert [f.index for f in frames] == list(range(10))
    # the painted frame number survives the lossy codec closely enough to follow the stream
    marks = [int(np.median(f.image[2:6, 2:6])) for f in frames]
    assert marks == sorted(marks) and marks[-1] - marks[0] >= 5


RTSP_RELAY = """
use strict; use AnyEvent; use RTSP::Server;
my ($client_port, $source_port) = @ARGV;
my $srv = RTSP::Server->new(client_listen_port => $client_port, source_listen_port => $source_port,
    client_listen_address => '127.0.0.1', source_listen_address => '127.0.0.1', log_level => 1);
$srv->listen;
AnyEvent->condvar->recv;
"""


def _have_rtsp_relay() -> bool:
    return shutil.which("perl") is not None and subprocess.run(
        ["perl", "-MRTSP::Server", "-e", "1"], capture_output=True).returncode == 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("ffmpeg") is None or not _have_rtsp_relay(),
                    reason="needs Debian's ffmpeg and librtsp-server-perl (apt-get install ffmpeg librtsp-server-perl)")
@pytest.mark.slow
def test_rtsp_stream_on_loopback(tmp_path):
    """A real RTSP session: ffmpeg publishes a recording's RGB video to a small RTSP server on
    loopback (Debian's RTSP::Server), and the RGB source plays it like an IP camera."""
    rec_dir = make_recording(tmp_path / "rec", seconds=3.0)
    (tmp_path / "relay.pl").write_text(RTSP_RELAY)
    client_port, source_port = free_port(), free_port()
    procs = [subprocess.Popen(["perl", str(tmp_path / "relay.pl"), str(client_port), str(source_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(100):
            if _listening(source_port) and _listening(client_port):
                break
            time.sleep(0.1)
        procs.append(subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(rec_dir / "rgb.avi"),
             "-c:v", "mpeg4", "-q:v", "2", "-g", "10", "-f", "rtsp", f"rtsp://127.0.0.1:{source_port}/cam"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"rtsp://127.0.0.1:{client_port}/cam"
        cfg = CameraConfig(kind="url", url=url, rtsp_transport="udp", open_timeout_s=10, read_timeout_s=10)
        frames = _read_when_served(cfg, url, tries=100, n=15)  # until ffmpeg has announced the stream
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(5)
    assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
    assert len({int(np.median(f.image[2:6, 2:6])) for f in frames}) > 5  # a moving stream, not one frame


def test_v4l2_rgb_requests_format_then_size_then_rate():
    calls = []

    class Cam:
        def isOpened(self):
            return True

        def set(self, prop, value):
            calls.append(prop)
            return True

        def get(self, prop):
            return 0.0  # no driver timestamp: arrival time is used

        def read(self):
            return True, np.zeros((480, 640, 3), np.uint8)

        def release(self):
            pass

    cfg = CameraConfig(kind="v4l2", device="0", width=640, height=480, fps=30, fourcc="MJPG")
    src = ColorSource("rgb", cfg, capture_factory=lambda *a: Cam())
    assert calls[:4] == [cv2.CAP_PROP_FOURCC, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS]
    assert src.read().image.shape == (480, 640, 3)


@pytest.mark.parametrize("age_ms, from_driver", [(30.0, True), (None, False), (5000.0, False)])
def test_v4l2_capture_time_comes_from_the_driver_when_plausible(age_ms, from_driver):
    """UVC buffers carry a CLOCK_MONOTONIC capture stamp; it excludes driver queueing."""
    pixels = np.full((H, W), 30000, np.uint16)
    src, fake = y16_source([purethermal_buffer(pixels, None)], H)
    before = time.monotonic_ns()
    fake.pos_ms = 0.0 if age_ms is None else (before / 1e6 - age_ms)
    frame = src.read()
    if from_driver:
        assert frame.t_ns == round(fake.pos_ms * 1e6) and frame.meta["clock"] == "monotonic"
    else:
        assert frame.t_ns >= before and "clock" not in frame.meta


# ----------------------------------------------------------------------------- MJPEG kept compressed


def test_recording_rgb_comes_compressed_with_the_same_frames(tmp_path):
    """An MJPEG recording as a camera stand-in hands on its packets; decoded, they are exactly
    the frames the replay reader decodes, with the same indices and times, and loop on."""
    rec_dir = make_recording(tmp_path / "rec", seconds=0.5)  # 15 RGB frames
    rec = open_recording(rec_dir)
    ref = rec.source("rgb", decode=set(range(15)))
    want = [ref.read() for _ in range(15)]
    ref.close()
    src = RecordingCameraSource(rec_dir, "rgb", loop=True)
    got = [src.read() for _ in range(20)]
    src.close()
    assert all(isinstance(f, JpegFrame) and not f.decoded for f in got)
    assert [f.index for f in got] == [*range(15), *range(5)]
    assert [f.t_ns for f in got[:15]] == [f.t_ns for f in want]
    assert all(b.t_ns > a.t_ns for a, b in zip(got, got[1:]))  # looped: time goes on
    for g, w in zip(got, want + want):
        np.testing.assert_array_equal(g.image, w.image)


def test_mjpeg_file_comes_compressed_other_codecs_decoded(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=0.3)
    src = ColorSource("rgb", CameraConfig(kind="file", path=rec_dir / "rgb.avi"), rec_dir / "rgb.avi")
    frames = [src.read() for _ in range(3)]
    src.close()
    assert src.raw_jpeg and all(isinstance(f, JpegFrame) and f.shape == (48, 64, 3) for f in frames)
    assert [int(f.image[4, 4, 0]) for f in frames] == pytest.approx([0, 1, 2], abs=3)  # painted index
    lossless = tmp_path / "ffv1.avi"
    w = cv2.VideoWriter(str(lossless), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"FFV1"), 30, (64, 48))
    for i in range(3):
        w.write(np.full((48, 64, 3), 10 * i, np.uint8))
    w.release()
    src = ColorSource("rgb", CameraConfig(kind="file", path=lossless), lossless)
    frames = [src.read() for _ in range(3)]
    src.close()
    assert not src.raw_jpeg and not any(isinstance(f, JpegFrame) for f in frames)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 10, 20]


class FakeUvcCamera:
    """A cv2.VideoCapture stand-in behaving like OpenCV's V4L2 backend with a USB camera that
    offers MJPG and YUYV: setting CAP_PROP_FOURCC re-initialises the device and turns RGB
    conversion back on; with conversion on, read() gives the decoded BGR image, with it off the
    driver's buffer as (1, nbytes) uint8 -- for MJPG, the JPEG image."""

    def __init__(self, images: list[np.ndarray]):
        self.images = list(images)
        self.fourcc = cv2.VideoWriter.fourcc(*"YUYV")
        self.convert_rgb = True
        self.calls: list[int] = []

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.calls.append(prop)
        if prop == cv2.CAP_PROP_FOURCC:
            self.fourcc, self.convert_rgb = int(value), True
        elif prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert_rgb = bool(value)
        return True

    def get(self, prop: int) -> float:
        return float(self.fourcc) if prop == cv2.CAP_PROP_FOURCC else 0.0

    def read(self):
        img = self.images.pop(0)
        mjpg = self.fourcc == cv2.VideoWriter.fourcc(*"MJPG")
        if self.convert_rgb:
            return True, cv2.imdecode(jpeg_bytes(img), cv2.IMREAD_COLOR) if mjpg else img
        if mjpg:
            return True, jpeg_bytes(img).reshape(1, -1)
        return True, np.zeros((1, img.shape[0] * img.shape[1] * 2), np.uint8)  # raw YUYV: unusable as is

    def release(self) -> None:
        pass


@pytest.mark.parametrize("fourcc, raw", [("MJPG", True), ("YUYV", False), (None, False)])
def test_v4l2_mjpeg_camera_hands_on_the_jpeg_buffer(fourcc, raw):
    images = [picture(48, 64, seed) for seed in range(3)]
    fake = FakeUvcCamera(images)
    cfg = CameraConfig(kind="v4l2", device="0", width=64, height=48, fps=30, fourcc=fourcc)
    src = ColorSource("rgb", cfg, capture_factory=lambda *a: fake)
    frames = [src.read() for _ in range(3)]
    assert src.raw_jpeg is raw and all(isinstance(f, JpegFrame) is raw for f in frames)
    if raw:  # conversion off only after the FOURCC (which turns it on again), else no JPEG
        assert fake.calls.index(cv2.CAP_PROP_FOURCC) < fake.calls.index(cv2.CAP_PROP_CONVERT_RGB)
        assert not fake.convert_rgb and not any(f.decoded for f in frames)
    else:
        assert cv2.CAP_PROP_CONVERT_RGB not in fake.calls and fake.convert_rgb
    for f, img in zip(frames, images):
        assert f.image.shape == (48, 64, 3)
        if raw:
            np.testing.assert_array_equal(f.image, cv2.imdecode(jpeg_bytes(img), cv2.IMREAD_COLOR))


def test_corrupt_fault_cuts_an_mjpeg_frame_short(tmp_path):
    rec_dir = make_recording(tmp_path / "rec", seconds=0.3)
    src = FaultySource(RecordingCameraSource(rec_dir, "rgb"), FaultPlan.parse(["corrupt@1"]))
    assert src.read().index == 0
    with pytest.raises(CorruptFrame, match="^rgb frame 1: JPEG (cut short|header)"):
        src.read()
    nxt = src.read()  # the stream goes on
    src.close()
    assert nxt.index == 2 and nxt.image.shape == (48, 64, 3)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg); "
                                                             "HTTP MJPEG test skipped")
def test_http_mjpeg_stream_comes_compressed(tmp_path):
    """An IP camera's HTTP MJPEG stream (multipart JPEG parts, served by ffmpeg on loopback):
    the source hands on each JPEG part undecoded."""
    rec_dir = make_recording(tmp_path / "rec", seconds=2.0)
    url = f"http://127.0.0.1:{free_port()}/video.mjpg"
    server = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(rec_dir / "rgb.avi"),
                               "-c:v", "copy", "-f", "mpjpeg", "-listen", "1", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cfg = CameraConfig(kind="url", url=url, open_timeout_s=10, read_timeout_s=10)
        frames = _read_when_served(cfg, url, tries=50, n=10)
    finally:
        server.kill()
        server.wait(5)
    assert all(isinstance(f, JpegFrame) and not f.decoded and f.shape == (48, 64, 3) for f in frames)
    marks = [int(np.median(f.image[2:6, 2:6])) for f in frames]
    assert marks == sorted(marks) and marks[-1] - marks[0] >= 5
