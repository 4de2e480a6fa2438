"""Recording format v2 (see sample_streams/FORMAT.md): reader and writer; reads v1 too.

A recording is a folder with stream.json, an RGB video, a lossless 16-bit thermal video
(Matroska) and timestamps.csv holding every frame of both cameras on one monotonic clock. The
reader yields ``Frame`` objects per camera through the same ``read()`` interface a live camera
source has, so the pipeline cannot tell a replay from a station.

Thermal storage: v1 wrote FFV1 gray16le (cv2.VideoWriter); FFV1's range coder costs ~1.4 ms
per 160x120 frame to decode, most of a pair's non-detector budget. v2 writes the frames as
uncompressed gray16le blocks (Matroska V_UNCOMPRESSED, fourcc Y1\0\x10) zlib-compressed by
the container's standard ContentCompression: FFmpeg, OpenCV and players still read it, and our
reader parses the Matroska itself (a few element headers per frame) and inflates the block
with zlib, 5-7x cheaper than FFV1 for ~1.6x the bytes. Only numpy, zlib and the standard library
are needed to write it, so a station without an ffmpeg binary records it. Files that are not
this layout (v1 FFV1, anything else FFmpeg decodes) are read through OpenCV as before.
"""
from __future__ import annotations

import csv
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from edge.radiometry import UNIT_SCALE_K as THERMAL_UNITS  # kelvin per count, by unit name
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
    units: str | None = None  # thermal only: a key of THERMAL_UNITS

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


# ---- Thermal video, format v2: gray16le blocks, zlib-compressed, in Matroska -----------------
# Element IDs from the Matroska specification (RFC 9559).
_EBML, _DOC_TYPE, _SEGMENT, _INFO, _TRACKS, _CLUSTER = 0x1A45DFA3, 0x4282, 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
_TRACK_ENTRY, _CODEC_ID, _VIDEO, _PIXEL_W, _PIXEL_H, _COLOUR_SPACE = 0xAE, 0x86, 0xE0, 0xB0, 0xBA, 0x2EB524
_CONTENT_ENCODINGS, _CONTENT_ENCODING, _ENC_SCOPE, _ENC_TYPE, _COMPRESSION, _COMP_ALGO = (
    0x6D80, 0x6240, 0x5032, 0x5033, 0x5034, 0x4254)
_SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK = 0xA3, 0xA0, 0xA1
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # 8-byte size field, patched on close
GRAY16LE_FOURCC = b"Y1\x00\x10"  # FFmpeg's raw pixel-format tag for gray16le
ZLIB_LEVEL = 1  # thermal noise leaves little for higher levels: 2 % smaller, 2x slower to write


def _vint(n: int) -> bytes:
    width = 1
    while n >= (1 << (7 * width)) - 1:  # all-ones is reserved for "unknown size"
        width += 1
    return ((1 << (7 * width)) | n).to_bytes(width, "big")


