"""Multi-object face tracker over paired frames (norfair-sized, ByteTrack-like association).

Each track carries a constant-velocity alpha-beta filter on the box (centre x, centre y, width,
height; velocities in px/s, so irregular pair spacing is handled through ``t_ns``). One update:

1. predict every track to ``t_ns``;
2. high-score detections (score >= high_score) <-> confirmed tracks, greedy on IoU with the
   predicted box (>= iou_threshold); then the leftovers of both greedy on centre distance
   (<= max_center_dist box sizes, size within 1.5x) -- at ~9 Hz a person who starts walking
   after standing still can jump out of IoU range before the filter has learnt the velocity;
3. low-score detections (low_score <= score < high_score) <-> still unmatched confirmed tracks
   (>= low_iou_threshold): a face that the detector is unsure of (blur, occlusion while people
   cross) keeps its track instead of breaking it;
4. remaining high-score detections <-> tentative tracks; the rest start new tentative tracks.

A tentative track becomes confirmed after ``min_hits`` matched updates and only then gets a public
id (1, 2, 3 ... in confirmation order). Detections of tentative tracks and unmatched detections
get ``track_id`` -1: the screener ignores them, so a track with fewer than min_hits never becomes
a person. A tentative track dies after ``max_tentative_misses`` consecutive misses (silently: it
never was a person); a confirmed track ends when it has not been matched for more than
``max_age_s`` -- its id is returned in the ``ended`` list exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from edge.configbase import StrictModel
from edge.types import Detections
from edge.vision.boxes import greedy_match, iou_matrix


class TrackingConfig(StrictModel):
    high_score: float = Field(
        0.5, gt=0, le=1,
        description="Detections at/above this score are matched first and may start tracks, 0..1")
    low_score: float = Field(
        0.2, ge=0, le=1,
        description="Detections below this score are ignored; between low and high they only extend confirmed "
                    "tracks, 0..1")
    iou_threshold: float = Field(
        0.2, gt=0, le=1,
        description="Min IoU between a predicted track box and a high-score detection, 0..1")
    low_iou_threshold: float = Field(
        0.4, gt=0, le=1,
        description="Min IoU for a low-score detection to extend a track, 0..1")
    max_center_dist: float = Field(
        1.0, ge=0, le=5,
        description="Fallback for confirmed tracks IoU missed (a person who stood still, then "
                    "walks off faster than the filter follows at ~9 Hz): match a high-score "
                    "detection whose centre is within this many box sizes (sqrt of the predicted "
                    "box area) and whose size is within 1.5x; 0 disables, box sizes")
    min_hits: int = Field(
        3, ge=1, le=100,
        description="Matched updates before a track counts as a person, paired frames")
    max_tentative_misses: int = Field(
        1, ge=0, le=100,
        description="Consecutive misses that kill a tentative track, paired frames")
    max_age_s: float = Field(
        2.0, gt=0, le=60,
        description="A confirmed track ends after this long without a match (a subject who turns "
                    "away or is occluded for a moment must not come back as a second person), s")
    alpha: float = Field(
        0.7, gt=0, le=1,
        description="Alpha-beta filter position gain (1 = trust the detection), unitless")
    beta: float = Field(0.3, ge=0, le=2, description="Alpha-beta filter velocity gain, unitless")

    @model_validator(mode="after")
    def _scores_ordered(self) -> TrackingConfig:
        if not self.low_score < self.high_score:
            raise ValueError(f"low_score={self.low_score} must be below high_score={self.high_score} "
                             "(allowed: 0 <= low_score < high_score <= 1)")
        return self


def center_distance_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(A,4) x (B,4) -> (A,B) centre distance in units of a's box size (sqrt area); inf where the
    sizes differ by more than 1.5x."""
    ca = (a_xyxy[:, None, :2] + a_xyxy[:, None, 2:]) / 2
    cb = (b_xyxy[None, :, :2] + b_xyxy[None, :, 2:]) / 2
    sa = np.sqrt(np.maximum((a_xyxy[:, 2] - a_xyxy[:, 0]) * (a_xyxy[:, 3] - a_xyxy[:, 1]), 1e-9))[:, None]
    sb = np.sqrt(np.maximum((b_xyxy[:, 2] - b_xyxy[:, 0]) * (b_xyxy[:, 3] - b_xyxy[:, 1]), 1e-9))[None, :]
    d = np.hypot(*(ca - cb).transpose(2, 0, 1)) / sa
    return np.where((sb / sa <= 1.5) & (sa / sb <= 1.5), d, np.inf)


def _to_states(box_xyxy: np.ndarray) -> list[list[float]]:
    """(N,4) boxes -> per box [cx, cy, w, h], computed in the boxes' precision (float32 from
    Detections) and then held as Python floats (float64)."""
    b = np.asarray(box_xyxy).reshape(-1, 4)
    states: list[list[float]] = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1).tolist()
    return states


