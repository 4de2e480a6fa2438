"""FLIR radiometric JPEG (R-JPEG) decoding, without exiftool.

A FLIR R-JPEG is an ordinary JPEG (the false-colour picture) whose APP1 segments starting with
``FLIR\\0`` carry, split into numbered chunks, an FFF container:

    APP1 payload: b"FLIR\\0" 0x01 <chunk index> <last chunk index> <chunk data...>
    FFF: 64-byte header ("FFF\\0", creator, version 100, directory offset, entry count),
         then a directory of 32-byte entries (type, subtype, version, id, offset, length, ...)

Records used here (layouts as documented in ExifTool's FLIR tag tables):

* 0x01 RawData: u16 byte-order word (reads 2 in the record's order), width, height, then at
  0x20 the 16-bit sensor image, either PNG or raw. Many cameras write the PNG's 16-bit samples
  little-endian although PNG is big-endian; we pick the order giving the smoother image (the
  wrong order turns the noisy low byte into the high one), CameraInfo's raw median breaking ties.
* 0x20 CameraInfo: emissivity, object distance, reflected/atmospheric/window temperatures (K),
  window transmission, relative humidity, Planck R1/B/F/O/R2, atmospheric alpha/beta/X,
  camera model/serial, lens, raw value range and median.
* 0x0e EmbeddedImage: same header as RawData, then a JPEG/PNG visible-light photo.
* 0x2a PiP: placement of the visible photo relative to the thermal image (Real2IR, offsets).

FLIR SEQ video (FFF frames back to back, ``split_seq``/``read_flir_any``) is read frame by frame;
CSQ (raw frames compressed with JPEG-LS, which OpenCV does not decode) is not supported.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import UserError
from edge.thermal.colour import to_u8
from edge.thermal.radiometry import PlanckParams, raw_to_celsius
from edge.thermal.registration import Registration

REC_RAW, REC_EMBEDDED, REC_CAMERA, REC_PIP = 0x01, 0x0E, 0x20, 0x2A
FLIR_SIG = b"FLIR\x00"


class FlirError(UserError, ValueError):
    """The file is not a FLIR radiometric JPEG or its FLIR data is damaged. One line."""


@dataclass
class FlirImage:
    """A decoded R-JPEG. raw: (h,w) uint16 sensor counts; params: the file's own radiometric
    parameters; camera: model/serial/lens and raw statistics; visible_bgr: the embedded photo or
    None; pip: picture-in-picture placement (dict) or None; raw_format: 'png' or 'raw'."""

    path: str
    raw: np.ndarray
    params: PlanckParams
    camera: dict[str, Any] = field(default_factory=dict)
    visible_bgr: np.ndarray | None = None
    pip: dict[str, Any] | None = None
    raw_format: str = ""
    byte_swapped: bool = False

    def temperatures_c(self, **overrides: Any) -> np.ndarray:
        """(h,w) float32 degC with the file's parameters, any of them overridden by keyword
        (e.g. ``emissivity=0.98``, ``distance_m=1.0``)."""
        return raw_to_celsius(self.raw, dataclasses.replace(self.params, **overrides))


# ---------------------------------------------------------------- container


def extract_fff(data: bytes, name: str = "<bytes>") -> bytes:
    """Concatenate the FLIR APP1 chunks of a JPEG, in chunk order, into the FFF container."""
    if data[:2] != b"\xff\xd8":
        raise FlirError(f"{name}: not a JPEG file")
    i, chunks, last = 2, {}, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise FlirError(f"{name}: broken JPEG marker structure at byte {i}")
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end: no more metadata segments
            break
        (seg_len,) = struct.unpack(">H", data[i + 2:i + 4])
        payload = data[i + 4:i + 2 + seg_len]
        if marker == 0xE1 and payload[:5] == FLIR_SIG and len(payload) >= 8:
            idx, last = payload[6], payload[7]
            chunks[idx] = payload[8:]
        i += 2 + seg_len
    if not chunks:
        raise FlirError(f"{name}: no FLIR APP1 segments (not a FLIR radiometric JPEG)")
    assert last is not None  # set with the first chunk
    missing = [k for k in range(last + 1) if k not in chunks]
    if missing:
        raise FlirError(f"{name}: FLIR APP1 chunk(s) {missing} of 0..{last} missing (truncated file?)")
    return b"".join(chunks[k] for k in range(last + 1))


def _fff_byte_order(head: bytes) -> str | None:
    """'>' or '<': the order in which an FFF header's version field (at 0x14) reads 1xx; None if
    neither does (not an FFF header, or an unsupported version)."""
    for bo in (">", "<"):
        if struct.unpack(bo + "I", head[0x14:0x18])[0] // 100 == 1:
            return bo
    return None


def parse_fff(fff: bytes, name: str = "<fff>") -> dict[int, bytes]:
    """FFF container -> {record type: record bytes} (first record of each type)."""
    if len(fff) < 0x40 or fff[:4] != b"FFF\x00":
        raise FlirError(f"{name}: FLIR data does not start with an FFF header")
    bo = _fff_byte_order(fff)
    if bo is None:
        raise FlirError(f"{name}: unsupported FFF version field {fff[0x14:0x18].hex()}")
    dir_off, n = struct.unpack(bo + "II", fff[0x18:0x20])
    if dir_off + n * 32 > len(fff):
        raise FlirError(f"{name}: FFF record directory ({n} entries at {dir_off}) runs past the data ({len(fff)} bytes)")
    recs: dict[int, bytes] = {}
    for k in range(n):
        e = fff[dir_off + 32 * k: dir_off + 32 * (k + 1)]
        rtype, _sub, _rver, _rid, off, length = struct.unpack(bo + "HHIIII", e[:20])
        if rtype == 0 or rtype in recs:
            continue
        if off + length > len(fff):
            raise FlirError(f"{name}: FFF record 0x{rtype:02x} (offset {off}, length {length}) runs past the data")
        recs[rtype] = fff[off:off + length]
    return recs


def _record_order(rec: bytes) -> str:
    """Records start with a u16 that reads 2 in their own byte order (ExifTool's rule)."""
    return "<" if struct.unpack(">H", rec[:2])[0] >= 0x100 else ">"


# ---------------------------------------------------------------- records


def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("latin-1", "replace").strip()


def parse_camera_info(rec: bytes, name: str = "<camerainfo>") -> tuple[PlanckParams, dict[str, Any]]:
    if len(rec) < 0x340:
        raise FlirError(f"{name}: CameraInfo record too short ({len(rec)} bytes)")
    bo = _record_order(rec)

    def f32(off: int) -> float:
        return struct.unpack(bo + "f", rec[off:off + 4])[0]

    def u16(off: int) -> int:
        return struct.unpack(bo + "H", rec[off:off + 2])[0]

    rh = f32(0x3C)
    rh = rh / 100.0 if rh > 2 else rh
    params = PlanckParams(
        r1=f32(0x58), b=f32(0x5C), f=f32(0x60), o=float(struct.unpack(bo + "i", rec[0x308:0x30C])[0]),
        r2=f32(0x30C), emissivity=f32(0x20), distance_m=max(f32(0x24), 0.0),
        reflected_c=f32(0x28) - 273.15, atmosphere_c=f32(0x2C) - 273.15, ir_window_c=f32(0x30) - 273.15,
        ir_window_transmission=f32(0x34) if 0.01 <= f32(0x34) <= 1 else 1.0, humidity=min(max(rh, 0.0), 1.0),
        alpha1=f32(0x70), alpha2=f32(0x74), beta1=f32(0x78), beta2=f32(0x7C), x=f32(0x80))
    camera = {
        "model": _cstr(rec[0xD4:0xF4]), "part_number": _cstr(rec[0xF4:0x104]),
        "serial": _cstr(rec[0x104:0x114]), "software": _cstr(rec[0x114:0x124]), "lens": _cstr(rec[0x170:0x190]),
        "range_min_c": round(f32(0x94) - 273.15, 2), "range_max_c": round(f32(0x90) - 273.15, 2),
        "raw_value_range_min": u16(0x310), "raw_value_range_max": u16(0x312),
        "raw_value_median": u16(0x338), "raw_value_range": u16(0x33C),
    }
    if len(rec) >= 0x38E:  # DateTimeOriginal: unix seconds, milliseconds (low 16 bits), tz minutes
        sec, sub = struct.unpack(bo + "II", rec[0x384:0x38C])
        if sec:
            camera["time_unix_s"] = sec + (sub & 0xFFFF) / 1000.0
    return params, camera


def _image_record(rec: bytes) -> tuple[str, int, int, bytes]:
    bo = _record_order(rec)
    w, h = struct.unpack(bo + "HH", rec[2:6])
    return bo, w, h, rec[0x20:]


def _roughness(img: np.ndarray) -> float:
    f = img.astype(np.float64)
    return float(np.mean(np.abs(np.diff(f, axis=1)))) + float(np.mean(np.abs(np.diff(f, axis=0))))


def decode_raw(rec: bytes, median_hint: int = 0, name: str = "<rawdata>") -> tuple[np.ndarray, str, bool]:
    """RawData record -> ((h,w) uint16, 'png'|'raw', byte_swapped)."""
    bo, w, h, payload = _image_record(rec)
    if payload[:8] == b"\x89PNG\r\n\x1a\n":
        img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16 or img.ndim != 2:
            raise FlirError(f"{name}: RawData PNG is not a 16-bit grey image")
        fmt = "png"
    elif len(payload) >= w * h * 2 and w and h:
        img = np.frombuffer(payload[:w * h * 2], dtype=bo + "u2").reshape(h, w).astype(np.uint16)
        fmt = "raw"
    else:
        raise FlirError(f"{name}: RawData is neither PNG nor {w}x{h} 16-bit raw ({len(payload)} bytes)")
    if (w and h) and img.shape != (h, w):
        raise FlirError(f"{name}: RawData image is {img.shape[1]}x{img.shape[0]}, header says {w}x{h}")
    swapped = img.byteswap()
    # The wrong order puts the noisy low byte on top: neighbouring pixels then differ by
    # thousands of counts instead of tens. That test is decisive on real images (ratio > 100
    # on the samples); CameraInfo's raw median only breaks near-ties (flat images).
    r_img, r_swap = _roughness(img), _roughness(swapped)
    if min(r_img, r_swap) < 0.5 * max(r_img, r_swap) or not median_hint:
        use_swapped = r_swap < r_img
    else:
        use_swapped = abs(float(np.median(swapped)) - median_hint) < abs(float(np.median(img)) - median_hint)
    return (swapped if use_swapped else img), fmt, bool(use_swapped)


def decode_embedded(rec: bytes) -> np.ndarray | None:
    """EmbeddedImage record -> BGR uint8, or None if it holds no decodable image."""
    _, _, _, payload = _image_record(rec)
    return cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)


