"""Feed messages for the console tests, built and checked by the real contract (encode_body/decode)."""
from __future__ import annotations

from edge.feed.messages import Message, decode, encode_body, make_topic, msg_id

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")  # a minimal JPEG (SOI..EOI)


def event_msg(seq: int, *, kind: str = "alert", station: str = "gate-1", epoch: int = 1000, track: int | None = None,
              type_: str = "new", core_c: float | None = 38.4, skin_c: float | None = 36.1, status: str | None = None,
              reason: str = "", images: bool = False, time_utc: str = "2026-11-26T09:00:06.500Z") -> Message:
    track = seq if track is None else track
    status = status or ("elevated" if kind == "alert" else "normal")
    names = ["rgb_jpeg", "thermal_jpeg"] if images else []
    body = {
        "schema": 1, "kind": kind, "publisher_id": station, "epoch": epoch, "seq": seq,
        "msg_id": msg_id(station, epoch, kind, seq), "station_id": station, "time_utc": time_utc, "catchup": None,
        "type": type_, "event_id": f"{station}-{epoch}-{kind}-{track}", "track_id": track, "t_ns": seq * 1000,
        "verdict": {"status": status, "reason": reason, "method": "none" if status == "indeterminate" else "absolute"},
        "skin_temp_c": skin_c, "core_temp_c": core_c, "uncertainty_c": 0.3, "threshold_c": 37.5,
        "box_xyxy_rgb": [1.0, 2.0, 30.0, 40.0], "box_xyxy_thermal": None, "score": 0.9, "mask": "no",
        "mask_conf": 0.8, "n_frames": 5, "images": names,
    }
    return decode([make_topic(kind, station), encode_body(body), *([JPEG, JPEG] if images else [])])


def status_msg(seq: int, status: dict, *, station: str = "gate-1", epoch: int = 1000) -> Message:
    body = {"schema": 1, "kind": "status", "publisher_id": station, "epoch": epoch, "seq": seq,
            "msg_id": msg_id(station, epoch, "status", seq), "station_id": station,
            "time_utc": "2026-11-26T09:00:06.500Z", "catchup": None, "status": status}
    return decode([make_topic("status", station), encode_body(body)])
