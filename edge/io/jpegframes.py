"""MJPEG frames kept compressed until they are used.

RGB runs at 30 fps but only the ~8.7/s frames that pair with a thermal frame are used, and
decoding a VGA JPEG costs ~1 ms of CPU even with simplejpeg (docs/benchmark.md: 3.07 ms with
cv2.imdecode, 0.97 ms with simplejpeg). Sources that receive MJPEG (edge/io/sources.py) hand on
``JpegFrame``s: the compressed image, checked on arrival from its header (``jpeg_shape``: one
whole JPEG, its size) and decoded on first use (``decode_jpeg``). The live station decodes only
the frames pairing picks (edge/station.py).

``CorruptFrame`` (one frame arrived damaged) is defined here, the lowest layer that raises
it, and re-exported by edge.io.sources, where every other source raises it too.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edge.types import Frame

try:  # libjpeg-turbo straight to BGR: the same pixels as cv2.imdecode at ~1/3 of its CPU (docs/benchmark.md)
    import simplejpeg
except ImportError:  # a platform without its wheel: OpenCV decodes (slower, same pixels)
    simplejpeg = None


class CorruptFrame(ValueError):
    """One frame arrived damaged (short buffer, wrong shape); skipped and counted."""


# JPEG frame markers that carry the image size: SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_FOURCCS = ("MJPG", "JPEG")  # FOURCCs whose frames are whole JPEG images


def jpeg_shape(buf: np.ndarray) -> tuple[int, int, int]:
    """(H, W, 3): the size a whole JPEG image decodes to (IMREAD_COLOR), read from its header
    without decoding it -- 10-20 us for a VGA frame (timeit on this module), against the
    1-3 ms a decode costs (docs/benchmark.md).

    buf: (N,) uint8, one JPEG image (SOI ... SOS, compressed data, EOI). Raises CorruptFrame
    when it is not one: no start-of-image marker, a header segment running past the end, no
    frame header, or no end-of-image marker after the compressed data (a frame cut short, as
    USB packet loss leaves it). Damage inside the compressed data only shows when decoding.
    """
    mv = buf.data  # memoryview(buf): the array's bytes, not copied
    n = len(mv)
    if n < 4 or mv[0] != 0xFF or mv[1] != 0xD8:
        raise CorruptFrame(f"not a JPEG image ({n} bytes, no start-of-image marker)")
    i, shape = 2, None
    while True:  # header segments: FF marker, 16-bit length (itself included), payload
        if i + 4 > n:
            raise CorruptFrame(f"JPEG header cut short at byte {i} of {n}")
        if mv[i] != 0xFF:
            raise CorruptFrame(f"JPEG header damaged at byte {i} of {n} (no segment marker)")
        marker = mv[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD7:  # fill byte / marker without a length
            i += 1 if marker == 0xFF else 2
            continue
        length = (mv[i + 2] << 8) | mv[i + 3]
        if length < 2 or i + 2 + length > n:
            raise CorruptFrame(f"JPEG header segment {marker:#04x} at byte {i} runs past the end ({n} bytes)")
        if marker in _SOF_MARKERS and length >= 8:
            h, w = (mv[i + 5] << 8) | mv[i + 6], (mv[i + 7] << 8) | mv[i + 8]
            shape = (h, w, 3)
        if marker == 0xDA:  # start of scan: compressed data follows
            break
        i += 2 + length
    if shape is None or not shape[0] or not shape[1]:
        raise CorruptFrame(f"JPEG without a usable frame header (size {shape})")
    # FF D9 cannot occur inside compressed data (an FF there is followed by 00 or a restart
    # marker), so finding it near the end means the frame arrived whole; some cameras pad after it
    if mv[max(i, n - 1024):].tobytes().rfind(b"\xff\xd9") < 0:
        raise CorruptFrame(f"JPEG cut short: no end-of-image marker ({n} bytes)")
    return shape


def decode_jpeg(jpeg: np.ndarray) -> np.ndarray | None:
    """(N,) uint8 JPEG -> (H,W,3) uint8 BGR, or None when it cannot be decoded.

    simplejpeg in strict mode takes whole, clean frames (nearly all); anything it objects to,
    recoverable damage included, goes to OpenCV, so what is accepted is exactly what
    cv2.imdecode accepts, and only such frames pay for two tries.
    """
    if simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True)
        except ValueError:
            pass
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


class JpegFrame(Frame):
    """An RGB frame kept JPEG-compressed, as MJPEG cameras, MJPEG streams and recordings deliver it.

    ``image`` decodes on first access ((H,W,3) uint8 BGR, ``decode_jpeg``) and keeps the result, so
    anything that takes a Frame works unchanged; ``shape`` is the decoded size, read from the
    JPEG header. RGB runs at 30 fps but only the ~8.7/s frames that pair with a thermal frame
    are used: the live station decodes just those (after pairing) instead of every frame in
    the capture thread. Construction checks the buffer is one whole JPEG (CorruptFrame if
    not); ``decode()`` raises CorruptFrame, naming camera and frame, for damage inside it.

    jpeg: (N,) uint8, the compressed image (not copied).
    """

    def __init__(self, camera: str, index: int, t_ns: int, jpeg: np.ndarray, meta: dict[str, Any] | None = None):
        self.jpeg = jpeg.reshape(-1)
        try:
            self.shape = jpeg_shape(self.jpeg)
        except CorruptFrame as e:
            raise CorruptFrame(f"{camera} frame {index}: {e}") from None
        super().__init__(camera, index, t_ns, None, "none", {} if meta is None else meta)  # type: ignore[arg-type]

    @property
    def image(self) -> np.ndarray:
        return self._image if self._image is not None else self.decode()

    @image.setter
    def image(self, value: np.ndarray | None) -> None:
        self._image = value

    @property
    def decoded(self) -> bool:
        return self._image is not None

    def decode(self) -> np.ndarray:
        """Decode once (later calls return the same array)."""
        if self._image is None:
            img = decode_jpeg(self.jpeg)
            if img is None or img.shape != self.shape:
                got = "nothing" if img is None else f"{img.shape}"
                raise CorruptFrame(f"{self.camera} frame {self.index}: damaged JPEG ({self.jpeg.size} bytes), "
                                   f"decoding gave {got}, expected {self.shape}")
            self._image = img
        return self._image

    def __repr__(self) -> str:  # without decoding (the dataclass repr would print the image)
        return (f"JpegFrame(camera={self.camera!r}, index={self.index}, t_ns={self.t_ns}, "
                f"jpeg={self.jpeg.size} bytes, shape={self.shape}, decoded={self.decoded})")


def fourcc_of(cap: Any) -> str:
    """The capture's FOURCC as text ('MJPG', 'YUYV', 'H264', ...; '' when unknown)."""
    code = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    return code.to_bytes(4, "little").decode("latin-1").strip("\x00 ").upper() if code > 0 else ""


class JpegPacketReader:
    """An MJPEG video file read as its packets, undecoded -- each is a whole JPEG image: the one
    packet reader of recordings (RecordingSource's 'jpeg-packets' decoder in edge/io/recording.py,
    RecordingJpegSource in edge/io/sources.py). FFmpeg demuxes only; decoding is ``decode_jpeg``
    on the frames that are used (libjpeg-turbo, ~1/3 of cv2.imdecode's CPU)."""

    def __init__(self, cap: Any):
        self._cap = cap

    @classmethod
    def open(cls, video: Any) -> JpegPacketReader | None:
        """None when the file is not MJPEG (JPEG_FOURCCS) or cannot be opened."""
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        if cap.isOpened() and fourcc_of(cap) in JPEG_FOURCCS and cap.set(cv2.CAP_PROP_FORMAT, -1):
            return cls(cap)
        cap.release()
        return None

    def read(self) -> np.ndarray | None:
        """The next packet, (N,) uint8 JPEG bytes; None at the end of the file."""
        ok, buf = self._cap.read()
        return buf.reshape(-1) if ok and buf is not None else None

    def close(self) -> None:
        self._cap.release()
