"""Recording format v2 (see sample_streams/FORMAT.md): reader and writer; reads v1 too.

A recording is a folder with stream.json, an RGB video, a lossless 16-bit thermal video
(Matroska) and timestamps.csv holding every frame of both cameras on one monotonic clock. The
reader yields ``Frame`` objects per camera through the same ``read()`` interface a live camera
source has, so the pipeline cannot tell a replay from a station.

Thermal storage: v1 wrote FFV1 gray16le (cv2.VideoWriter); FFV1's range coder costs ~1.4 ms
per 160x120 frame to decode, most of a pair's non-detector budget. v2 writes the frames as
uncompressed gray16le blocks (Matroska V_UNCOMPRESSED, fourcc Y1\0\x10) zlib-compressed by
the container's standard ContentCompression (edge/io/mkv.py): FFmpeg, OpenCV and players still
read it, and our reader parses the Matroska itself and inflates the block with zlib, 5-7x
cheaper than FFV1 for ~1.6x the bytes. Only numpy, zlib and the standard library
are needed to write it, so a station without an ffmpeg binary records it. Files that are not
this layout (v1 FFV1, anything else FFmpeg decodes) are read through OpenCV as before.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
)

from edge.configbase import format_error
from edge.errors import UserError
from edge.io.jpegframes import JpegPacketReader, decode_jpeg
from edge.io.mkv import Gray16MkvReader, Gray16MkvWriter, MjpegMkvWriter, MkvError
from edge.io.pairing import PairingConfig, paired
from edge.thermal.radiometry import (
    UNIT_SCALE_K as THERMAL_UNITS,  # kelvin per count, by unit name
)
from edge.types import FFC_STATES, ID_PATTERN, Frame, FramePair

FORMAT_NAME = "thermal-edge-recording"
FORMAT_VERSION = 2  # what the writer writes
READ_VERSIONS = (1, 2)  # v1: thermal.mkv is FFV1; v2: zlib-compressed raw gray16le (FORMAT.md)
TIMESTAMP_COLUMNS = ("camera", "index", "t_ns", "ffc_state")

# OpenCV warns on every 16-bit open that "BGR conversion turned OFF" -- which is exactly what we
# asked for. Keep its errors, drop that noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class RecordingError(UserError, ValueError):
    """A recording is missing, malformed or inconsistent. The message is one line and names
    the file (and where possible the line or key) at fault."""


# Why a frame listed in timestamps.csv could not be delivered (RecordingSource.lost keys).
LOSS_ENDS_EARLY = "video ends early"  # a file cut short (full disk, power cut, killed writer)
LOSS_CORRUPT = "corrupt frame"  # a frame that is there but does not decode to the declared size
LOSS_CUT_ROW = "timestamps.csv row cut short"  # the writer was killed while writing the row
LOSS_NO_ROW = "frame in the video without a timestamps.csv row"  # killed between frame and row


@dataclass
class CameraMeta:
    id: str
    width: int
    height: int
    fps: float
    pixel_format: str  # 'bgr24' for rgb, 'gray16le' for thermal
    file: str
    units: str | None = None  # thermal only: a key of THERMAL_UNITS (required there: _load_meta checks it)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        return d


@dataclass
class StreamMeta:
    station_id: str
    start_utc: str  # ISO 8601 UTC wall time of t_ns == t0_ns
    t0_ns: int
    rgb: CameraMeta
    thermal: CameraMeta
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. 'scenario', 'generator'

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "station_id": self.station_id,
            "start_utc": self.start_utc,
            "t0_ns": self.t0_ns,
            "cameras": {"rgb": self.rgb.to_json(), "thermal": self.thermal.to_json()},
            **({"extra": self.extra} if self.extra else {}),
        }


class _CameraJson(BaseModel):
    """cameras.<name> in stream.json (FORMAT.md); unknown keys are ignored (newer writers)."""

    model_config = ConfigDict(strict=False)
    id: StrictStr | int
    width: int = Field(..., ge=1, le=16384)
    height: int = Field(..., ge=1, le=16384)
    fps: float = Field(..., gt=0, le=1000)
    pixel_format: StrictStr
    file: StrictStr = Field(..., min_length=1)
    units: StrictStr | None = None


class _CamerasJson(BaseModel):
    rgb: _CameraJson
    thermal: _CameraJson


class _StreamJson(BaseModel):
    """stream.json as FORMAT.md defines it: every key checked at once, so a bad file gets all
    its errors in one message (like validate-config), each with its key path."""

    station_id: StrictStr = Field(..., pattern=ID_PATTERN)  # it names feed topics and the calibration file
    start_utc: StrictStr
    t0_ns: int = 0
    cameras: _CamerasJson
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("start_utc")
    @classmethod
    def _iso_utc(cls, v: str) -> str:
        try:  # every message's time is computed from it: refuse it here, not mid-replay
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 UTC time like 2026-11-26T09:00:00.000000Z: {v!r}") from None
        return v


def _check_file(f: Path, what: str) -> None:
    """A RecordingError naming ``f`` unless it is a regular file (``what``: why it is needed)."""
    if f.is_dir():
        raise RecordingError(f"{f}: is a folder, not a file ({what})")
    if not f.is_file():
        raise RecordingError(f"{f}: missing ({what})")


def _read_text(f: Path) -> str:
    try:
        return f.read_bytes().decode("utf-8")
    except OSError as e:
        raise RecordingError(f"{f}: cannot read it: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise RecordingError(f"{f}: not a text file (byte {e.start} is not UTF-8)") from None


def _load_meta(path: Path) -> StreamMeta:
    meta_file = path / "stream.json"
    if not path.is_dir():
        raise RecordingError(f"{path}: recording folder not found")
    _check_file(meta_file, "not a recording folder?")
    try:
        raw = json.loads(_read_text(meta_file))
    except json.JSONDecodeError as e:
        raise RecordingError(f"{meta_file}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict):
        raise RecordingError(f"{meta_file}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != FORMAT_NAME:
        raise RecordingError(f"{meta_file}: 'format' is {raw.get('format')!r}, expected {FORMAT_NAME!r}")
    if raw.get("version") not in READ_VERSIONS:
        raise RecordingError(f"{meta_file}: 'version' is {raw.get('version')!r}; this reader supports "
                             f"{', '.join(map(str, READ_VERSIONS))}")
    try:
        m = _StreamJson.model_validate(raw)
    except ValidationError as err:
        errors = [format_error(e) for e in err.errors()]
        if len(errors) == 1 and errors[0][1] == "required key is missing":
            raise RecordingError(f"{meta_file}: missing key {errors[0][0].rsplit('.', 1)[-1]!r} "
                                 f"({errors[0][0]})") from None
        raise RecordingError(f"{meta_file}: {len(errors)} error(s): "
                             + "; ".join(f"{k}: {msg}" for k, msg in errors)) from None
    cams = {name: CameraMeta(id=str(c.id), width=c.width, height=c.height, fps=c.fps, pixel_format=c.pixel_format,
                             file=c.file, units=c.units)
            for name, c in (("rgb", m.cameras.rgb), ("thermal", m.cameras.thermal))}
    if cams["thermal"].units not in THERMAL_UNITS:
        raise RecordingError(
            f"{meta_file}: cameras.thermal.units is {cams['thermal'].units!r}; allowed: {sorted(THERMAL_UNITS)}")
    return StreamMeta(station_id=m.station_id, start_utc=m.start_utc, t0_ns=m.t0_ns,
                      rgb=cams["rgb"], thermal=cams["thermal"], extra=dict(m.extra))


def _load_timestamps(path: Path, cut_rows: dict[str, int] | None = None) -> dict[str, list[tuple[int, int, str]]]:
    """Return {'rgb': [(index, t_ns, ffc_state)...], 'thermal': [...]}, each sorted by index.

    A last row without its line end is what a writer killed mid-row leaves (every row the writer
    completes ends in one): it is dropped, whatever it parses to (its time may be cut short),
    and counted in ``cut_rows`` ({camera or '?': 1})."""
    ts_file = path / "timestamps.csv"
    _check_file(ts_file, "the frame times of the recording")
    rows: dict[str, list[tuple[int, int, str]]] = {"rgb": [], "thermal": []}
    text = _read_text(ts_file)
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith(("\n", "\r")):
        cam = lines[-1].split(",", 1)[0]
        if cut_rows is not None:
            cut_rows[cam if cam in rows else "?"] = cut_rows.get(cam if cam in rows else "?", 0) + 1
        lines.pop()
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(header[:4]) != TIMESTAMP_COLUMNS:
        raise RecordingError(f"{ts_file}: header must start with {','.join(TIMESTAMP_COLUMNS)}")
    for lineno, row in enumerate(reader, start=2):
        try:
            cam, idx, t_ns, ffc = row[0], int(row[1]), int(row[2]), (row[3] or "none")
        except (IndexError, ValueError):
            raise RecordingError(f"{ts_file}:{lineno}: malformed row {row!r}") from None
        if cam not in rows:
            raise RecordingError(f"{ts_file}:{lineno}: unknown camera {cam!r} (allowed: rgb, thermal)")
        if ffc not in FFC_STATES:
            raise RecordingError(f"{ts_file}:{lineno}: ffc_state {ffc!r} not in {FFC_STATES}")
        rows[cam].append((idx, t_ns, ffc))
    for cam, lst in rows.items():
        lst.sort()
        for expect, (idx, _, _) in enumerate(lst):
            if idx != expect:
                raise RecordingError(f"{ts_file}: {cam} frame indices not contiguous at {idx} (expected {expect})")
    return rows


class RecordingSource:
    """One camera of a recording, read frame by frame (``read()`` -> Frame, None at the end).

    Raises RecordingError if the video ends before the timestamp table does, or a frame is
    damaged or has the wrong shape/dtype -- a truncated recording must not pass silently.
    With ``tolerate_loss`` (replay: a capture cut short by a full disk or a power cut is never
    lost whole) it instead skips a damaged frame, ends where the video ends, and counts every
    frame it could not deliver in ``lost`` ({reason: count}; ``loss_detail``: the first
    message per reason, naming the file and frame).
    ``decoder`` says how frames are read: 'gray16-zlib' (v2 thermal, parsed and inflated here),
    'jpeg-packets' (MJPEG read undecoded by JpegPacketReader, decode_jpeg on the frames asked for)
    or 'ffmpeg'.
    """

    def __init__(self, path: Path, camera: str, meta: CameraMeta, rows: list[tuple[int, int, str]],
                 decode: set[int] | None = None, tolerate_loss: bool = False):
        """decode: frame indices to decode (None = all). Other frames come back with
        ``image=None`` -- a replay that knows which RGB frames pairing will use skips the rest,
        which is most of them at 30 fps RGB vs 8.7 Hz thermal."""
        self.name = camera
        self.tolerate_loss = tolerate_loss
        self.lost: dict[str, int] = {}
        self.loss_detail: dict[str, str] = {}
        self._decode = decode
        self.path = path
        self.meta = meta
        self._rows = rows
        self._next = 0
        self._video = video = path / meta.file
        _check_file(video, f"{camera} video named in stream.json")
        self._mkv: Gray16MkvReader | None = None
        self._packets: JpegPacketReader | None = None
        self._cap: Any = None
        if video.stat().st_size == 0:
            raise RecordingError(f"{video}: empty file (0 bytes; the recording was cut off before its first frame)")
        try:
            self._mkv = Gray16MkvReader.open(video)
        except MkvError as e:
            raise RecordingError(f"{video}: damaged Matroska header: {e}") from None
        except OSError as e:
            raise RecordingError(f"{video}: cannot read it: {e.strerror}") from None
        if self._mkv is not None and self._mkv.codec != ("gray16" if camera == "thermal" else "mjpeg"):
            self._mkv.close()
            self._mkv = None  # not a layout we parse for this camera: FFmpeg's business
        if self._mkv is not None and camera == "rgb":  # MJPEG in Matroska (what `record` writes)
            self._blocks = self._mkv.frames()
            self.decoder = "jpeg-mkv"
            return
        if self._mkv is not None:
            if (self._mkv.height, self._mkv.width) != (meta.height, meta.width):
                self._mkv.close()
                raise RecordingError(f"{video}: frames are {self._mkv.width}x{self._mkv.height}, stream.json says "
                                     f"{meta.width}x{meta.height}")
            self._blocks = self._mkv.frames()
            self.decoder = "gray16-zlib"
            return
        # MJPEG packets are whole JPEG images: read them undecoded and decode only the frames
        # asked for (JpegPacketReader, the one packet reader), instead of FFmpeg decoding every frame.
        if camera == "rgb" and decode is not None:
            self._packets = JpegPacketReader.open(video)
        if self._packets is not None:
            self.decoder = "jpeg-packets"
            return
        params = [cv2.CAP_PROP_CONVERT_RGB, 0] if camera == "thermal" else []
        self._cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            raise RecordingError(f"{video}: OpenCV cannot open it")
        self.decoder = "ffmpeg"

    def __len__(self) -> int:
        return len(self._rows)

    def _ends_early(self, why: str = "") -> RecordingError:
        e = RecordingError(f"{self._video}: ends after {self._next} frames but timestamps.csv lists "
                           f"{len(self._rows)}{f' ({why})' if why else ''}")
        e.ends_early = True  # type: ignore[attr-defined]  # nothing more to read: the rest is lost
        return e

    def _read_mkv(self, idx: int, wanted: bool) -> np.ndarray | None:
        assert self._mkv is not None
        try:
            block = next(self._blocks, None)
            if block is None:
                raise self._ends_early()
            if not wanted:
                return None
            if self._mkv.codec == "mjpeg":
                img = decode_jpeg(np.frombuffer(block, np.uint8))
                if img is None:
                    raise RecordingError(f"{self._video}: frame {idx} is corrupt: not a decodable JPEG")
                return img
            return self._mkv.decode(block)
        except MkvError as e:
            if e.truncated:
                raise self._ends_early(f"frame {idx} cut short: {e}") from None
            raise RecordingError(f"{self._video}: frame {idx} is corrupt: {e}") from None

    def _read_cap(self, idx: int, wanted: bool) -> np.ndarray | None:
        if self._packets is not None:
            jpeg = self._packets.read()
            if jpeg is None:
                raise self._ends_early()
            img = decode_jpeg(jpeg) if wanted else None
            if wanted and img is None:
                raise RecordingError(f"{self._video}: frame {idx} is not a decodable JPEG")
            return img
        if not wanted:
            ok, img = self._cap.grab(), None
        else:
            ok, img = self._cap.read()
        if not ok or (wanted and img is None):
            raise self._ends_early()
        return img

    def read(self) -> Frame | None:
        while True:
            try:
                return self._read_one()
            except RecordingError as e:
                if not self.tolerate_loss:
                    raise
                if self._next >= len(self._rows) or getattr(e, "ends_early", False):
                    self._count_loss(LOSS_ENDS_EARLY, len(self._rows) - self._next, str(e))
                    self._next = len(self._rows)
                    return None
                self._count_loss(LOSS_CORRUPT, 1, str(e))  # skip the damaged frame, go on with the next
                self._next += 1

    def _count_loss(self, reason: str, n: int, detail: str) -> None:
        if n <= 0:
            return
        self.lost[reason] = self.lost.get(reason, 0) + n
        self.loss_detail.setdefault(reason, detail)

    def _read_one(self) -> Frame | None:
        if self._next >= len(self._rows):
            if self.tolerate_loss and self._mkv is not None and self._next == len(self._rows):
                self._next += 1  # once: frames the video holds past the table have no time, so are lost
                try:
                    extra = sum(1 for _ in self._blocks)
                except MkvError:
                    extra = 0  # a cut-short tail: its whole frames were counted, the cut one is no frame
                self._count_loss(LOSS_NO_ROW, extra, f"{self._video}: {extra} frames after the "
                                                     f"{len(self._rows)} listed in timestamps.csv")
            return None
        idx, t_ns, ffc = self._rows[self._next]
        wanted = self._decode is None or idx in self._decode
        img = self._read_mkv(idx, wanted) if self._mkv is not None else self._read_cap(idx, wanted)
        if img is None:  # skipped on purpose: nothing pairs with it
            self._next += 1
            return Frame(self.name, idx, t_ns, None, "none")  # type: ignore[arg-type]
        m = self.meta
        if self.name == "thermal":
            if img.ndim == 3:  # some backends hand back (h,w,1)
                img = img[:, :, 0]
            if img.dtype != np.uint16 or img.shape != (m.height, m.width):
                raise RecordingError(
                    f"{self._video}: frame {idx} is {img.dtype} {img.shape}, expected uint16 ({m.height}, {m.width})")
        elif img.shape[:2] != (m.height, m.width):
            raise RecordingError(f"{self._video}: frame {idx} is {img.shape}, expected ({m.height}, {m.width}, 3)")
        self._next += 1
        return Frame(self.name, idx, t_ns, img, ffc if self.name == "thermal" else "none")

    def close(self) -> None:
        if self._mkv is not None:
            self._mkv.close()
        elif self._packets is not None:
            self._packets.close()
        else:
            self._cap.release()


class Recording:
    """An opened recording folder: ``meta``, and ``source('rgb' | 'thermal')``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = _load_meta(self.path)
        # rows a killed writer left half-written, dropped: {camera: count} (LOSS_CUT_ROW)
        self.cut_rows: dict[str, int] = {}
        self.rows = _load_timestamps(self.path, self.cut_rows)

    def source(self, camera: str, decode: set[int] | None = None, tolerate_loss: bool = False) -> RecordingSource:
        cam_meta = self.meta.rgb if camera == "rgb" else self.meta.thermal
        return RecordingSource(self.path, camera, cam_meta, self.rows[camera], decode, tolerate_loss)

    @property
    def thermal_units(self) -> str:
        """The thermal camera's raw units, a key of THERMAL_UNITS ('centikelvin', ...)."""
        units = self.meta.thermal.units
        assert units is not None  # _load_meta rejects a thermal camera without units
        return units

    @property
    def thermal_scale_k(self) -> float:
        """Kelvin per raw thermal count (0.01 for centi-kelvin)."""
        return THERMAL_UNITS[self.thermal_units]

    def truth(self) -> dict[str, Any] | None:
        f = self.path / "truth.json"
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise RecordingError(f"{f}: invalid JSON at line {e.lineno}: {e.msg}") from None


