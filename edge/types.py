"""Data that crosses stage boundaries.

``Detections`` follows supervision's idea: one checked container of parallel numpy arrays,
indexable by a boolean mask or an index array, with ``empty()``. Later stages add their
per-face results as extra arrays in ``data`` (see ``DATA_KEYS``) instead of inventing their own
containers, so one object carries a face from the detector to the decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # station and publisher ids: no dots (they prefix feed topics)

# Per-face arrays stages add to Detections.data. Shape after N (faces) and meaning:
DATA_KEYS = {
    "mask": "(N,) object: 'yes' | 'no' | 'unknown' -- mask status from the RGB crop",
    "mask_conf": "(N,) float32 0..1 -- confidence of the mask status",
    "box_xyxy_thermal": "(N,4) float32 -- face box mapped into thermal pixels",
    "landmarks_xy_thermal": "(N,5,2) float32 -- landmarks mapped into thermal pixels",
    "canthus_xy_thermal": "(N,2,2) float32 -- both inner canthi in thermal pixels",
    "skin_temp_c": "(N,) float32 -- measured canthus skin temperature, degC (NaN if unmeasured)",
    "core_temp_c": "(N,) float32 -- estimated core temperature, degC (NaN if unmeasured)",
    "skin_sd_c": "(N,) float32 -- 1-sigma uncertainty of skin_temp_c (noise, small-face penalty), degC",
    "uncertainty_c": "(N,) float32 -- 1-sigma uncertainty of core_temp_c, degC",
    "gate": "(N,) object -- '' when measurable, else the GateReason it is not (e.g. 'glasses')",
    "quality": "(N,) float32 0..1 -- how good this frame's measurement is (for best-N)",
    "track_id": "(N,) int64 -- tracker id, -1 before tracking",
    "speed_px_s": "(N,) float32 -- face centre speed from the tracker, RGB px/s (NaN if unknown)",
}


@dataclass
class Detections:
    """Faces found in one RGB frame.

    box_xyxy: (N,4) float32, RGB pixels, x1 y1 x2 y2.
    score: (N,) float32 detector confidence 0..1.
    landmarks_xy: (N,5,2) float32 RGB pixels in CenterFace order: eye on the image's left,
        eye on the image's right, nose tip, mouth corner image-left, mouth corner image-right.
    data: extra (N,...) arrays keyed as in DATA_KEYS.
    """

    box_xyxy: np.ndarray
    score: np.ndarray
    landmarks_xy: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.box_xyxy = np.asarray(self.box_xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.box_xyxy)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        self.landmarks_xy = np.asarray(self.landmarks_xy, dtype=np.float32).reshape(-1, 5, 2)
        if len(self.score) != n or len(self.landmarks_xy) != n:
            raise ValueError(
                f"Detections: parallel arrays disagree: {n} boxes, {len(self.score)} scores, "
                f"{len(self.landmarks_xy)} landmark sets"
            )
        for key, arr in self.data.items():
            if len(arr) != n:
                raise ValueError(f"Detections.data[{key!r}] has {len(arr)} rows, expected {n}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.box_xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select faces by boolean mask, index array, slice or single int (kept as N=1)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.box_xyxy[index],
            self.score[index],
            self.landmarks_xy[index],
            {k: v[index] for k, v in self.data.items()},
        )

    def with_data(self, **arrays: np.ndarray) -> Detections:
        """Return a copy sharing arrays, with ``arrays`` added to ``data`` (checked for length)."""
        return Detections(self.box_xyxy, self.score, self.landmarks_xy, {**self.data, **arrays})

    @property
    def inter_ocular_px(self) -> np.ndarray:
        """(N,) float32 distance between the two eye landmarks, RGB pixels."""
        d = self.landmarks_xy[:, 1] - self.landmarks_xy[:, 0]
        return np.hypot(d[:, 0], d[:, 1]).astype(np.float32)


# FFC (flat-field correction) states, as a PureThermal telemetry row reports them.
FFC_STATES = ("none", "imminent", "in_progress", "complete")
# The states during which the shutter stretch is on (the image is not the scene). Lepton
# telemetry keeps 'complete' after every FFC until the next one, so 'complete' is not an event:
# the FFC is this stretch plus the settle time after it (measurement.ffc_settle_ms, FfcSettle).
FFC_ACTIVE = FFC_STATES[1:3]


@dataclass
class Frame:
    """One camera frame.

    camera: 'rgb' or 'thermal'.
    index: frame number within its camera's stream, from 0.
    t_ns: capture time on the station's one monotonic clock, nanoseconds.
    image: rgb -> (H,W,3) uint8 BGR (OpenCV order); thermal -> (h,w) uint16 raw pixels in the
        stream's thermal units (centi-kelvin unless stream.json says otherwise).
    ffc_state: thermal only: one of FFC_STATES ('none' for RGB).
    meta: optional extras (e.g. 'sensor_temp_c' from telemetry).
    """

    camera: str
    index: int
    t_ns: int
    image: np.ndarray
    ffc_state: str = "none"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FramePair:
    """A thermal frame and the RGB frame nearest to it in time (|dt| within tolerance)."""

    rgb: Frame
    thermal: Frame

    @property
    def t_ns(self) -> int:
        """The pair's time is the thermal frame's: temperatures are what we report."""
        return self.thermal.t_ns

    @property
    def dt_ns(self) -> int:
        return self.rgb.t_ns - self.thermal.t_ns


class GateReason(StrEnum):
    """Why a face is not measured (the ``gate`` data key) or a person is indeterminate
    (``Verdict.reason``): the one ordered vocabulary. Members are ``str`` equal to their value,
    so arrays, JSON and the wire carry the same words as always.

    Order: the measurement's precedence -- the first that applies is a frame's gate -- station-wide
    gates first (``ffc``, then ``blackbody_<state>`` from BlackbodyStatus.state), then per face;
    after them the decision's own reasons. docs/ARCHITECTURE.md lists them in this order (a test
    checks)."""

    FFC = "ffc"
    BLACKBODY_MISSING = "blackbody_missing"
    BLACKBODY_UNSTABLE = "blackbody_unstable"
    BLACKBODY_MOVED = "blackbody_moved"
    BLACKBODY_DISABLED = "blackbody_disabled"
    OUTSIDE_THERMAL_VIEW = "outside_thermal_view"
    TOO_FAR = "too_far"
    SEVERAL_FACES = "several_faces"
    TURNED_AWAY = "turned_away"
    MOTION_BLUR = "motion_blur"
    NO_SKIN = "no_skin"
    GLASSES = "glasses"
    # the decision's (edge/decision.py), never a frame's gate
    BORDERLINE = "borderline"
    RELATIVE_WARMUP = "relative_warmup"
    NO_VALID_FRAMES = "no_valid_frames"


class VerdictStatus(StrEnum):
    """A person's screening result (``Verdict.status``; ``verdict.status`` on the wire)."""

    ELEVATED = "elevated"
    NORMAL = "normal"
    INDETERMINATE = "indeterminate"