def parse_pip(rec: bytes) -> dict[str, Any] | None:
    """PiP record: float Real2IR, int16 OffsetX/Y, uint16 PiPX1/X2/Y1/Y2. It has no byte-order
    word, so take the order in which Real2IR is plausible (0.1..20) and the window fits."""
    if len(rec) < 16:
        return None
    for bo in (">", "<"):
        real2ir = struct.unpack(bo + "f", rec[0:4])[0]
        ox, oy, x1, x2, y1, y2 = struct.unpack(bo + "hhHHHH", rec[4:16])
        if 0.1 <= real2ir <= 20 and x1 <= x2 < 8192 and y1 <= y2 < 8192:
            return {"real2ir": round(real2ir, 6), "offset_x": ox, "offset_y": oy, "pip_x1": x1, "pip_x2": x2,
                    "pip_y1": y1, "pip_y2": y2}
    return None


def pip_homography(im: FlirImage) -> np.ndarray | None:
    """(3,3) visible-photo px -> thermal px from the PiP record, or None without photo/PiP.

    FLIR's overlay (as its tools and ExifTool users apply it): the thermal image, scaled by
    s = visible width / (Real2IR x thermal width) visible px per thermal px, sits centred on the
    visible image's centre moved by (OffsetX, OffsetY) visible px.
    """
    if im.visible_bgr is None or not im.pip or not im.pip.get("real2ir"):
        return None
    hv, wv = im.visible_bgr.shape[:2]
    ht, wt = im.raw.shape
    s = wv / (im.pip["real2ir"] * wt)
    cx, cy = (wv - 1) / 2 + im.pip["offset_x"], (hv - 1) / 2 + im.pip["offset_y"]
    return np.array([[1 / s, 0, (wt - 1) / 2 - cx / s], [0, 1 / s, (ht - 1) / 2 - cy / s], [0, 0, 1.0]])