@dataclass
class _Track:
    """The filter state is 4 Python floats each (a handful of float64 operations per update:
    lists cost a fraction of numpy's per-call overhead and round exactly the same)."""

    x: list[float]  # cx, cy, w, h at t_ns (px)
    v: list[float]  # their rates, px/s
    t_ns: int  # time of the last matched detection
    hits: int = 1
    misses: int = 0  # consecutive
    track_id: int = -1  # public id once confirmed

    def predict(self, t_ns: int, max_dt_s: float) -> list[float]:
        """Predicted box x1 y1 x2 y2 at t_ns (size at least 1 px)."""
        dt = min((t_ns - self.t_ns) / 1e9, max_dt_s)
        cx, cy, w, h = (x + v * dt for x, v in zip(self.x, self.v))
        w, h = (1.0 if w < 1.0 else w), (1.0 if h < 1.0 else h)  # NaN stays NaN, as np.maximum
        return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]

    def correct(self, z: list[float], t_ns: int, alpha: float, beta: float) -> None:
        """z: the matched detection's [cx, cy, w, h]."""
        dt = (t_ns - self.t_ns) / 1e9
        if dt <= 0:  # same instant: just take the measurement
            self.x = z
        elif self.hits == 1:  # second sighting: velocity from two points
            self.v = [(a - b) / dt for a, b in zip(z, self.x)]
            self.x = z
        else:
            pred = [x + v * dt for x, v in zip(self.x, self.v)]
            r = [a - b for a, b in zip(z, pred)]
            gain = beta / dt
            self.x = [p + alpha * e for p, e in zip(pred, r)]
            self.v = [v + gain * e for v, e in zip(self.v, r)]
        self.t_ns = t_ns
        self.hits += 1
        self.misses = 0


class Tracker:
    """``update(dets, t_ns) -> (dets with data['track_id'] int64, ended ids)``; ``finish()``."""

    def __init__(self, cfg: TrackingConfig | None = None):
        self.cfg = cfg or TrackingConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_t_ns: int | None = None

    @property
    def active_ids(self) -> list[int]:
        """Ids of confirmed tracks that have not ended."""
        return [t.track_id for t in self._tracks if t.track_id >= 0]

    def update(self, dets: Detections, t_ns: int) -> tuple[Detections, list[int]]:
        """dets: faces of one paired frame (RGB px). t_ns: the pair's time, non-decreasing."""
        if self._last_t_ns is not None and t_ns < self._last_t_ns:
            raise ValueError(f"Tracker.update: t_ns={t_ns} is earlier than the previous update's "
                             f"t_ns={self._last_t_ns}; allowed: t_ns >= {self._last_t_ns}")
        self._last_t_ns = t_ns
        cfg = self.cfg
        ids = np.full(len(dets), -1, np.int64)
        speed = np.full(len(dets), np.nan, np.float32)  # unknown until a track has two sightings
        score = dets.score
        high = np.flatnonzero(score >= cfg.high_score).tolist()
        low = np.flatnonzero((score >= cfg.low_score) & (score < cfg.high_score)).tolist()
        pred = np.array([t.predict(t_ns, cfg.max_age_s) for t in self._tracks], np.float64).reshape(-1, 4)
        states = _to_states(dets.box_xyxy)
        confirmed = [i for i, t in enumerate(self._tracks) if t.track_id >= 0]
        tentative = [i for i, t in enumerate(self._tracks) if t.track_id < 0]
        matched: set[int] = set()

        def associate(track_idx: list[int], det_idx: list[int], thr: float,
                      by_distance: bool = False) -> tuple[list[int], list[int]]:
            if not track_idx or not det_idx:
                return track_idx, det_idx
            det_boxes = dets.box_xyxy[det_idx].astype(np.float64)
            if by_distance:  # greedy on smallest distance = largest negated distance
                pairs = greedy_match(-center_distance_matrix(pred[track_idx], det_boxes), -thr)
            else:
                pairs = greedy_match(iou_matrix(pred[track_idx], det_boxes), thr)
            used_t, used_d = set(), set()
            for r, c in pairs:
                ti, di = track_idx[r], det_idx[c]
                self._tracks[ti].correct(states[di], t_ns, cfg.alpha, cfg.beta)
                matched.add(ti)
                used_t.add(ti)
                used_d.add(di)
                if self._tracks[ti].track_id < 0 and self._tracks[ti].hits >= cfg.min_hits:
                    self._tracks[ti].track_id = self._next_id
                    self._next_id += 1
                ids[di] = self._tracks[ti].track_id
                vx, vy = self._tracks[ti].v[:2]
                speed[di] = np.hypot(vx, vy)
            return [t for t in track_idx if t not in used_t], [d for d in det_idx if d not in used_d]

        confirmed, high = associate(confirmed, high, cfg.iou_threshold)
        if cfg.max_center_dist > 0:
            confirmed, high = associate(confirmed, high, cfg.max_center_dist, by_distance=True)
        confirmed, _ = associate(confirmed, low, cfg.low_iou_threshold)
        tentative, high = associate(tentative, high, cfg.iou_threshold)
        if cfg.max_center_dist > 0:
            # A person crossing fast moves about a face width between paired frames at ~9 Hz,
            # so IoU alone never lets them reach min_hits; they would pass with no result.
            _, high = associate(tentative, high, cfg.max_center_dist, by_distance=True)

        ended: list[int] = []
        kept: list[_Track] = []
        for i, t in enumerate(self._tracks):
            if i not in matched:
                t.misses += 1
                if t.track_id < 0 and t.misses > cfg.max_tentative_misses:
                    continue  # never was a person
                if t.track_id >= 0 and (t_ns - t.t_ns) / 1e9 > cfg.max_age_s:
                    ended.append(t.track_id)
                    continue
            kept.append(t)
        for di in high:
            t = _Track(states[di], [0.0] * 4, t_ns)
            if cfg.min_hits <= 1:
                t.track_id, self._next_id = self._next_id, self._next_id + 1
                ids[di] = t.track_id
            kept.append(t)
        self._tracks = kept
        return dets.with_data(track_id=ids, speed_px_s=speed), ended

    def finish(self) -> list[int]:
        """End every confirmed track (end of stream); returns their ids. Tentative ones vanish."""
        ended = [t.track_id for t in self._tracks if t.track_id >= 0]
        self._tracks = []
        return ended
