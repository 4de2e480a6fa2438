"""Matroska for thermal video (recording format v2): gray16le blocks, zlib-compressed.

``Gray16MkvWriter`` writes (h,w) uint16 frames as one V_UNCOMPRESSED gray16le video track whose
blocks are zlib-compressed through the container's standard ContentCompression; FFmpeg, OpenCV
and players read it as plain 16-bit frames. ``Gray16MkvReader`` parses exactly that layout (a
few element headers per frame, one inflate) -- 5-7x cheaper than decoding v1's FFV1 -- and
raises ``MkvError`` for anything else, so the caller can fall back to OpenCV. Only numpy, zlib
and the standard library are needed (a station without an ffmpeg binary records it).
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# Element IDs from the Matroska specification (RFC 9559).
_EBML, _DOC_TYPE, _SEGMENT, _INFO, _TRACKS, _CLUSTER = 0x1A45DFA3, 0x4282, 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
_TRACK_ENTRY, _CODEC_ID, _VIDEO, _PIXEL_W, _PIXEL_H, _COLOUR_SPACE = 0xAE, 0x86, 0xE0, 0xB0, 0xBA, 0x2EB524
_CONTENT_ENCODINGS, _CONTENT_ENCODING, _ENC_SCOPE, _ENC_TYPE, _COMPRESSION, _COMP_ALGO = (
    0x6D80, 0x6240, 0x5032, 0x5033, 0x5034, 0x4254)
_SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK, _CLUSTER_TIME = 0xA3, 0xA0, 0xA1, 0xE7
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


class MkvError(Exception):
    """Malformed or cut-short Matroska; ``truncated`` when the file simply ends mid-element."""

    def __init__(self, msg: str, truncated: bool = False):
        super().__init__(msg)
        self.truncated = truncated


class _MkvTrackWriter:
    """One Matroska video track, one cluster per frame, each frame flushed to the OS as it is
    written, and the segment of 'unknown size' until close(): a file cut off by a crash or a
    SIGKILL still reads up to its last whole frame. Block times are ms since the first frame,
    from the frames' own t_ns (players show the real timing, gaps included). The bytes depend
    only on the frames and their times: no UIDs drawn at random, no wall-clock date."""

    def __init__(self, path: str | Path, fps: float, app_name: str, codec_id: bytes, video: bytes,
                 encodings: bytes = b""):
        """codec_id: the track's CodecID; video: its Video element's children; encodings: its
        ContentEncodings element, if any; app_name: MuxingApp/WritingApp (part of the bytes)."""
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
        app = app_name.encode()
        # Info: Duration first (float, in time units; close() fills it in), 1 ms time units, app names
        info = _el(0x4489, struct.pack(">d", 0.0)) + _uint(0x2AD7B1, 1_000_000) + _el(0x4D80, app) + _el(0x5741, app)
        info_el = _el(_INFO, info)
        self._duration_at = self._segment_at + len(info_el) - len(info) + 3  # past Duration's ID and size
        self._f.write(info_el)
        # TrackNumber 1, TrackUID 1, TrackType 1 (video), no lacing, DefaultDuration (ns)
        track = (_uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 1) + _uint(0x9C, 0) + _el(_CODEC_ID, codec_id)
                 + _uint(0x23E383, round(1e9 / fps)) + _el(_VIDEO, video) + encodings)
        self._f.write(_el(_TRACKS, _el(_TRACK_ENTRY, track)))
        self._f.flush()

    def _write_block(self, data: bytes | memoryview, t_ns: int) -> None:
        if self._t_first is None:
            self._t_first = t_ns
        t_ms = max(self._t_last_ms, (t_ns - self._t_first) // 1_000_000)  # never backwards
        self._t_last_ms = t_ms
        # SimpleBlock: track 1 (vint 0x81), time relative to the cluster 0, flags 0x80 (keyframe)
        self._f.write(_el(_CLUSTER, _uint(0xE7, t_ms) + _el(_SIMPLE_BLOCK, b"\x81\x00\x00\x80" + bytes(data))))
        self._f.flush()  # in the OS's hands: a killed writer leaves every frame written so far

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


class Gray16MkvWriter(_MkvTrackWriter):
    """Writes (h,w) uint16 frames as one Matroska video track: V_UNCOMPRESSED gray16le, each
    block zlib-compressed (ContentCompression, algorithm 0)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, app_name: str = "thermal-edge"):
        """app_name: the MuxingApp/WritingApp text in the file's Info (part of its bytes)."""
        compression = _el(_CONTENT_ENCODINGS, _el(_CONTENT_ENCODING, _uint(0x5031, 0) + _uint(_ENC_SCOPE, 1)
                                                  + _uint(_ENC_TYPE, 0) + _el(_COMPRESSION, _uint(_COMP_ALGO, 0))))
        super().__init__(path, fps, app_name, b"V_UNCOMPRESSED",
                         _uint(_PIXEL_W, width) + _uint(_PIXEL_H, height) + _el(_COLOUR_SPACE, GRAY16LE_FOURCC),
                         compression)

    def write(self, image: np.ndarray, t_ns: int) -> None:
        """image: (h,w) uint16; t_ns: capture time (block time = ms since the first frame)."""
        self._write_block(zlib.compress(np.ascontiguousarray(image, "<u2").data, ZLIB_LEVEL), t_ns)