def read_flir(path: str | Path) -> FlirImage:
    """Decode a FLIR radiometric JPEG. Raises FlirError / FileNotFoundError with the path."""
    path = Path(path)
    data = path.read_bytes()
    return decode_flir_bytes(data, str(path))


def decode_flir_bytes(data: bytes, name: str = "<bytes>") -> FlirImage:
    """An R-JPEG (FLIR APP1 segments) or a bare FFF container (.fff, one SEQ frame)."""
    fff = data if data[:4] == b"FFF\x00" else extract_fff(data, name)
    recs = parse_fff(fff, name)
    if REC_RAW not in recs:
        raise FlirError(f"{name}: FLIR data has no RawData record (not radiometric)")
    if REC_CAMERA not in recs:
        raise FlirError(f"{name}: FLIR data has no CameraInfo record (no Planck constants)")
    try:
        params, camera = parse_camera_info(recs[REC_CAMERA], name)
    except ValueError as e:
        if isinstance(e, FlirError):
            raise
        raise FlirError(f"{name}: CameraInfo holds implausible values: {e}") from None
    raw, fmt, swapped = decode_raw(recs[REC_RAW], camera.get("raw_value_median", 0), name)
    visible = decode_embedded(recs[REC_EMBEDDED]) if REC_EMBEDDED in recs else None
    pip = parse_pip(recs[REC_PIP]) if REC_PIP in recs else None
    return FlirImage(name, raw, params, camera, visible, pip, fmt, swapped)


