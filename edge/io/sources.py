"""Camera sources: everything that yields ``Frame``s, behind one small interface.

``FrameSource``: ``.name``, ``.read() -> Frame | None`` (blocks for the next frame; ``None`` =
end of stream or stream lost), ``.close()``. A source whose ``t_ns`` is a capture time on
time.monotonic_ns()'s clock (V4L2 driver timestamps) says so with ``frame.meta['clock'] =
'monotonic'``; other sources' times are replaced by the arrival time in live mode. ``read()`` raises ``CorruptFrame`` for a frame that
arrived damaged (skip it, count it) and ``SourceError`` when the device is gone.

Implementations:
- ``Y16Source``: 16-bit thermal -- a PureThermal/Lepton over V4L2 (FOURCC Y16, raw buffers,
  telemetry rows stripped and parsed), or any 16-bit stream/file OpenCV's FFmpeg backend reads.
- ``ColorSource``: RGB over V4L2, RTSP/HTTP URLs or video files (FFmpeg backend).
- ``RecordingCameraSource``: one camera of a recording (edge.io.recording), optionally paced in
  real time and looped -- a camera stand-in for tests and demos.
- ``FaultySource``: wraps any source and injects stalls, disconnects, corrupt frames and
  timestamp jumps at given frames, so the watchdog and reconnect paths run without hardware.

RGB sources that receive MJPEG (USB cameras in MJPG mode, HTTP MJPEG, MJPEG files and
recordings) return ``JpegFrame``s (edge/io/jpegframes.py): the compressed image, decoded on first
use of ``.image``. At 30 fps RGB and 8.7 Hz thermal most RGB frames pair with nothing, so the
live station decodes only the paired ones (edge/station.py); other consumers see no difference.

Capture threads, queues and the watchdog are in edge/io/capture.py.
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel, resolve_path
from edge.io.jpegframes import (
    JPEG_FOURCCS,
    CorruptFrame,
    JpegFrame,
    JpegPacketReader,
    fourcc_of,
)
from edge.io.telemetry import TelemetryError, parse_telemetry, telemetry_rows
from edge.types import Frame


class SourceError(RuntimeError):
    """A camera cannot be opened or stopped delivering; the capture thread reconnects."""


@runtime_checkable
class FrameSource(Protocol):
    name: str

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- config

FAULT_RE = re.compile(r"^(stall|disconnect|corrupt|ts_jump)@(\d+)(?::(\d+(?:\.\d+)?))?$")


class CameraConfig(StrictModel):
    """One camera: where its frames come from and what they must look like."""

    kind: Literal["v4l2", "url", "file", "recording"] = Field(
        "recording", description="v4l2: USB camera (/dev/videoN); url: rtsp:// or http(s):// stream; "
                                 "file: a video file; recording: one camera of a recording folder")
    device: str | None = Field(None, description="v4l2 only: /dev/videoN path or index")
    url: str | None = Field(None, description="url only: rtsp://, rtsps://, http:// or https:// address")
    path: Path | None = Field(None, description="file/recording: video file or recording folder (relative to the config)")
    width: int | None = Field(None, ge=16, le=8192, description="Expected image width, px; frames of another size count as corrupt")
    height: int | None = Field(None, ge=16, le=8192, description="Expected image height, px (thermal: sensor rows, without telemetry)")
    fps: float | None = Field(None, gt=0, le=240, description="Requested/nominal frame rate, frames/s")
    fourcc: str | None = Field(
        None, min_length=4, max_length=4,
        description="v4l2 RGB only: pixel format to request, e.g. 'MJPG' (most USB cameras reach 30 frames/s at "
                    "640x480 and above only compressed) or 'YUYV'; thermal always uses Y16")
    telemetry: Literal["auto", "footer", "header", "off"] = Field(
        "auto", description="thermal: Lepton telemetry rows; auto = footer if the frame has the extra rows")
    units: Literal["centikelvin", "decikelvin"] = Field(
        "centikelvin", description="thermal: raw units (PureThermal TLinear: centikelvin)")
    realtime: bool = Field(True, description="recording: pace frames at their recorded rate (live mode)")
    loop: bool = Field(False, description="recording: start again at the end (a camera that never ends)")
    open_timeout_s: float = Field(5.0, gt=0, le=120, description="url: give up opening after this long, s")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="url: give up a read after this long, s")
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="url rtsp:// only: RTP over the RTSP TCP connection (robust through NAT/firewalls) or UDP")
    faults: list[str] = Field(
        default_factory=list,
        description="Testing aid: inject faults at frame numbers, e.g. ['stall@40:5', 'disconnect@80', "
                    "'corrupt@20', 'ts_jump@60:2'] (seconds after the colon: stall length, time the device stays unplugged, jump back)")

    @field_validator("faults")
    @classmethod
    def _faults(cls, v: list[str]) -> list[str]:
        FaultPlan.parse(v)  # raises ValueError naming a spec it does not understand
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(rtsp|rtsps|http|https)://[^/\s:]+(:\d{1,5})?(/\S*)?$", v):
            raise ValueError(f"not an rtsp:// or http(s):// URL: {v!r}")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: Path | None, info: Any) -> Path | None:
        if v is None:
            return v
        v = resolve_path(v, info)
        if not v.exists():
            raise ValueError(f"not found: {v}")
        return v

    @model_validator(mode="after")
    def _needs(self) -> CameraConfig:
        need = {"v4l2": "device", "url": "url", "file": "path", "recording": "path"}[self.kind]
        if getattr(self, need) is None:
            raise ValueError(f"kind={self.kind!r} needs '{need}'")
        return self


class SourcesConfig(StrictModel):
    """Cameras, capture queues, watchdog and reconnect."""

    mode: Literal["live", "replay"] = Field(
        "live", description="live: queues drop the oldest frames when full, frames stamped on arrival, watchdog on; "
                            "replay: nothing dropped (capture waits), recorded timestamps kept")
    rgb: CameraConfig = Field(
        default_factory=lambda: CameraConfig(kind="v4l2", device="/dev/video0", fps=30.0), description="RGB camera")
    thermal: CameraConfig = Field(
        default_factory=lambda: CameraConfig(kind="v4l2", device="/dev/video2", width=160, height=120, fps=8.7),
        description="Thermal camera (16-bit)")
    queue_size: int = Field(4, ge=1, le=256, description="Frames held per camera between capture and pipeline")
    watchdog_timeout_s: float = Field(3.0, ge=0.2, le=600, description="No frame for this long -> camera offline, reconnect, s")
    watchdog_period_s: float = Field(0.5, ge=0.05, le=60, description="How often the watchdog looks, s")
    reconnect_initial_s: float = Field(0.5, ge=0.01, le=60, description="First reconnect delay, s; doubles per failure")
    reconnect_max_s: float = Field(30.0, ge=0.1, le=3600, description="Cap of the reconnect delay, s")

    @model_validator(mode="after")
    def _order(self) -> SourcesConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(f"reconnect_max_s={self.reconnect_max_s} is below reconnect_initial_s={self.reconnect_initial_s}")
        if self.watchdog_period_s > self.watchdog_timeout_s:
            raise ValueError(f"watchdog_period_s={self.watchdog_period_s} exceeds watchdog_timeout_s={self.watchdog_timeout_s}")
        return self


# ----------------------------------------------------------------------------- decoding


def decode_y16(buf: np.ndarray, width: int, rows: int) -> np.ndarray:
    """A Y16 frame as OpenCV hands it back -> (rows, width) uint16.

    With CAP_PROP_CONVERT_RGB=0, OpenCV's V4L2 backend returns the raw buffer as (1, nbytes)
    uint8 (little-endian words); the FFmpeg backend returns (h, w) uint16. Anything shorter than
    a whole frame is a short frame (USB packet loss) and raises CorruptFrame.
    """
    if buf is None:
        raise CorruptFrame("empty frame")
    if buf.dtype == np.uint16:
        img = buf[:, :, 0] if buf.ndim == 3 else buf
        if img.shape != (rows, width):
            raise CorruptFrame(f"16-bit frame is {img.shape}, expected ({rows}, {width})")
        return img
    if buf.dtype == np.uint8 and buf.ndim <= 2 and (buf.ndim == 1 or buf.shape[0] == 1):
        need = rows * width * 2
        if buf.size < need:
            raise CorruptFrame(f"short Y16 frame: {buf.size} bytes, expected {need} ({width}x{rows}x2)")
        # one copy: OpenCV reuses its buffer for the next frame
        return np.ascontiguousarray(buf).reshape(-1)[:need].view("<u2").reshape(rows, width).copy()
    raise CorruptFrame(f"not a Y16 frame: {buf.dtype} {buf.shape} (8-bit RGB? CONVERT_RGB must be 0 after the FOURCC)")


def split_telemetry(img: np.ndarray, sensor_rows: int | None, mode: str) -> tuple[np.ndarray, Any]:
    """(rows, w) uint16 -> (sensor image, Telemetry | None). Raises CorruptFrame for a frame whose
    row count fits neither with nor without telemetry."""
    rows, width = img.shape
    k = telemetry_rows(width)
    if mode == "off" or sensor_rows is None or (mode == "auto" and rows == sensor_rows):
        if sensor_rows is not None and rows != sensor_rows:
            raise CorruptFrame(f"thermal frame has {rows} rows, expected {sensor_rows}")
        return img, None
    if rows != sensor_rows + k:
        raise CorruptFrame(f"thermal frame has {rows} rows, expected {sensor_rows} + {k} telemetry rows")
    if mode == "header":
        tel, pix = img[:k], img[k:]
    else:
        pix, tel = img[:sensor_rows], img[sensor_rows:]
    try:
        return pix, parse_telemetry(tel)
    except TelemetryError as e:
        raise CorruptFrame(str(e)) from None


def _v4l2_target(device: str) -> int | str:
    return int(device) if device.isdigit() else device


# A driver timestamp older than this is not trusted (a stale or foreign clock); arrival time is used.
MAX_DRIVER_AGE_NS = 2_000_000_000


def stamp(cap: Any, kind: str, arrival_ns: int) -> tuple[int, dict[str, Any]]:
    """(t_ns, meta) for a frame just read from ``cap``.

    UVC drivers stamp each buffer on CLOCK_MONOTONIC -- the clock time.monotonic_ns() reads --
    when the frame arrives over USB; OpenCV's V4L2 backend reports it as CAP_PROP_POS_MSEC. It
    is the better capture time: it does not include the time the frame waited in the driver's
    queue, which differs between the two cameras and would skew pairing. A V4L2 frame stamped so
    says meta['clock'] = 'monotonic'; implausible driver times and other sources keep arrival time.
    """
    if kind == "v4l2":
        t = int(round(cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6))
        if t > 0 and 0 <= arrival_ns - t <= MAX_DRIVER_AGE_NS:
            return t, {"clock": "monotonic"}
    return arrival_ns, {}


FOURCC_Y16 = cv2.VideoWriter.fourcc("Y", "1", "6", " ")


class Y16Source:
    """16-bit thermal frames through OpenCV.

    kind v4l2: a PureThermal exposes the Lepton as a UVC camera. We request FOURCC Y16 first and
    only then CAP_PROP_CONVERT_RGB=0: setting the FOURCC re-initialises the V4L2 capture, which
    turns RGB conversion back on, and we would get 8-bit BGR (temperatures lost).
    kind file/url: any 16-bit stream FFmpeg decodes (e.g. FFV1 gray16le), read with CONVERT_RGB=0.
    """

    def __init__(self, name: str, cfg: CameraConfig, target: Any = None,
                 capture_factory: Callable[..., Any] = cv2.VideoCapture):
        self.name = name
        self.cfg = cfg
        self._index = 0
        self.telemetry = None
        if cfg.kind == "v4l2":
            cap = capture_factory(_v4l2_target(str(cfg.device)), cv2.CAP_V4L2)
            if not cap.isOpened():
                raise SourceError(f"{name}: cannot open V4L2 device {cfg.device}")
            cap.set(cv2.CAP_PROP_FOURCC, FOURCC_Y16)  # first: resets convert_rgb
            if cfg.fps:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # last: raw 16-bit buffers
        else:
            cap = capture_factory(str(target), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0, *_timeouts(cfg)])
            if not cap.isOpened():
                raise SourceError(f"{name}: FFmpeg cannot open {target}")
        self._cap = cap

    def _frame_rows_width(self, buf: np.ndarray) -> tuple[int, int]:
        if buf.dtype == np.uint16:
            return buf.shape[0], buf.shape[1]
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or self.cfg.width or 160
        rows = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))  # includes telemetry rows
        return (rows if rows > 0 else buf.size // (2 * width)), width

    def read(self) -> Frame | None:
        ok, buf = self._cap.read()
        t_ns = time.monotonic_ns()
        if not ok or buf is None:
            return None
        rows, width = self._frame_rows_width(buf)
        img = decode_y16(buf, width, rows)
        img, tel = split_telemetry(img, self.cfg.height, self.cfg.telemetry)
        t_ns, meta = stamp(self._cap, self.cfg.kind, t_ns)
        ffc = "none"
        if tel is not None:
            self.telemetry = tel
            ffc = tel.ffc_state
            meta.update({"sensor_temp_c": tel.fpa_temp_c, "housing_temp_c": tel.housing_temp_c,
                         "sensor_frame_counter": tel.frame_counter, "ms_since_ffc": tel.ms_since_ffc})
        frame = Frame(self.name, self._index, t_ns, img, ffc, meta)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_env_lock = threading.Lock()


@contextmanager
def _ffmpeg_options(options: str) -> Iterator[None]:
    """OpenCV takes FFmpeg demuxer options only from this environment variable, read when a
    capture opens; set it around one open (locked: capture threads open concurrently)."""
    with _ffmpeg_env_lock:
        old = os.environ.get(_FFMPEG_ENV)
        os.environ[_FFMPEG_ENV] = options if not old else f"{old}|{options}"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(_FFMPEG_ENV, None)
            else:
                os.environ[_FFMPEG_ENV] = old


def _timeouts(cfg: CameraConfig) -> list[int]:
    return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]


class ColorSource:
    """RGB frames from a V4L2 device, an RTSP/HTTP URL or a video file.

    MJPEG is handed on still compressed (``JpegFrame``, decoded only when used): a V4L2 camera
    delivering MJPG is read with CONVERT_RGB=0 (the driver's JPEG buffer, which OpenCV would
    otherwise decode itself), an FFmpeg stream or file whose codec is MJPEG as raw packets
    (CAP_PROP_FORMAT=-1). Everything else (RTSP H.264, YUYV, ...) is decoded here as before:
    (H,W,3) uint8 BGR.
    """

    def __init__(self, name: str, cfg: CameraConfig, target: Any = None,
                 capture_factory: Callable[..., Any] = cv2.VideoCapture):
        self.name = name
        self.cfg = cfg
        self._index = 0
        self.raw_jpeg = False  # True: frames are JpegFrames (decoded on first use)
        if cfg.kind == "v4l2":
            cap = capture_factory(_v4l2_target(str(cfg.device)), cv2.CAP_V4L2)
            if cap.isOpened():
                if cfg.fourcc:  # before the size: the sizes a camera offers depend on the format
                    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
                if cfg.width and cfg.height:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
                if cfg.fps:
                    cap.set(cv2.CAP_PROP_FPS, cfg.fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a backlog
                # last: setting the FOURCC re-initialises the capture and turns conversion back on
                self.raw_jpeg = fourcc_of(cap) in JPEG_FOURCCS and bool(cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))
        else:
            if cfg.kind == "url":
                with _ffmpeg_options(f"rtsp_transport;{cfg.rtsp_transport}"):
                    cap = capture_factory(str(target), cv2.CAP_FFMPEG, _timeouts(cfg))
            else:
                cap = capture_factory(str(target), cv2.CAP_FFMPEG, [])
            if cap.isOpened():
                self.raw_jpeg = fourcc_of(cap) in JPEG_FOURCCS and bool(cap.set(cv2.CAP_PROP_FORMAT, -1))
        if not cap.isOpened():
            raise SourceError(f"{name}: cannot open {target if target is not None else cfg.device}")
        self._cap = cap

    def read(self) -> Frame | None:
        ok, img = self._cap.read()
        t_ns = time.monotonic_ns()
        if not ok or img is None:
            return None
        t_ns, meta = stamp(self._cap, self.cfg.kind, t_ns)
        if self.raw_jpeg:
            if img.dtype != np.uint8:
                raise CorruptFrame(f"{self.name}: MJPEG buffer is {img.dtype} {img.shape}, expected bytes")
            # V4L2: (1, bytesused), copied out of the driver's buffer by OpenCV; FFmpeg: the packet
            frame: Frame = JpegFrame(self.name, self._index, t_ns, img.reshape(-1), meta)
        else:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise CorruptFrame(f"{self.name}: frame is {img.dtype} {img.shape}, expected (H, W, 3) uint8")
            frame = Frame(self.name, self._index, t_ns, img, meta=meta)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


class RecordingCameraSource:
    """One camera of a recording as a FrameSource.

    realtime=True sleeps so frames come at their recorded rate (a stand-in camera); loop=True
    starts again at the end with timestamps continuing forward. ``epoch_ns`` (monotonic) is when
    recording time t0 plays: sources of one station share it, so the RGB and thermal stand-ins
    stay in step, and a reopened source (reconnect) resumes at "now" like a real camera instead
    of replaying from the start. Timestamps stay the recording's; the capture thread restamps
    frames in live mode.
    """

    def __init__(self, path: str | Path, camera: str, *, realtime: bool = False, loop: bool = False,
                 name: str | None = None, epoch_ns: int | None = None):
        from edge.io.recording import open_recording

        self.name = name or camera
        self._rec = open_recording(path)
        self._camera = camera
        self._realtime, self._loop = realtime, loop
        self._src = self._open()
        rows = self._rec.rows[camera]
        self._t_first = rows[0][1] if rows else 0
        frame_ns = int(1e9 / max(self.meta.fps, 1e-3))
        self._loop_ns = (rows[-1][1] - self._t_first + frame_ns) if rows else frame_ns
        self._t_offset_ns = 0
        self._epoch_ns = epoch_ns
        self._synced = epoch_ns is None
        self._closed = threading.Event()

    def _open(self) -> Any:
        if self._camera == "rgb":
            raw = RecordingJpegSource.open(self._rec)
            if raw is not None:
                return raw
        return self._rec.source(self._camera)

    @property
    def meta(self) -> Any:
        return self._rec.meta.thermal if self._camera == "thermal" else self._rec.meta.rgb

    def _next(self) -> Frame | None:
        f = self._src.read()
        if f is None and self._loop and len(self._src):
            self._src.close()
            self._src = self._open()
            self._t_offset_ns += self._loop_ns
            f = self._src.read()
        if f is not None:
            f.t_ns += self._t_offset_ns
        return f

    def read(self) -> Frame | None:
        if not self._synced:  # (re)opened late: skip to the frame playing now
            self._synced = True
            assert self._epoch_ns is not None  # _synced starts False only when an epoch was given
            elapsed = time.monotonic_ns() - self._epoch_ns
            if self._loop and elapsed > 0:
                self._t_offset_ns = (elapsed // self._loop_ns) * self._loop_ns
            f = self._next()
            while f is not None and f.t_ns - self._t_first < elapsed:
                f = self._next()
        else:
            f = self._next()
        if f is None:
            return None
        if self._realtime:
            if self._epoch_ns is None:
                self._epoch_ns = time.monotonic_ns() - (f.t_ns - self._t_first)
            due = self._epoch_ns + (f.t_ns - self._t_first)
            wait_s = (due - time.monotonic_ns()) / 1e9
            if wait_s > 0 and self._closed.wait(wait_s):
                return None
        return f

    def close(self) -> None:
        self._closed.set()
        self._src.close()


class RecordingJpegSource:
    """The RGB camera of a recording whose video is MJPEG, read as compressed packets: the same
    frames, indices and times as ``Recording.source('rgb')``, as ``JpegFrame``s (decoded when
    used), like an MJPEG camera delivers them."""

    def __init__(self, rec: Any, packets: JpegPacketReader, video: Path):
        self.name = "rgb"
        self._rows = rec.rows["rgb"]
        self._packets, self._video = packets, video
        self._next = 0

    @classmethod
    def open(cls, rec: Any) -> RecordingJpegSource | None:
        """None when the video is not MJPEG (or cannot be opened: RecordingSource says why)."""
        video = rec.path / rec.meta.rgb.file
        packets = JpegPacketReader.open(video)
        return None if packets is None else cls(rec, packets, video)

    def __len__(self) -> int:
        return len(self._rows)

    def read(self) -> Frame | None:
        if self._next >= len(self._rows):
            return None
        idx, t_ns, _ = self._rows[self._next]
        buf = self._packets.read()
        if buf is None:
            from edge.io.recording import RecordingError

            raise RecordingError(f"{self._video}: ends after {self._next} frames but timestamps.csv lists "
                                 f"{len(self._rows)}")
        self._next += 1  # first: a damaged packet (CorruptFrame) is skipped, the next read goes on
        return JpegFrame(self.name, idx, t_ns, buf)

    def close(self) -> None:
        self._packets.close()


# ----------------------------------------------------------------------------- faults


@dataclass
class FaultPlan:
    """Faults keyed by the camera's running frame count, shared by every reopened source of one
    camera so each fault fires once (a reconnect does not replay it)."""

    faults: dict[int, tuple[str, float]] = field(default_factory=dict)
    count: int = 0
    fired: list[str] = field(default_factory=list)
    jump_ns: int = 0
    unavailable_until_s: float = 0.0  # monotonic s until which opening fails (disconnect@N:S)

    @classmethod
    def parse(cls, specs: list[str]) -> FaultPlan:
        plan = cls()
        for spec in specs:
            m = FAULT_RE.match(spec)
            if not m:
                raise ValueError(f"fault {spec!r} not understood; use stall@N:S, disconnect@N[:S], corrupt@N, ts_jump@N:S")
            plan.faults[int(m.group(2))] = (m.group(1), float(m.group(3) or 0))
        return plan


class FaultySource:
    """Wraps a source; at the planned frame numbers: stall (block S seconds), disconnect (the
    stream ends: read() -> None now and after; the device cannot be reopened for S seconds),
    corrupt (a truncated image; an MJPEG frame is cut in half, which read() reports as
    CorruptFrame), ts_jump (timestamps from here on move S seconds back)."""

    def __init__(self, inner: FrameSource, plan: FaultPlan):
        self.inner = inner
        self.name = inner.name
        self.plan = plan
        self._dead = False
        self._closed = threading.Event()

    def read(self) -> Frame | None:
        if self._dead:
            return None
        f = self.inner.read()
        if f is None:
            return None
        plan = self.plan
        kind, arg = plan.faults.pop(plan.count, (None, 0.0))
        plan.count += 1
        if kind:
            plan.fired.append(f"{kind}@{plan.count - 1}")
        if kind == "stall":
            if self._closed.wait(arg):
                return None
        elif kind == "disconnect":
            self._dead = True
            plan.unavailable_until_s = time.monotonic() + arg
            return None
        elif kind == "corrupt":
            if isinstance(f, JpegFrame):  # cut in half: read() raises CorruptFrame, as for a real frame
                f = JpegFrame(f.camera, f.index, f.t_ns, f.jpeg[: f.jpeg.size // 2], f.meta)
            else:
                f.image = f.image[: max(1, f.image.shape[0] // 2)]
        elif kind == "ts_jump":
            plan.jump_ns += int(arg * 1e9)
        f.t_ns -= plan.jump_ns
        return f

    def close(self) -> None:
        self._closed.set()
        self.inner.close()


# ----------------------------------------------------------------------------- factory


def source_opener(camera: str, cfg: CameraConfig, *, live: bool = True, epoch_ns: int | None = None,
                  capture_factory: Callable[..., Any] = cv2.VideoCapture) -> Callable[[], FrameSource]:
    """A function that opens this camera's source (called again on every reconnect).

    camera: 'rgb' or 'thermal' -- which kind of frames the source must deliver.
    epoch_ns: recording stand-ins only: monotonic time their recording starts playing (shared by
        a station's cameras so they stay in step).
    """
    plan = FaultPlan.parse(cfg.faults) if cfg.faults else None
    path = cfg.path  # already resolved against the config file's folder

    def open_() -> FrameSource:
        src: FrameSource
        if plan is not None and time.monotonic() < plan.unavailable_until_s:
            raise SourceError(f"{camera}: device unavailable (injected disconnect)")
        if cfg.kind == "recording":
            realtime = cfg.realtime and live
            assert path is not None  # CameraConfig requires a path for kind=recording
            src = RecordingCameraSource(path, camera, realtime=realtime, loop=cfg.loop,
                                        epoch_ns=epoch_ns if realtime else None)
        elif camera == "thermal":
            src = Y16Source(camera, cfg, cfg.url or path, capture_factory)
        else:
            src = ColorSource(camera, cfg, cfg.url or path, capture_factory)
        return FaultySource(src, plan) if plan is not None else src

    return open_