class EventKind(StrEnum):
    """ScreeningEvent.kind: the feed topic an event goes out on (``<kind>.<station_id>``)."""

    ALERT = "alert"
    SCREENING = "screening"


class EventType(StrEnum):
    """ScreeningEvent.type: the Frigate-style lifecycle step."""

    NEW = "new"
    UPDATE = "update"
    END = "end"


VERDICTS = tuple(map(str, VerdictStatus))  # plain words, for messages
# The reasons only the decision gives (a person's, never a frame's gate).
DECISION_REASONS = (GateReason.BORDERLINE, GateReason.RELATIVE_WARMUP, GateReason.NO_VALID_FRAMES)


@dataclass
class Verdict:
    """One person's screening result.

    status: a VerdictStatus ('elevated' | 'normal' | 'indeterminate').
    reason: '' for elevated/normal; for indeterminate, why: a GateReason ('glasses', 'too_far',
        'blackbody_missing', 'relative_warmup', 'no_valid_frames', ...).
    method: 'absolute' | 'relative' | 'none' -- which rule decided.
    threshold_c: threshold in force for that rule, degC (None if no rule applied).
    core_temp_c / skin_temp_c / uncertainty_c: the measurement the rule used, degC.
    """

    status: str
    reason: str = ""
    method: str = "none"
    threshold_c: float | None = None
    core_temp_c: float | None = None
    skin_temp_c: float | None = None
    uncertainty_c: float | None = None

    def __post_init__(self) -> None:
        if self.status not in VERDICTS:
            raise ValueError(f"Verdict.status={self.status!r}; allowed: {VERDICTS}")
        if self.status == "indeterminate" and not self.reason:
            raise ValueError("an indeterminate Verdict needs a reason")


@dataclass
class ScreeningEvent:
    """A lifecycle event for one tracked person, handed to the publisher.

    kind: an EventKind: 'alert' (published on alert.<station>) or 'screening' (screening.<station>).
    type: an EventType: 'new' | 'update' | 'end' (Frigate-style envelope; one event id per track and kind).
    t_ns: capture time of the thermal frame behind the measurement.
    snapshot_rgb: (h,w,3) uint8 BGR crop of the face from the best frame, or None.
    snapshot_thermal_c: (h,w) float32 degC crop of the face from the best frame, or None.
    """

    kind: str
    type: str
    track_id: int
    t_ns: int
    verdict: Verdict
    box_xyxy_rgb: tuple[float, float, float, float]
    box_xyxy_thermal: tuple[float, float, float, float] | None
    score: float
    mask: str = "unknown"
    mask_conf: float = 0.0
    n_frames: int = 0
    snapshot_rgb: np.ndarray | None = None
    snapshot_thermal_c: np.ndarray | None = None