# ---------------------------------------------------------------- writer (tests, fixtures)


def encode_flir_jpeg(raw: np.ndarray, params: PlanckParams, visible_bgr: np.ndarray | None = None,
                     raw_format: str = "png", byte_order: str = ">", png_byte_swapped: bool = True,
                     chunk_size: int = 65000, camera_model: str = "synthetic", time_unix_s: float = 0.0,
                     container: str = "jpeg", pip: dict[str, Any] | None = None) -> bytes:
    """Build an R-JPEG the way FLIR cameras lay it out (used by the round-trip tests).

    raw_format 'png' stores the counts as a 16-bit PNG, byte-swapped like most FLIR cameras
    when png_byte_swapped; 'raw' stores them in ``byte_order``. The FFF is split into APP1
    chunks of at most ``chunk_size`` bytes. container 'fff' returns the bare FFF (a .fff file,
    or one frame of a SEQ file).
    """
    bo = byte_order
    h, w = raw.shape

    def image_record(payload: bytes) -> bytes:
        head = struct.pack(bo + "HHH", 2, w, h) + b"\x00" * (0x20 - 6)
        return head + payload

    if raw_format == "png":
        stored = raw.byteswap() if png_byte_swapped else raw
        ok, png = cv2.imencode(".png", stored.astype(np.uint16))
        raw_rec = image_record(png.tobytes())
    else:
        raw_rec = image_record(raw.astype(bo + "u2").tobytes())
    cam = bytearray(0x400)
    struct.pack_into(bo + "H", cam, 0, 2)
    p = params
    for off, val in ((0x20, p.emissivity), (0x24, p.distance_m), (0x28, p.reflected_c + 273.15),
                     (0x2C, p.atmosphere_c + 273.15), (0x30, p.ir_window_c + 273.15),
                     (0x34, p.ir_window_transmission), (0x3C, p.humidity), (0x58, p.r1), (0x5C, p.b),
                     (0x60, p.f), (0x70, p.alpha1), (0x74, p.alpha2), (0x78, p.beta1), (0x7C, p.beta2),
                     (0x80, p.x), (0x30C, p.r2)):
        struct.pack_into(bo + "f", cam, off, val)
    struct.pack_into(bo + "i", cam, 0x308, int(round(p.o)))
    struct.pack_into(bo + "H", cam, 0x338, int(np.median(raw)))
    cam[0xD4:0xD4 + len(camera_model)] = camera_model.encode()
    struct.pack_into(bo + "II", cam, 0x384, int(time_unix_s), int(round((time_unix_s % 1) * 1000)))
    records = [(REC_RAW, raw_rec), (REC_CAMERA, bytes(cam))]
    if visible_bgr is not None:
        ok, jpg = cv2.imencode(".jpg", visible_bgr)
        vh, vw = visible_bgr.shape[:2]
        records.append((REC_EMBEDDED, struct.pack(bo + "HHH", 2, vw, vh) + b"\x00" * 26 + jpg.tobytes()))
    if pip is not None:
        records.append((REC_PIP, struct.pack(bo + "fhhHHHH", pip["real2ir"], pip["offset_x"], pip["offset_y"],
                                             0, w - 1, 0, h - 1)))
    fff = _assemble_fff(records, bo)
    if container == "fff":
        return fff
    chunks = [fff[i:i + chunk_size] for i in range(0, len(fff), chunk_size)]
    ok, thumb = cv2.imencode(".jpg", to_u8(raw, percentiles=(0, 100)))
    thumb_jpg = thumb.tobytes()
    segs = b"".join(b"\xff\xe1" + struct.pack(">H", len(c) + 10) + FLIR_SIG + bytes([1, i, len(chunks) - 1]) + c
                    for i, c in enumerate(chunks))
    return thumb_jpg[:2] + segs + thumb_jpg[2:]


