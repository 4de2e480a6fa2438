"""MJPEG frames kept compressed: the header check that catches frames cut short, the fast
decode (the same pixels as OpenCV), and the lazily decoded JpegFrame. Sources that hand these
on are tested in tests/test_sources.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.io import jpegframes
from edge.io.jpegframes import CorruptFrame, JpegFrame, decode_jpeg, jpeg_shape


def jpeg_bytes(img: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.reshape(-1)


def picture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """(h,w,3) uint8: smooth colour blobs (what JPEG keeps well; pure noise it would not)."""
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2)


def damaged_inside(jpeg: np.ndarray) -> np.ndarray:
    """The JPEG without its quantisation tables: header and end marker intact (capture's check
    passes), but no decoder can decode it -- damage that only shows when decoding."""
    b = bytes(jpeg)
    while (i := b.find(b"\xff\xdb")) >= 0:
        b = b[:i] + b[i + 2 + int.from_bytes(b[i + 2:i + 4], "big"):]
    return np.frombuffer(b, np.uint8)


@pytest.mark.parametrize("h, w", [(48, 64), (480, 640), (1080, 1920), (7, 5)])
def test_jpeg_shape_reads_the_size_from_the_header(h, w):
    buf = jpeg_bytes(picture(h, w))
    assert jpeg_shape(buf) == (h, w, 3)
    assert jpeg_shape(np.concatenate([buf, np.zeros(100, np.uint8)])) == (h, w, 3)  # padded by the camera
    gray = cv2.imencode(".jpg", picture(h, w)[:, :, 0])[1].reshape(-1)
    assert jpeg_shape(gray) == (h, w, 3)  # decoded as colour all the same


@pytest.mark.parametrize("cut, match", [
    (lambda b: b[: len(b) // 2], "JPEG cut short: no end-of-image marker"),
    (lambda b: b[:-2], "no end-of-image marker"),
    (lambda b: b[:40], "runs past the end"),
    (lambda b: b[:3], "not a JPEG image"),
    (lambda b: np.zeros(5000, np.uint8), "not a JPEG image"),
    (lambda b: np.concatenate([b[:2], np.full(10, 7, np.uint8), b[2:]]), "header damaged at byte 2"),
])
def test_a_frame_that_is_not_one_whole_jpeg_is_corrupt(cut, match):
    with pytest.raises(CorruptFrame, match=match):
        jpeg_shape(cut(jpeg_bytes(picture(480, 640))))


def test_jpeg_frame_decodes_once_on_first_use():
    img = picture()
    f = JpegFrame("rgb", 7, 123, jpeg_bytes(img))
    assert not f.decoded and f.shape == (48, 64, 3)
    assert "decoded=False" in repr(f) and not f.decoded  # repr does not decode
    first = f.image
    assert f.decoded and f.image is first  # kept, not decoded again
    np.testing.assert_array_equal(first, cv2.imdecode(f.jpeg, cv2.IMREAD_COLOR))
    assert np.abs(first.astype(int) - img).mean() < 10  # it is the picture (JPEG is lossy)
    assert (f.camera, f.index, f.t_ns, f.ffc_state, f.meta) == ("rgb", 7, 123, "none", {})


def test_damage_inside_a_jpeg_shows_when_decoding_naming_camera_and_frame():
    f = JpegFrame("rgb", 41, 0, damaged_inside(jpeg_bytes(picture())))  # header and end marker fine
    with pytest.raises(CorruptFrame, match=r"^rgb frame 41: damaged JPEG \(\d+ bytes\), decoding gave nothing"):
        f.decode()
    with pytest.raises(CorruptFrame, match="^rgb frame 3: JPEG cut short"):  # caught on arrival
        JpegFrame("rgb", 3, 0, jpeg_bytes(picture())[:-300])


def test_decode_jpeg_gives_opencvs_pixels_with_or_without_simplejpeg(monkeypatch):
    """simplejpeg is only faster: the same libjpeg-turbo decode as cv2.imdecode, bit for bit;
    without it OpenCV decodes."""
    if jpegframes.simplejpeg is None:
        pytest.skip("simplejpeg not installed (pip install simplejpeg): only the OpenCV path runs")
    for seed, (h, w) in enumerate([(48, 64), (480, 640), (121, 77)]):
        buf = jpeg_bytes(picture(h, w, seed))
        np.testing.assert_array_equal(decode_jpeg(buf), cv2.imdecode(buf, cv2.IMREAD_COLOR))
    damaged = damaged_inside(jpeg_bytes(picture()))
    assert decode_jpeg(damaged) is None
    monkeypatch.setattr(jpegframes, "simplejpeg", None)
    np.testing.assert_array_equal(decode_jpeg(buf), cv2.imdecode(buf, cv2.IMREAD_COLOR))
    assert decode_jpeg(damaged) is None


def test_uvc_mjpeg_without_huffman_tables_decodes_fast_and_right():
    """Many USB cameras leave the (standard) Huffman tables out of their MJPEG frames; libjpeg
    supplies them, so such a frame takes the fast path and gives the same picture."""
    whole = jpeg_bytes(picture(480, 640))  # OpenCV writes the standard tables
    b = bytes(whole)
    while (i := b.find(b"\xff\xc4")) >= 0:
        b = b[:i] + b[i + 2 + int.from_bytes(b[i + 2:i + 4], "big"):]
    uvc = np.frombuffer(b, np.uint8)
    assert len(uvc) < len(whole) and jpeg_shape(uvc) == (480, 640, 3)
    np.testing.assert_array_equal(decode_jpeg(uvc), cv2.imdecode(whole, cv2.IMREAD_COLOR))
    if jpegframes.simplejpeg is not None:  # strict: no warning, so no second (OpenCV) try
        np.testing.assert_array_equal(jpegframes.simplejpeg.decode_jpeg(uvc, colorspace="BGR", strict=True),
                                      cv2.imdecode(whole, cv2.IMREAD_COLOR))
