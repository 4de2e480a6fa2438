"""Make FFmpeg's Matroska output reproducible: same frames -> same file bytes.

FFmpeg's muxer writes a random SegmentUID and TrackUIDs and the wall-clock DateUTC unless the
format-level ``bitexact`` flag is set, which OpenCV's VideoWriter does not expose. We rewrite
those fields in place (same sizes) with values derived from the stream's own content and
recompute the EBML CRC-32 elements of the masters we touched. Nothing else changes, so every
reader (OpenCV, ffprobe) sees the same frames.
"""
from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

SEGMENT, INFO, TRACKS, TAGS = 0x18538067, 0x1549A966, 0x1654AE6B, 0x1254C367
TRACK_ENTRY, TAG, TARGETS = 0xAE, 0x7373, 0x63C0
SEGMENT_UID, DATE_UTC, TRACK_UID, TAG_TRACK_UID, CRC32 = 0x73A4, 0x4461, 0x73C5, 0x63C5, 0xBF
MASTERS = {SEGMENT, INFO, TRACKS, TAGS, TRACK_ENTRY, TAG, TARGETS}


def _vint(buf: bytearray, pos: int, keep_marker: bool) -> tuple[int, int]:
    first = buf[pos]
    n = 1
    while n <= 8 and not first & (0x80 >> (n - 1)):
        n += 1
    if n > 8:
        raise ValueError(f"bad EBML vint at byte {pos}")
    value = first if keep_marker else first & (0xFF >> n)
    for b in buf[pos + 1:pos + n]:
        value = (value << 8) | b
    return value, n


def _children(buf: bytearray, start: int, end: int):
    """Yield (id, header_start, data_start, data_end) for the elements in buf[start:end]."""
    pos = start
    while pos < end:
        eid, n_id = _vint(buf, pos, True)
        size, n_sz = _vint(buf, pos + n_id, False)
        data = pos + n_id + n_sz
        unknown = size == (1 << (7 * n_sz)) - 1
        stop = end if unknown else min(end, data + size)
        yield eid, pos, data, stop
        pos = stop


def _patch(buf: bytearray, start: int, end: int, uid_seed: bytes) -> bool:
    """Rewrite UIDs/dates below buf[start:end]; refresh a leading CRC-32. True if changed."""
    changed = False
    crc_at = None
    for i, (eid, hdr, data, stop) in enumerate(_children(buf, start, end)):
        if eid == CRC32 and i == 0:
            crc_at = (data, stop)
        elif eid == SEGMENT_UID:
            buf[data:stop] = hashlib.sha256(b"segment" + uid_seed).digest()[: stop - data]
            changed = True
        elif eid == DATE_UTC:
            buf[data:stop] = bytes(stop - data)  # 2001-01-01T00:00:00Z, Matroska's epoch
            changed = True
        elif eid in (TRACK_UID, TAG_TRACK_UID):
            # one video track per file: a fixed non-zero UID, the same in Tracks and Tags
            buf[data:stop] = (1).to_bytes(stop - data, "big")
            changed = True
        elif eid in MASTERS:
            changed |= _patch(buf, data, stop, uid_seed)
    if changed and crc_at is not None:
        d, s = crc_at
        buf[d:s] = zlib.crc32(bytes(buf[s:end])).to_bytes(4, "little")
    return changed


def make_reproducible(path: str | Path, uid_seed: bytes) -> None:
    """Rewrite ``path`` (a Matroska file) in place with deterministic UIDs and date."""
    path = Path(path)
    buf = bytearray(path.read_bytes())
    for eid, _, data, stop in _children(buf, 0, len(buf)):
        if eid == SEGMENT:
            _patch(buf, data, stop, uid_seed)
    path.write_bytes(bytes(buf))
