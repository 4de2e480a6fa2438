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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.io.jpegframes import decode_jpeg
from edge.io.mkv import Gray16MkvReader, Gray16MkvWriter, MkvError
from edge.thermal.radiometry import (
    UNIT_SCALE_K as THERMAL_UNITS,  # kelvin per count, by unit name
)
from edge.types import FFC_STATES, Frame

FORMAT_NAME = "thermal-edge-recording"
FORMAT_VERSION = 2  # what the writer writes
READ_VERSIONS = (1, 2)  # v1: thermal.mkv is FFV1; v2: zlib-compressed raw gray16le (FORMAT.md)
TIMESTAMP_COLUMNS = ("camera", "index", "t_ns", "ffc_state")

# OpenCV warns on every 16-bit open that "BGR conversion turned OFF" -- which is exactly what we
# asked for. Keep its errors, drop that noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class RecordingError(ValueError):
    """A recording is missing, malformed or inconsistent. The message is one line and names
    the file (and where possible the line or key) at fault."""


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


def _load_meta(path: Path) -> StreamMeta:
    meta_file = path / "stream.json"
    if not path.is_dir():
        raise RecordingError(f"{path}: recording folder not found")
    if not meta_file.is_file():
        raise RecordingError(f"{meta_file}: missing (not a recording folder?)")
    try:
        raw = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise RecordingError(f"{meta_file}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    try:
        if raw.get("format") != FORMAT_NAME:
            raise RecordingError(f"{meta_file}: 'format' is {raw.get('format')!r}, expected {FORMAT_NAME!r}")
        if raw.get("version") not in READ_VERSIONS:
            raise RecordingError(f"{meta_file}: 'version' is {raw.get('version')!r}; this reader supports "
                                 f"{', '.join(map(str, READ_VERSIONS))}")
        cams = {}
        for name in ("rgb", "thermal"):
            c = raw["cameras"][name]
            cams[name] = CameraMeta(
                id=str(c["id"]), width=int(c["width"]), height=int(c["height"]), fps=float(c["fps"]),
                pixel_format=str(c["pixel_format"]), file=str(c["file"]), units=c.get("units"),
            )
        if cams["thermal"].units not in THERMAL_UNITS:
            raise RecordingError(
                f"{meta_file}: cameras.thermal.units is {cams['thermal'].units!r}; allowed: {sorted(THERMAL_UNITS)}")
        return StreamMeta(
            station_id=str(raw["station_id"]), start_utc=str(raw["start_utc"]), t0_ns=int(raw.get("t0_ns", 0)),
            rgb=cams["rgb"], thermal=cams["thermal"], extra=dict(raw.get("extra", {})),
        )
    except KeyError as e:
        raise RecordingError(f"{meta_file}: missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, RecordingError):
            raise
        raise RecordingError(f"{meta_file}: bad value: {e}") from None


def _load_timestamps(path: Path) -> dict[str, list[tuple[int, int, str]]]:
    """Return {'rgb': [(index, t_ns, ffc_state)...], 'thermal': [...]}, each sorted by index."""
    ts_file = path / "timestamps.csv"
    if not ts_file.is_file():
        raise RecordingError(f"{ts_file}: missing")
    rows: dict[str, list[tuple[int, int, str]]] = {"rgb": [], "thermal": []}
    with open(ts_file, newline="") as f:
        reader = csv.reader(f)
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
    ``decoder`` says how frames are read: 'gray16-zlib' (v2 thermal, parsed and inflated here),
    'jpeg-packets' (MJPEG read undecoded, decode_jpeg on the frames asked for) or 'ffmpeg'.
    """

    def __init__(self, path: Path, camera: str, meta: CameraMeta, rows: list[tuple[int, int, str]],
                 decode: set[int] | None = None):
        """decode: frame indices to decode (None = all). Other frames come back with
        ``image=None`` -- a replay that knows which RGB frames pairing will use skips the rest,
        which is most of them at 30 fps RGB vs 8.7 Hz thermal."""
        self.name = camera
        self._decode = decode
        self.path = path
        self.meta = meta
        self._rows = rows
        self._next = 0
        self._video = video = path / meta.file
        if not video.is_file():
            raise RecordingError(f"{video}: missing ({camera} video named in stream.json)")
        self._mkv: Gray16MkvReader | None = None
        self._cap: Any = None
        if camera == "thermal":
            try:
                self._mkv = Gray16MkvReader.open(video)
            except MkvError as e:
                raise RecordingError(f"{video}: damaged Matroska header: {e}") from None
        if self._mkv is not None:
            if (self._mkv.height, self._mkv.width) != (meta.height, meta.width):
                self._mkv.close()
                raise RecordingError(f"{video}: frames are {self._mkv.width}x{self._mkv.height}, stream.json says "
                                     f"{meta.width}x{meta.height}")
            self._blocks = self._mkv.frames()
            self.decoder = "gray16-zlib"
            return
        params = [cv2.CAP_PROP_CONVERT_RGB, 0] if camera == "thermal" else []
        self._cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            raise RecordingError(f"{video}: OpenCV cannot open it")
        # MJPEG packets are whole JPEG images: read them undecoded and decode only the frames
        # asked for (decode_jpeg: libjpeg-turbo, ~1/3 of cv2.imdecode's CPU), instead of FFmpeg
        # decoding every frame.
        fourcc = int(self._cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")
        self._raw_jpeg = (camera == "rgb" and decode is not None and fourcc.upper() == "MJPG"
                          and self._cap.set(cv2.CAP_PROP_FORMAT, -1))
        self.decoder = "jpeg-packets" if self._raw_jpeg else "ffmpeg"

    def __len__(self) -> int:
        return len(self._rows)

    def _ends_early(self, why: str = "") -> RecordingError:
        return RecordingError(f"{self._video}: ends after {self._next} frames but timestamps.csv lists "
                              f"{len(self._rows)}{f' ({why})' if why else ''}")

    def _read_mkv(self, idx: int, wanted: bool) -> np.ndarray | None:
        assert self._mkv is not None
        try:
            block = next(self._blocks, None)
            if block is None:
                raise self._ends_early()
            return self._mkv.decode(block) if wanted else None
        except MkvError as e:
            if e.truncated:
                raise self._ends_early(f"frame {idx} cut short: {e}") from None
            raise RecordingError(f"{self._video}: frame {idx} is corrupt: {e}") from None

    def _read_cap(self, idx: int, wanted: bool) -> np.ndarray | None:
        if not wanted and not self._raw_jpeg:
            ok, img = self._cap.grab(), None
        else:
            ok, img = self._cap.read()
            if ok and self._raw_jpeg:
                img = decode_jpeg(img.reshape(-1)) if wanted else None
                if wanted and img is None:
                    raise RecordingError(f"{self._video}: frame {idx} is not a decodable JPEG")
        if not ok or (wanted and img is None):
            raise self._ends_early()
        return img

    def read(self) -> Frame | None:
        if self._next >= len(self._rows):
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
        else:
            self._cap.release()


class Recording:
    """An opened recording folder: ``meta``, and ``source('rgb' | 'thermal')``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = _load_meta(self.path)
        self.rows = _load_timestamps(self.path)

    def source(self, camera: str, decode: set[int] | None = None) -> RecordingSource:
        cam_meta = self.meta.rgb if camera == "rgb" else self.meta.thermal
        return RecordingSource(self.path, camera, cam_meta, self.rows[camera], decode)

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


class RecordingWriter:
    """Writes a v2 recording. Thermal frames must be (h,w) uint16; RGB (H,W,3) uint8 BGR.

    RGB is stored as MJPEG in .avi (FFmpeg's default quality): small enough, fast to decode, and lossy
    compression of the RGB image does not touch temperatures. Thermal is raw gray16le, zlib-compressed
    in Matroska (Gray16MkvWriter): bit-exact, and 5-7x cheaper to read back than v1's FFV1.
    """

    def __init__(self, path: str | Path, meta: StreamMeta):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self._rows: list[tuple[str, int, int, str]] = []
        self._n = {"rgb": 0, "thermal": 0}
        r, t = meta.rgb, meta.thermal
        self._rgb = cv2.VideoWriter(
            str(self.path / r.file), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"MJPG"), r.fps, (r.width, r.height))
        if not self._rgb.isOpened():
            raise RecordingError(f"{self.path / r.file}: OpenCV could not open the video writer (FFmpeg backend missing?)")
        self._thermal = Gray16MkvWriter(self.path / t.file, t.width, t.height, t.fps,
                                        app_name=f"thermal-edge recording v{FORMAT_VERSION}")

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
            self._rgb.write(image)
        else:
            raise ValueError(f"camera={camera!r}; allowed: 'rgb', 'thermal'")
        idx = self._n[camera]
        self._n[camera] += 1
        self._rows.append((camera, idx, int(t_ns), ffc_state if camera == "thermal" else ""))
        return idx

    def close(self, truth: dict[str, Any] | None = None) -> None:
        self._rgb.release()
        self._thermal.close()
        with open(self.path / "timestamps.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(TIMESTAMP_COLUMNS)
            rows = sorted(self._rows, key=lambda r: (r[2], r[0] != "thermal"))
            w.writerows(rows)
        if truth is not None:
            (self.path / "truth.json").write_text(json.dumps(truth, indent=1))
        # stream.json last: its presence marks a complete recording
        (self.path / "stream.json").write_text(json.dumps(self.meta.to_json(), indent=2) + "\n")

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._rgb.release()
            self._thermal.close()