def _assemble_fff(records: list[tuple[int, bytes]], bo: str) -> bytes:
    dir_off = 0x40
    body_off = dir_off + 32 * len(records)
    directory, body = b"", b""
    for rtype, rec in records:
        directory += struct.pack(bo + "HHIIIIIII", rtype, 1, 100, 1, body_off + len(body), len(rec), 0, 0, 0)
        body += rec
    header = b"FFF\x00" + b"synthetic".ljust(16, b"\x00") + struct.pack(bo + "III", 100, dir_off, len(records))
    return header.ljust(0x40, b"\x00") + directory + body


# ---------------------------------------------------------------- SEQ video


def split_seq(data: bytes, name: str = "<seq>") -> list[bytes]:
    """A FLIR SEQ file is FFF containers back to back. Each frame ends where its last record
    ends; the next frame is the next FFF header at or after that point."""
    frames: list[bytes] = []
    pos = 0
    while True:
        start = data.find(b"FFF\x00", pos)
        if start < 0:
            break
        head = data[start:start + 0x40]
        if len(head) < 0x40:
            break
        bo = _fff_byte_order(head)
        if bo is None:
            pos = start + 4  # "FFF\0" inside image data, not a header
            continue
        dir_off, n = struct.unpack(bo + "II", head[0x18:0x20])
        end = start + dir_off + 32 * n
        for k in range(n):
            e = data[start + dir_off + 32 * k: start + dir_off + 32 * (k + 1)]
            if len(e) == 32 and struct.unpack(bo + "H", e[:2])[0]:
                off, length = struct.unpack(bo + "II", e[12:20])
                end = max(end, start + off + length)
        if end > len(data):
            raise FlirError(f"{name}: frame {len(frames)} at byte {start} runs past the end of the file (truncated?)")
        frames.append(data[start:end])
        pos = end
    if not frames:
        raise FlirError(f"{name}: no FFF frames (not a FLIR SEQ file)")
    return frames