def open_recording(path: str | Path) -> Recording:
    return Recording(path)


def recording_pairs(path: str | Path, cfg: PairingConfig | None = None) -> Generator[FramePair, None, None]:
    """Every FramePair of a recording in capture-time order (each frame decoded), as replay pairs
    them; the cameras are closed at the end or when the iterator is closed."""
    rec = open_recording(path)
    sources = [rec.source("rgb"), rec.source("thermal")]
    try:
        yield from paired(sources, cfg)
    finally:
        for src in sources:
            src.close()


# What a recording folder holds (FORMAT.md), besides the videos stream.json names: with --force a
# command replacing a recording removes these, and only these.
RECORDING_FILES = ("stream.json", "timestamps.csv", "thermal.mkv", "rgb.avi", "rgb.mkv", "truth.json",
                   "scenario.toml", "calibration.toml", "stream.json.tmp", "timestamps.csv.tmp")


def claim_output_dir(out: str | Path, force: bool, flag: str = "--out") -> Path:
    """Make sure writing a recording into ``out`` overwrites nothing the user did not ask to:
    a non-empty folder is refused (RecordingError naming it and what is in it) unless ``force``,
    which removes the previous recording's files (RECORDING_FILES) and nothing else."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecordingError(f"{out}: exists and is not a folder; give {flag} a new or empty folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        shown = ", ".join(entries[:4]) + (f", ... ({len(entries)} entries)" if len(entries) > 4 else "")
        raise RecordingError(f"{out}: not empty ({shown}); choose another {flag}, or add --force to replace "
                             "the recording in it")
    for name in entries:
        if name in RECORDING_FILES and (out / name).is_file():
            (out / name).unlink()
    return out


class RecordingWriter:
    """Writes a v2 recording. Thermal frames must be (h,w) uint16; RGB (H,W,3) uint8 BGR, or a
    whole JPEG image (``write_jpeg``) when the RGB file is Matroska.

    Crash-safe (a recording killed by SIGKILL or a power cut is never lost whole): stream.json is
    written first, each frame is flushed to its video, then its timestamps.csv row is appended and
    flushed, so every row names a frame already in the video; a killed recording replays up to its
    last complete frame. close() rewrites timestamps.csv in time order and stream.json with what
    only the end knows (capture counters), each atomically (write, then rename).

    RGB storage is chosen by the file named in stream.json: ``rgb.mkv`` (what `record` writes):
    MJPEG in Matroska, one cluster per frame like the thermal track, with an MJPEG camera's
    packets stored as they arrived (bit-exact) and other frames JPEG-encoded at quality
    ``JPEG_QUALITY``; ``rgb.avi`` (the simulator's, unchanged so rendered streams keep their
    bytes): MJPEG in AVI through OpenCV, FFmpeg's default quality, readable only once closed.
    Lossy RGB does not touch temperatures. Thermal is raw gray16le, zlib-compressed in
    Matroska (Gray16MkvWriter): bit-exact, and 5-7x cheaper to read back than v1's FFV1.
    """

    JPEG_QUALITY = 95  # for RGB frames that arrive decoded (YUYV cameras, tests)

    def __init__(self, path: str | Path, meta: StreamMeta):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self._rows: list[tuple[str, int, int, str]] = []
        self._n = {"rgb": 0, "thermal": 0}
        r, t = meta.rgb, meta.thermal
        app = f"thermal-edge recording v{FORMAT_VERSION}"
        self._write_meta()  # first: a recording cut short still says what it is
        self._rgb_mkv: MjpegMkvWriter | None = None
        self._rgb: Any = None
        if r.file.lower().endswith(".mkv"):
            self._rgb_mkv = MjpegMkvWriter(self.path / r.file, r.width, r.height, r.fps, app_name=app)
        else:
            self._rgb = cv2.VideoWriter(
                str(self.path / r.file), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"MJPG"), r.fps, (r.width, r.height))
            if not self._rgb.isOpened():
                raise RecordingError(f"{self.path / r.file}: OpenCV could not open the video writer (FFmpeg backend missing?)")
        self._thermal = Gray16MkvWriter(self.path / t.file, t.width, t.height, t.fps, app_name=app)
        self._ts = open(self.path / "timestamps.csv", "w", newline="")
        self._ts_csv = csv.writer(self._ts)
        self._ts_csv.writerow(TIMESTAMP_COLUMNS)
        self._ts.flush()

    def _write_meta(self) -> None:
        _replace_text(self.path / "stream.json", json.dumps(self.meta.to_json(), indent=2) + "\n")

    def write(self, camera: str, image: np.ndarray, t_ns: int, ffc_state: str = "none") -> int:
        """Append one frame; returns its index within its camera."""
        m = self.meta.rgb if camera == "rgb" else self.meta.thermal
        if ffc_state not in FFC_STATES:  # before writing: a refused frame must not reach the video
            raise ValueError(f"ffc_state={ffc_state!r}; allowed: {FFC_STATES}")
        if camera == "thermal":
            if image.dtype != np.uint16 or image.shape != (m.height, m.width):
                raise ValueError(f"thermal frame must be uint16 ({m.height}, {m.width}), got {image.dtype} {image.shape}")
            self._thermal.write(image, int(t_ns))
        elif camera == "rgb":
            if image.dtype != np.uint8 or image.shape != (m.height, m.width, 3):
                raise ValueError(f"rgb frame must be uint8 ({m.height}, {m.width}, 3), got {image.dtype} {image.shape}")
            if self._rgb_mkv is not None:
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.JPEG_QUALITY])
                if not ok:
                    raise ValueError("rgb frame could not be JPEG-encoded")
                self._rgb_mkv.write(jpeg, int(t_ns))
            else:
                self._rgb.write(image)
        else:
            raise ValueError(f"camera={camera!r}; allowed: 'rgb', 'thermal'")
        return self._row(camera, t_ns, ffc_state)

    def write_jpeg(self, jpeg: np.ndarray | bytes, t_ns: int) -> int:
        """Append one RGB frame as the JPEG image an MJPEG camera delivered, stored bit-exact (no
        decode, no re-encode); the file must be Matroska (rgb.mkv). Returns its index."""
        if self._rgb_mkv is None:
            raise ValueError(f"{self.meta.rgb.file}: JPEG packets are stored only in Matroska (rgb.mkv)")
        self._rgb_mkv.write(jpeg, int(t_ns))
        return self._row("rgb", t_ns, "none")

    def _row(self, camera: str, t_ns: int, ffc_state: str) -> int:
        """After the frame is in its video: its timestamps.csv row, flushed."""
        idx = self._n[camera]
        self._n[camera] += 1
        row = (camera, idx, int(t_ns), ffc_state if camera == "thermal" else "")
        self._rows.append(row)
        self._ts_csv.writerow(row)
        self._ts.flush()
        return idx

    def _close_videos(self) -> None:
        if self._rgb_mkv is not None:
            self._rgb_mkv.close()
        else:
            self._rgb.release()
        self._thermal.close()
        self._ts.close()

    def close(self, truth: dict[str, Any] | None = None) -> None:
        self._close_videos()
        rows = sorted(self._rows, key=lambda r: (r[2], r[0] != "thermal"))  # time order, as v2 always wrote
        _replace_text(self.path / "timestamps.csv",
                      "".join(",".join(map(str, r)) + "\r\n" for r in [TIMESTAMP_COLUMNS, *rows]))
        if truth is not None:
            (self.path / "truth.json").write_text(json.dumps(truth, indent=1))
        self._write_meta()  # again: extra may have grown (record's capture counters)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # what was written stays readable (every row names a frame in the video)
            self._close_videos()


def _replace_text(path: Path, text: str) -> None:
    """Write a file whole or not at all: a reader (or a crash) never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, newline="")
    tmp.replace(path)