class MjpegMkvWriter(_MkvTrackWriter):
    """Writes JPEG images as one Matroska V_MJPEG track, each image stored as given: an MJPEG
    camera's packets kept bit-exact (no decode, no re-encode). FFmpeg and OpenCV play it."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, app_name: str = "thermal-edge"):
        super().__init__(path, fps, app_name, b"V_MJPEG", _uint(_PIXEL_W, width) + _uint(_PIXEL_H, height))

    def write(self, jpeg: bytes | np.ndarray, t_ns: int) -> None:
        """jpeg: one whole JPEG image (bytes or (N,) uint8); t_ns: capture time."""
        self._write_block(np.ascontiguousarray(jpeg, np.uint8).reshape(-1).data if isinstance(jpeg, np.ndarray)
                          else jpeg, t_ns)


class Gray16MkvReader:
    """Reads what Gray16MkvWriter writes, without FFmpeg: walks the Matroska elements (two file
    reads per frame: a cluster header, then the cluster) and inflates each block with zlib.
    ``open`` returns None for a file in any other layout (FFV1, another container), which the
    caller hands to FFmpeg instead. Raises MkvError for damage."""

    def __init__(self, f: Any, width: int, height: int, codec: str = "gray16"):
        """codec: 'gray16' (blocks are zlib-compressed gray16le: ``decode``) or 'mjpeg' (blocks
        are whole JPEG images, as MjpegMkvWriter stores them; the caller decodes them)."""
        self._f = f
        self.codec = codec
        self.width, self.height = width, height
        self.frame_bytes = width * height * 2

    @classmethod
    def open(cls, path: str | Path) -> Gray16MkvReader | None:
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
    def _header(cls, f: Any) -> Gray16MkvReader | None:
        if f.read(4) != _EBML.to_bytes(4, "big"):
            return None  # not Matroska (e.g. an AVI): FFmpeg's business
        f.seek(0)
        while (head := _next_head(f)) is not None:
            eid, size = head
            if eid == _SEGMENT:
                continue  # descend
            if eid == _CLUSTER:
                raise MkvError("first cluster comes before the track list")
            if size is None:
                raise MkvError(f"element {eid:#x} of unknown size")
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
            codec = bytes(track.get(_CODEC_ID, b"")).rstrip(b"\0")
            if codec == b"V_MJPEG" and not encs:
                return cls(f, _uint_of(video, _PIXEL_W, 0), _uint_of(video, _PIXEL_H, 0), codec="mjpeg")
            if (codec != b"V_UNCOMPRESSED" or not zlib_frames
                    or bytes(video.get(_COLOUR_SPACE, b"")) != GRAY16LE_FOURCC):
                return None  # FFV1 (format v1) or any other layout: FFmpeg decodes it
            return cls(f, _uint_of(video, _PIXEL_W, 0), _uint_of(video, _PIXEL_H, 0))
        raise MkvError("no track list")

    def frames(self) -> Iterator[memoryview]:
        """The stored block of each frame in turn (still compressed). ``block_ms`` is the time of
        the block just yielded (its cluster's time plus the block's offset, ms since the first)."""
        f = self._f
        self.block_ms = 0
        cluster_ms = 0
        while (head := _next_head(f)) is not None:
            eid, size = head
            if eid in (_SEGMENT, _CLUSTER) and size is None:
                continue  # unknown size (a live writer's): its children follow
            if size is None:
                raise MkvError(f"element {eid:#x} at byte {f.tell()} of unknown size")
            at = f.tell()
            if eid == _SEGMENT:
                continue
            body = _read_exact(f, size)
            # a cluster is read whole (our writer's); the children of an unknown-size one come here one by one
            for cid, data in _children(body) if eid == _CLUSTER else [(eid, memoryview(body))]:
                if cid == _CLUSTER_TIME:
                    cluster_ms = int.from_bytes(data, "big")
                elif cid == _BLOCK_GROUP:
                    for k, d in _children(data):
                        if k == _BLOCK:
                            self.block_ms = cluster_ms + _block_offset_ms(d)
                            yield self._payload(d, at)
                elif cid == _SIMPLE_BLOCK:
                    self.block_ms = cluster_ms + _block_offset_ms(data)
                    yield self._payload(data, at)

    @staticmethod
    def _payload(block: memoryview, at: int) -> memoryview:
        # track number 1 (vint 0x81), 2-byte relative time, flags: lacing (0x06) would pack several frames
        if len(block) < 4 or block[0] != 0x81 or block[3] & 0x06:
            raise MkvError(f"block in the cluster at byte {at} is not an unlaced block of track 1")
        return block[4:]

    def decode(self, block: bytes | memoryview) -> np.ndarray:
        """(h,w) uint16 from one stored block; MkvError if it does not inflate to one frame."""
        try:
            raw = zlib.decompress(block, bufsize=self.frame_bytes)
        except zlib.error as e:
            raise MkvError(f"zlib: {e}") from None
        if len(raw) != self.frame_bytes:
            raise MkvError(f"{len(raw)} bytes, expected {self.frame_bytes} (uint16 {self.height}x{self.width})")
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
            raise MkvError(f"bad element header at byte {base + pos}", truncated=pos + n + m > len(buf))
    except IndexError:
        raise MkvError(f"element header cut short at byte {base + pos}", truncated=True) from None
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
        raise MkvError(f"file ends {n - len(b)} bytes before the end of an element", truncated=True)
    return b


def _children(buf: bytes | memoryview) -> list[tuple[int, memoryview]]:
    """(id, data) of the elements in a master's data, read whole: an element that does not fit
    is damage, not a file cut short."""
    buf, pos, out = memoryview(buf), 0, []
    while pos < len(buf):
        try:
            eid, size, start = _head(buf, pos)
        except MkvError as e:
            raise MkvError(f"{e} of its parent element") from None
        if size is None or start + size > len(buf):
            raise MkvError(f"element {eid:#x} runs past its parent")
        out.append((eid, buf[start:start + size]))
        pos = start + size
    return out


def _block_offset_ms(block: memoryview) -> int:
    """A block's signed 16-bit time relative to its cluster (after the 1-byte track number)."""
    return int.from_bytes(block[1:3], "big", signed=True) if len(block) >= 3 else 0


def _uint_of(elements: dict[int, memoryview], eid: int, default: int) -> int:
    return int.from_bytes(elements[eid], "big") if eid in elements else default