def read_flir_any(path: str | Path) -> list[FlirImage]:
    """Decode an R-JPEG (.jpg), a bare .fff or a .seq video into one FlirImage per frame.
    CSQ (JPEG-LS compressed raw frames) is not supported: raises FlirError saying so."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\xff\xd8":
        return [decode_flir_bytes(data, str(path))]
    if path.suffix.lower() == ".csq":
        raise FlirError(f"{path}: FLIR CSQ (JPEG-LS compressed frames) is not supported; export as SEQ or R-JPEG")
    frames = split_seq(data, str(path))
    return [decode_flir_bytes(f, f"{path}[frame {i}]") for i, f in enumerate(frames)]


# ---------------------------------------------------------------- real faces


def face_report(temp_c: np.ndarray, detector: Any, upscale: int = 2) -> list[dict[str, Any]]:
    """Find faces in a thermal-only image and measure their inner canthi the product's way.

    Faces: the product detector (CenterFace) run on the grey-scaled thermal image, upscaled
    ``upscale`` x (it finds faces in thermal images too: warm skin on a cool background has the
    same layout). Canthus: edge.thermal.measurement.measure_faces with an identity registration, i.e.
    exactly the station's canthus localisation, statistic and gates. Faces the product gates
    (e.g. too_far: fewer than 2 px across the canthus) also get ``hot_region_c``: the hottest
    2x2-pixel mean in the upper 60 % of the face box (eyes and forehead) -- a rough, ungated
    figure. ``face_median_c`` is the median over the face box (face background).
    """
    from edge.thermal.measurement import (
        MeasureContext,
        MeasurementConfig,
        measure_faces,
    )

    t = np.nan_to_num(temp_c.astype(np.float32), nan=float(np.nanmin(temp_c)))
    g = to_u8(t, percentiles=(0, 100))
    g = cv2.resize(g, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    dets = detector.detect(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    if len(dets) == 0:
        return []
    reg = Registration(np.diag([1.0 / upscale, 1.0 / upscale, 1.0]))
    m = measure_faces(dets, temp_c.astype(np.float32), reg, MeasureContext(), MeasurementConfig())
    blur2 = cv2.blur(t, (2, 2))
    out = []
    h, w = t.shape
    for i in range(len(dets)):
        x1, y1, x2, y2 = (dets.box_xyxy[i] / upscale).tolist()
        xa, xb = int(max(0, np.floor(x1))), int(min(w, np.ceil(x2)))
        ya, yb = int(max(0, np.floor(y1))), int(min(h, np.ceil(y2)))
        upper = blur2[ya:ya + max(1, int(0.6 * (yb - ya))), xa:xb]
        skin = float(m.data["skin_temp_c"][i])
        out.append({
            "box_xyxy": [round(v, 1) for v in (x1, y1, x2, y2)], "score": round(float(dets.score[i]), 3),
            "canthus_c": None if not np.isfinite(skin) else round(skin, 2),
            "gate": str(m.data["gate"][i]),
            "canthus_xy": np.round(m.data["canthus_xy_thermal"][i], 1).tolist(),
            "hot_region_c": round(float(upper.max()), 2) if upper.size else None,
            "face_median_c": round(float(np.median(t[ya:yb, xa:xb])), 2) if yb > ya and xb > xa else None,
        })
    return out


def real_files_markdown(folder: str | Path, detector: Any | None = None, emissivity: float = 0.98) -> str:
    """Report section for the evaluation: every *.jpg in ``folder`` decoded (min/median/max at
    skin emissivity) and its faces' canthus temperatures (``face_report``)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.jpg"))
    if detector is None:
        from edge.vision.detection import build_detector
        detector = build_detector()
    lines = ["## Real data: FLIR radiometric JPEGs (flir_rjpeg)", "",
             f"Decoded without exiftool (edge/io/flir.py), each file's own Planck constants and scene "
             f"parameters, object emissivity {emissivity} (skin). Faces: CenterFace on the grey-scaled "
             f"thermal image; canthus: the station's measure_faces (identity registration).", "",
             "| file | camera | size | raw | min degC | median degC | max degC | faces | canthus degC (product) "
             "| hottest 2x2 upper face degC (gated faces) | face median degC |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        try:
            im = read_flir(f)
        except FlirError as e:
            lines.append(f"| {f.name} | not decodable: {e} | | | | | | | | | |")
            continue
        t = im.temperatures_c(emissivity=emissivity)
        faces = face_report(t, detector)
        measured = ", ".join(f"{x['canthus_c']:.2f}" for x in faces if x["canthus_c"] is not None) or "–"
        gated = ", ".join(f"{x['hot_region_c']:.2f} ({x['gate']})" for x in faces if x["canthus_c"] is None) or "–"
        med = ", ".join(f"{x['face_median_c']:.2f}" for x in faces) or "–"
        raw = im.raw_format + (" byte-swapped" if im.byte_swapped else "")
        lines.append(f"| {f.name} | {im.camera.get('model', '')} | {t.shape[1]}x{t.shape[0]} | {raw} | "
                     f"{np.nanmin(t):.2f} | {np.nanmedian(t):.2f} | {np.nanmax(t):.2f} | {len(faces)} | {measured} | "
                     f"{gated} | {med} |")
    return "\n".join(lines) + "\n"