def _el(eid: int, payload: bytes) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _uint(eid: int, v: int) -> bytes:
    return _el(eid, v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big"))


class _MkvError(Exception):
    """Malformed or cut-short Matroska; ``truncated`` when the file simply ends mid-element."""

    def __init__(self, msg: str, truncated: bool = False):
        super().__init__(msg)
        self.truncated = truncated


class Gray16MkvWriter:
    """Writes (h,w) uint16 frames as one Matroska video track: V_UNCOMPRESSED gray16le, each
    block zlib-compressed (ContentCompression, algorithm 0). One cluster per frame, and the
    segment has 'unknown size' until close(): a file cut off by a crash still reads up to its
    last whole frame. Block times are ms since the first frame, from the frames' own t_ns
    (players show the real timing, gaps included). The bytes depend only on the frames and
    their times: no UIDs drawn at random, no wall-clock date."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float):
        self.path = Path(path)
        self._t_first: int | None = None
        self._t_last_ms = 0
        self._frame_ms = 1000.0 / fps
        self._f = open(self.path, "wb")
        # EBML header: EBML v1, IDs <= 4 bytes, sizes <= 8 bytes, DocType matroska v4 (readable as v2)
        self._f.write(_el(_EBML, _uint(0x4286, 1) + _uint(0x42F7, 1) + _uint(0x42F2, 4) + _uint(0x42F3, 8)
                          + _el(_DOC_TYPE, b"matroska") + _uint(0x4287, 4) + _uint(0x4285, 2)))
        self._f.write(_SEGMENT.to_bytes(4, "big") + _UNKNOWN_SIZE)
        self._segment_at = self._f.tell()
        app = f"thermal-edge recording v{FORMAT_VERSION}".encode()
        # Info: Duration first (float, in time units; close() fills it in), 1 ms time units, app names
        info = _el(0x4489, struct.pack(">d", 0.0)) + _uint(0x2AD7B1, 1_000_000) + _el(0x4D80, app) + _el(0x5741, app)
        info_el = _el(_INFO, info)
        self._duration_at = self._segment_at + len(info_el) - len(info) + 3  # past Duration's ID and size
        self._f.write(info_el)
        compression = _el(_CONTENT_ENCODINGS, _el(_CONTENT_ENCODING, _uint(0x5031, 0) + _uint(_ENC_SCOPE, 1)
                                                  + _uint(_ENC_TYPE, 0) + _el(_COMPRESSION, _uint(_COMP_ALGO, 0))))
        # TrackNumber 1, TrackUID 1, TrackType 1 (video), no lacing, DefaultDuration (ns)
        track = (_uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 1) + _uint(0x9C, 0) + _el(_CODEC_ID, b"V_UNCOMPRESSED")
                 + _uint(0x23E383, round(1e9 / fps))
                 + _el(_VIDEO, _uint(_PIXEL_W, width) + _uint(_PIXEL_H, height) + _el(_COLOUR_SPACE, GRAY16LE_FOURCC))
                 + compression)
        self._f.write(_el(_TRACKS, _el(_TRACK_ENTRY, track)))

    def write(self, image: np.ndarray, t_ns: int) -> None:
        """image: (h,w) uint16; t_ns: capture time (block time = ms since the first frame)."""
        if self._t_first is None:
            self._t_first = t_ns
        t_ms = max(self._t_last_ms, (t_ns - self._t_first) // 1_000_000)  # never backwards
        self._t_last_ms = t_ms
        data = zlib.compress(np.ascontiguousarray(image, "<u2").data, ZLIB_LEVEL)
        # SimpleBlock: track 1 (vint 0x81), time relative to the cluster 0, flags 0x80 (keyframe)
        self._f.write(_el(_CLUSTER, _uint(0xE7, t_ms) + _el(_SIMPLE_BLOCK, b"\x81\x00\x00\x80" + data)))

    def close(self) -> None:
        if self._f.closed:
            return
        end = self._f.tell()
        self._f.seek(self._duration_at)
        duration_ms = self._t_last_ms + round(self._frame_ms) if self._t_first is not None else 0
        self._f.write(struct.pack(">d", float(duration_ms)))
        self._f.seek(self._segment_at - 8)
        self._f.write((1 << 56 | (end - self._segment_at)).to_bytes(8, "big"))
        self._f.close()


class Gray16MkvReader:
    """Reads what Gray16MkvWriter writes, without FFmpeg: walks the Matroska elements (two file
    reads per frame: a cluster header, then the cluster) and inflates each block with zlib.
    ``open`` returns None for a file in any other layout (FFV1, another container), which the
    caller hands to FFmpeg instead. Raises _MkvError for damage."""

    def __init__(self, f: Any, width: int, height: int):
        self._f = f
        self.width, self.height = width, height
        self.frame_bytes = width * height * 2

    @classmethod
    def open(cls, path: str | Path) -> "Gray16MkvReader | None":
        f = open(path, "rb")
        try:
            reader = cls._header(f)
        except BaseException:
            f.close()
            raise
        if reader is None:
            f.close()
        return reader

    @classmethod
    def _header(cls, f: Any) -> "Gray16MkvReader | None":
        if f.read(4) != _EBML.to_bytes(4, "big"):
            return None  # not Matroska (e.g. an AVI): FFmpeg's business
        f.seek(0)
        while (head := _next_head(f)) is not None:
            eid, size = head
            if eid == _SEGMENT:
                continue  # descend
            if eid == _CLUSTER:
                raise _MkvError("first cluster comes before the track list")
            if size is None:
                raise _MkvError(f"element {eid:#x} of unknown size")
            body = _read_exact(f, size)
            if eid == _EBML and bytes(dict(_children(body)).get(_DOC_TYPE, b"")) not in (b"matroska", b"webm"):
                return None
            if eid != _TRACKS:
                continue
            entries = [dict(_children(v)) for k, v in _children(body) if k == _TRACK_ENTRY]
            if len(entries) != 1:
                return None  # not what our writer makes: let FFmpeg pick the video track
            track = entries[0]
            video = dict(_children(track.get(_VIDEO, b"")))
            encs = [dict(_children(v)) for k, v in _children(track.get(_CONTENT_ENCODINGS, b""))
                    if k == _CONTENT_ENCODING]
            # absent elements take the spec's defaults: scope 1 (frames), type 0 (compression), zlib
            zlib_frames = len(encs) == 1 and (
                _uint_of(encs[0], _ENC_SCOPE, 1), _uint_of(encs[0], _ENC_TYPE, 0),
                _uint_of(dict(_children(encs[0].get(_COMPRESSION, b""))), _COMP_ALGO, 0)) == (1, 0, 0)
            if (bytes(track.get(_CODEC_ID, b"")).rstrip(b"\0") != b"V_UNCOMPRESSED" or not zlib_frames
                    or bytes(video.get(_COLOUR_SPACE, b"")) != GRAY16LE_FOURCC):
                return None  # FFV1 (format v1) or any other layout: FFmpeg decodes it
            return cls(f, _uint_of(video, _PIXEL_W, 0), _uint_of(video, _PIXEL_H, 0))
        raise _MkvError("no track list")

    def frames(self) -> Iterator[memoryview]:
        """The stored block of each frame in turn (still compressed)."""
        f = self._f
        while (head := _next_head(f)) is not None:
            eid, size = head
            if eid in (_SEGMENT, _CLUSTER) and size is None:
                continue  # unknown size (a live writer's): its children follow
            if size is None:
                raise _MkvError(f"element {eid:#x} at byte {f.tell()} of unknown size")
            at = f.tell()
            if eid == _SEGMENT:
                continue
            body = _read_exact(f, size)
            # a cluster is read whole (our writer's); the children of an unknown-size one come here one by one
            for cid, data in _children(body) if eid == _CLUSTER else [(eid, memoryview(body))]:
                if cid == _BLOCK_GROUP:
                    yield from (self._payload(d, at) for k, d in _children(data) if k == _BLOCK)
                elif cid == _SIMPLE_BLOCK:
                    yield self._payload(data, at)

    @staticmethod
    def _payload(block: memoryview, at: int) -> memoryview:
        # track number 1 (vint 0x81), 2-byte relative time, flags: lacing (0x06) would pack several frames
        if len(block) < 4 or block[0] != 0x81 or block[3] & 0x06:
            raise _MkvError(f"block in the cluster at byte {at} is not an unlaced block of track 1")
        return block[4:]

    def decode(self, block: bytes | memoryview) -> np.ndarray:
        """(h,w) uint16 from one stored block; _MkvError if it does not inflate to one frame."""
        try:
            raw = zlib.decompress(block, bufsize=self.frame_bytes)
        except zlib.error as e:
            raise _MkvError(f"zlib: {e}") from None
        if len(raw) != self.frame_bytes:
            raise _MkvError(f"{len(raw)} bytes, expected {self.frame_bytes} (uint16 {self.height}x{self.width})")
        return np.frombuffer(raw, "<u2").reshape(self.height, self.width).astype(np.uint16)  # own, writable copy

    def close(self) -> None:
        self._f.close()


def _head(buf: bytes | memoryview, pos: int, base: int = 0) -> tuple[int, int | None, int]:
    """(id, data size or None for 'unknown', data start) of the EBML element at buf[pos];
    ``base``: file offset of buf[0], for messages."""
    try:
        n = 9 - buf[pos].bit_length()  # leading zeros + 1 = length; an ID keeps its marker bit
        m = 9 - buf[pos + n].bit_length()
        if n > 4 or m > 8 or pos + n + m > len(buf):
            raise _MkvError(f"bad element header at byte {base + pos}", truncated=pos + n + m > len(buf))
    except IndexError:
        raise _MkvError(f"element header cut short at byte {base + pos}", truncated=True) from None
    eid = int.from_bytes(buf[pos:pos + n], "big")
    size = int.from_bytes(buf[pos + n:pos + n + m], "big") & ((1 << (7 * m)) - 1)
    return eid, (None if size == (1 << (7 * m)) - 1 else size), pos + n + m


def _next_head(f: Any) -> tuple[int, int | None] | None:
    """Read the element header at the file position (None at the end of the file)."""
    at = f.tell()
    buf = f.read(12)
    if not buf:
        return None
    eid, size, n = _head(buf, 0, at)
    f.seek(at + n)
    return eid, size


def _read_exact(f: Any, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _MkvError(f"file ends {n - len(b)} bytes before the end of an element", truncated=True)
    return b


def _children(buf: bytes | memoryview) -> list[tuple[int, memoryview]]:
    """(id, data) of the elements in a master's data, read whole: an element that does not fit
    is damage, not a file cut short."""
    buf, pos, out = memoryview(buf), 0, []
    while pos < len(buf):
        try:
            eid, size, start = _head(buf, pos)
        except _MkvError as e:
            raise _MkvError(f"{e} of its parent element") from None
        if size is None or start + size > len(buf):
            raise _MkvError(f"element {eid:#x} runs past its parent")
        out.append((eid, buf[start:start + size]))
        pos = start + size
    return out


def _uint_of(elements: dict[int, memoryview], eid: int, default: int) -> int:
    return int.from_bytes(elements[eid], "big") if eid in elements else default


class RecordingSource:
    """One camera of a recording, read frame by frame (``read()`` -> Frame, None at the end).

    Raises RecordingError if the video ends before the timestamp table does, or a frame is
    damaged or has the wrong shape/dtype -- a truncated recording must not pass silently.
    ``decoder`` says how frames are read: 'gray16-zlib' (v2 thermal, parsed and inflated here),
    'jpeg-packets' (MJPEG read undecoded, cv2.imdecode on the frames asked for) or 'ffmpeg'.
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
            except _MkvError as e:
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
        # asked for (cv2.imdecode), instead of FFmpeg decoding every frame.
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
        except _MkvError as e:
            if e.truncated:
                raise self._ends_early(f"frame {idx} cut short: {e}") from None
            raise RecordingError(f"{self._video}: frame {idx} is corrupt: {e}") from None

    def _read_cap(self, idx: int, wanted: bool) -> np.ndarray | None:
        if not wanted and not self._raw_jpeg:
            ok, img = self._cap.grab(), None
        else:
            ok, img = self._cap.read()
            if ok and self._raw_jpeg:
                img = cv2.imdecode(img.reshape(-1), cv2.IMREAD_COLOR) if wanted else None
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
    def thermal_scale_k(self) -> float:
        """Kelvin per raw thermal count (0.01 for centi-kelvin)."""
        return THERMAL_UNITS[self.meta.thermal.units or "centikelvin"]

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
            str(self.path / r.file), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), r.fps, (r.width, r.height))
        if not self._rgb.isOpened():
            raise RecordingError(f"{self.path / r.file}: OpenCV could not open the video writer (FFmpeg backend missing?)")
        self._thermal = Gray16MkvWriter(self.path / t.file, t.width, t.height, t.fps)

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
            w.writerows(sorted(self._rows, key=lambda r: (r[2], r[0] != "thermal")))
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
