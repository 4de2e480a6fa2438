"""Decision: per-person aggregation, alarm logic and the track lifecycle events.

Pure functions decide (``absolute_verdict``, ``relative_verdict``, ``combine_verdicts``): an
uncertain reading close to the threshold is indeterminate 'borderline', never normal. Per person
the best valid frames are aggregated with a high percentile; ``Screener`` turns confirmed tracks
into alert new/update/end and screening end events. The full rules -- guards, the relative
baseline, aggregation and the lifecycle -- are in docs/decision.md.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel
from edge.errors import UserError
from edge.thermal import faststats
from edge.types import (
    Detections,
    EventKind,
    EventType,
    GateReason,
    ScreeningEvent,
    Verdict,
    VerdictStatus,
)


class DecisionConfig(StrictModel):
    threshold_c: float | None = Field(
        None, ge=34.0, le=39.0,
        description="Absolute alarm threshold on the estimated core temperature, degC, 34.0..39.0 in 0.1 "
                    "steps; unset = the station calibration's skin_to_core.decision_threshold_c (fitted "
                    "with the skin->core model, so eval-clinical scores the rule the station runs); set "
                    "only to override it")
    method: Literal["absolute", "relative", "both"] = Field(
        "both",
        description="Alarm rule: absolute (core vs threshold), relative (skin vs baseline + delta) or both "
                    "(either fires)")
    borderline_k: float = Field(
        2.0, ge=0, le=4,
        description="Normal needs reading + k * measurement sigma (skin_sd_c) below the threshold, sigmas")
    relative_delta_c: float = Field(
        1.0, ge=0.3, le=3.0,
        description="Relative alarm at baseline skin + this, degC")
    relative_margin_c: float = Field(
        0.1, ge=0, le=1.0,
        description="Relative normal needs skin + k * sigma < baseline + delta - this (baseline uncertainty), "
                    "degC")
    baseline_window: int = Field(
        20, ge=3, le=500,
        description="Normal subjects in the relative baseline, subjects")
    warmup_subjects: int = Field(
        5, ge=2, le=500,
        description="Subjects needed before relative verdicts, subjects")
    trim_fraction: float = Field(
        0.1, ge=0, le=0.45,
        description="Fraction cut from each end before the baseline mean, unitless")
    baseline_max_age_s: float = Field(
        1800.0, ge=10, le=86400,
        description="Baseline entries older than this drop out (drift), s")
    min_valid_frames: int = Field(
        3, ge=1, le=100,
        description="Measurable frames a person needs for a verdict, frames")
    best_n: int = Field(10, ge=1, le=1000, description="Frames (by quality) the aggregation uses, frames")
    percentile: float = Field(
        90.0, ge=50, le=100,
        description="Percentile of the best frames' core/skin used, percent")
    alert_update_delta_c: float = Field(
        0.3, gt=0, le=5,
        description="Alert 'update' when the aggregated core moved this much since the last alert event, degC")
    alert_update_quality_gain: float = Field(
        0.2, gt=0, le=1,
        description="Alert 'update' when the best frame's quality rose this much since the last alert event, "
                    "0..1")
    max_alert_updates: int = Field(
        3, ge=0, le=100,
        description="Alert 'update' events per person at most, events")
    snapshot_margin_frac: float = Field(
        0.15, ge=0, le=1,
        description="Margin added around the face box for snapshots, fraction of box size")

    @field_validator("threshold_c")
    @classmethod
    def _tenth_degree(cls, v: float | None) -> float | None:
        if v is None:
            return None
        if abs(v * 10 - round(v * 10)) > 1e-6:
            raise ValueError(f"threshold_c={v} is not a multiple of 0.1 degC (allowed: 34.0..39.0 in 0.1 steps)")
        return round(v, 1)

    @model_validator(mode="after")
    def _warmup_fits(self) -> DecisionConfig:
        if self.warmup_subjects > self.baseline_window:
            raise ValueError(f"warmup_subjects={self.warmup_subjects} exceeds baseline_window="
                             f"{self.baseline_window} (allowed: 2..baseline_window)")
        return self


# Where the alarm threshold in force came from (logged at start-up, printed by validate-config).
THRESHOLD_FROM_CONFIG = "station config decision.threshold_c"
THRESHOLD_FROM_CALIBRATION = "calibration skin_to_core.decision_threshold_c"


class ThresholdError(UserError, ValueError):
    """No usable alarm threshold (none set, or the calibration's is outside what the decision
    stage accepts)."""


def threshold_in_force(cfg: DecisionConfig, calibration_threshold_c: float | None) -> tuple[float, str]:
    """The absolute alarm threshold the station runs, degC, and where it came from: the station
    config's decision.threshold_c when set (an operator override), else the calibration's fitted
    skin_to_core.decision_threshold_c -- the one number eval-clinical scores. The calibration's
    value must pass the same bounds and 0.1 degC steps as the config field."""
    if cfg.threshold_c is not None:
        return cfg.threshold_c, THRESHOLD_FROM_CONFIG
    if calibration_threshold_c is None:
        raise ThresholdError("no alarm threshold: set decision.threshold_c in the station config or "
                             "skin_to_core.decision_threshold_c in the calibration")
    try:
        thr = DecisionConfig(threshold_c=calibration_threshold_c).threshold_c
    except ValueError as e:
        msg = e.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(e, "errors") else str(e)
        raise ThresholdError(f"{THRESHOLD_FROM_CALIBRATION}={calibration_threshold_c}: {msg} (the decision "
                             "stage takes 34.0..39.0 degC in 0.1 steps)") from None
    assert thr is not None
    return thr, THRESHOLD_FROM_CALIBRATION


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# Per-frame values of one person: Python lists (the Screener's) or arrays (evaluation, tests)
_Floats = np.ndarray | list[float]


def _guard(uncertainty_c: float | None, guard_sd_c: float | None) -> float:
    """The sigma of the guard band: guard_sd_c if known, else the total, else infinite."""
    for u in (guard_sd_c, uncertainty_c):
        if u is not None and math.isfinite(u):
            return float(u)
    return float("inf")


def absolute_verdict(core_c: float, uncertainty_c: float, threshold_c: float, k: float = 2.0,
                     skin_c: float | None = None, guard_sd_c: float | None = None) -> Verdict:
    """Core temperature vs threshold (degC). Normal only with k * guard_sd_c clearance below it
    (guard_sd_c: the measurement's own sigma; None -> uncertainty_c, the total)."""
    m: dict[str, Any] = dict(method="absolute", threshold_c=threshold_c, core_temp_c=_f(core_c), skin_temp_c=_f(skin_c),
             uncertainty_c=_f(uncertainty_c))
    if not math.isfinite(core_c):
        return Verdict(VerdictStatus.INDETERMINATE, GateReason.NO_VALID_FRAMES, "none")
    if core_c >= threshold_c:
        return Verdict(VerdictStatus.ELEVATED, **m)
    u = _guard(uncertainty_c, guard_sd_c)
    if core_c + k * u < threshold_c:
        return Verdict(VerdictStatus.NORMAL, **m)
    return Verdict(VerdictStatus.INDETERMINATE, GateReason.BORDERLINE, **m)


def relative_verdict(skin_c: float, baseline_c: float | None, cfg: DecisionConfig,
                     core_c: float | None = None, uncertainty_c: float | None = None,
                     guard_sd_c: float | None = None) -> Verdict:
    """Skin temperature vs baseline + delta (degC); baseline None = still warming up.
    The verdict's threshold_c is then a *skin* temperature. Guard sigma as in absolute_verdict
    (neither guard_sd_c nor uncertainty_c known: never normal)."""
    m: dict[str, Any] = dict(method="relative", skin_temp_c=_f(skin_c), core_temp_c=_f(core_c), uncertainty_c=_f(uncertainty_c))
    if baseline_c is None:
        return Verdict(VerdictStatus.INDETERMINATE, GateReason.RELATIVE_WARMUP, **m)
    if not math.isfinite(skin_c):
        return Verdict(VerdictStatus.INDETERMINATE, GateReason.NO_VALID_FRAMES, "none")
    thr = round(float(baseline_c) + cfg.relative_delta_c, 3)
    if skin_c >= thr:
        return Verdict(VerdictStatus.ELEVATED, threshold_c=thr, **m)
    if skin_c + cfg.borderline_k * _guard(uncertainty_c, guard_sd_c) < thr - cfg.relative_margin_c:
        return Verdict(VerdictStatus.NORMAL, threshold_c=thr, **m)
    return Verdict(VerdictStatus.INDETERMINATE, GateReason.BORDERLINE, threshold_c=thr, **m)


def combine_verdicts(absolute: Verdict, relative: Verdict, method: str) -> Verdict:
    """One verdict from both rules (see module docstring)."""
    if method == "absolute":
        return absolute
    if method == "relative":
        return relative
    if absolute.status == VerdictStatus.ELEVATED:
        return absolute
    if relative.status == VerdictStatus.ELEVATED:
        return relative
    if absolute.status != VerdictStatus.NORMAL:
        return absolute
    if relative.status == VerdictStatus.NORMAL or relative.reason == GateReason.RELATIVE_WARMUP:
        return absolute
    return relative


def trimmed_mean(values: np.ndarray, trim_fraction: float) -> float:
    """Mean after cutting floor(trim_fraction * n) values from each end."""
    v = np.sort(np.asarray(values, np.float64))
    cut = int(np.floor(trim_fraction * len(v)))
    return float(v[cut:len(v) - cut].mean())


def aggregate(core_c: _Floats, skin_c: _Floats, uncertainty_c: _Floats, skin_sd_c: _Floats,
              quality: _Floats, best_n: int, percentile: float) -> tuple[float, float, float, float]:
    """Valid frames of one person -> (core, skin, uncertainty, skin_sd) degC: the percentile of
    core and skin over the best_n frames by quality (ties: later frames first) and the median
    sigmas of those frames (not divided by sqrt(n): the small-target part is systematic).
    Runs on every new valid frame of every person: a few dozen floats, so Python lists and
    edge/faststats (np.percentile/np.median exactly, without their overhead)."""
    best = _best_first(_floats(quality))[:best_n]
    c, s, u, sd = ([v[i] for i in best] for v in map(_floats, (core_c, skin_c, uncertainty_c, skin_sd_c)))
    return (faststats.percentile(c, percentile), faststats.percentile(s, percentile),
            faststats.median(u), faststats.median(sd))


def _best_first(quality: list[float]) -> list[int]:
    """Frame indices by descending quality, the later frame first among equals (NaN last)."""
    q = quality
    if all(map(math.isfinite, q)):
        return sorted(range(len(q)), key=lambda i: (-q[i], -i))
    order: list[int] = np.lexsort((-np.arange(len(q)), -np.asarray(q))).tolist()  # NaN: lexsort puts it last
    return order


def _floats(a: _Floats) -> list[float]:
    """A list of Python floats (lists of floats are passed through)."""
    if isinstance(a, list):
        return a
    floats: list[float] = np.asarray(a, np.float64).tolist()
    return floats


class RelativeBaseline:
    """Trimmed mean of the last normal subjects' skin temperatures, with warm-up and ageing."""

    def __init__(self, cfg: DecisionConfig):
        self.cfg = cfg
        self._entries: deque[tuple[int, float]] = deque(maxlen=cfg.baseline_window)

    def __len__(self) -> int:
        return len(self._entries)

    def value(self, t_ns: int) -> float | None:
        """Baseline skin temperature at t_ns, degC, or None while warming up."""
        horizon = t_ns - int(self.cfg.baseline_max_age_s * 1e9)
        while self._entries and self._entries[0][0] < horizon:
            self._entries.popleft()
        if len(self._entries) < self.cfg.warmup_subjects:
            return None
        return trimmed_mean(np.array([s for _, s in self._entries]), self.cfg.trim_fraction)

    def add(self, skin_c: float, t_ns: int) -> None:
        self._entries.append((t_ns, float(skin_c)))

    def reset(self) -> None:
        self._entries.clear()


def _crop(img: np.ndarray | None, box: np.ndarray | None, margin: float) -> np.ndarray | None:
    if img is None or box is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(map(math.isfinite, (x1, y1, x2, y2))):
        return None
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    h, w = img.shape[:2]
    xa, ya, xb, yb = int(max(0, x1 - mx)), int(max(0, y1 - my)), int(min(w, x2 + mx)), int(min(h, y2 + my))
    return img[ya:yb, xa:xb].copy() if xb > xa and yb > ya else None


# Gates every passing subject goes through while walking up or leaving: they explain an
# indeterminate verdict only when nothing else blocked the frames where the subject was in place.
POSITION_GATES = (GateReason.TOO_FAR, GateReason.OUTSIDE_THERMAL_VIEW)


def _reason(gates: Counter[str], min_frames: int) -> str:
    """Reason of an indeterminate verdict from a person's gate counts: the most common gate
    among the frames where the subject was near and in view, if there were enough of those
    frames for a verdict (glasses worn all along, not the 'too_far' of the approach), else the
    most common gate overall; 'no_valid_frames' without any."""
    near = Counter({g: c for g, c in gates.items() if g not in POSITION_GATES})
    if sum(near.values()) >= min_frames:
        return near.most_common(1)[0][0]
    return gates.most_common(1)[0][0] if gates else GateReason.NO_VALID_FRAMES


def _resets_baseline(blackbody_state: str | None) -> bool:
    return blackbody_state not in (None, "ok", "ffc", "disabled")


@dataclass
class _Person:
    track_id: int
    last_t_ns: int = 0
    core: list[float] = field(default_factory=list)
    skin: list[float] = field(default_factory=list)
    unc: list[float] = field(default_factory=list)
    sd: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    gates: Counter[str] = field(default_factory=Counter)
    best_rank: tuple[float, float] = (-1.0, -1.0)
    best: dict[str, Any] = field(default_factory=dict)  # the best frame: time, boxes, mask, crops
    n_valid: int = 0  # valid frames seen (the lists keep only the best of them)
    alert: Verdict | None = None
    alert_quality: float = 0.0
    n_updates: int = 0
    live: Verdict | None = None  # latest verdict while in view (>= min_valid_frames valid frames)


def _prune(p: _Person, keep: int) -> None:
    """Bound the memory and the per-frame aggregation cost of a person who stays in view for
    long: keep the ``keep`` (>= best_n) best frames by quality, in time order, so aggregate()
    still sees the same best_n frames with the same later-first tie-break."""
    idx = sorted(_best_first(p.quality)[:keep])
    for name in ("core", "skin", "unc", "sd", "quality"):
        vals = getattr(p, name)
        setattr(p, name, [vals[i] for i in idx])


class Screener:
    """Per-track state machine -> ScreeningEvents. See the module docstring for the rules.

    calibration_threshold_c: the station calibration's skin_to_core.decision_threshold_c, the
    absolute threshold unless cfg.threshold_c overrides it (``threshold_in_force``); the one in
    force is ``threshold_c``, its origin ``threshold_source``."""

    def __init__(self, cfg: DecisionConfig | None = None, calibration_threshold_c: float | None = None):
        self.cfg = cfg or DecisionConfig()
        self.threshold_c, self.threshold_source = threshold_in_force(self.cfg, calibration_threshold_c)
        self.baseline = RelativeBaseline(self.cfg)
        self._people: dict[int, _Person] = {}
        # Final verdicts for the evaluator and replays; bounded so a station running for months
        # does not keep every person it ever screened.
        self._verdicts: dict[int, Verdict] = {}
        self.max_kept_verdicts = 10_000
        self.counts: Counter[str] = Counter()  # final statuses, 'alerts', 'indeterminate:<reason>'

    def verdicts(self) -> dict[int, Verdict]:
        """Final verdict per ended track id."""
        return dict(self._verdicts)

    def live_verdict(self, track_id: int) -> Verdict | None:
        """The verdict of a person still in view, as of their last valid frame: None until they
        have min_valid_frames valid frames; once alerted, elevated (as the final verdict will be).
        Visitor guidance reads it (edge/guidance.py); it decides nothing itself."""
        p = self._people.get(track_id)
        if p is None:
            return None
        return p.alert if p.alert is not None else p.live

    def update(self, dets: Detections, t_ns: int, ended_track_ids: list[int],
               rgb_bgr: np.ndarray | None = None, thermal_c: np.ndarray | None = None,
               blackbody_state: str | None = None) -> list[ScreeningEvent]:
        """dets: tracked and measured faces of one pair (track_id, gate, core_temp_c, ... in
        data); rgb_bgr/thermal_c: that pair's images for snapshots; blackbody_state: optional
        BlackbodyStatus.state -- missing/moved/unstable reset the relative baseline (so does a
        face gated blackbody_<that>); 'ffc' (routine, every few minutes on a Lepton, and the
        blackbody offset carries over) and 'disabled' (no blackbody at all) do not."""
        gates = dets.data.get("gate", ())
        if _resets_baseline(blackbody_state) or any(
                str(g).startswith("blackbody_") and _resets_baseline(str(g)[10:]) for g in gates):
            self.baseline.reset()
        events: list[ScreeningEvent] = []
        ids = dets.data.get("track_id")
        for i, tid in enumerate(() if ids is None else np.asarray(ids).tolist()):
            if tid < 0:
                continue
            p = self._people.get(tid)
            if p is None:
                p = self._people[tid] = _Person(tid)
            if self._record(p, dets, i, t_ns, rgb_bgr, thermal_c) and p.n_valid >= self.cfg.min_valid_frames:
                events += self._live(p, t_ns)
        for tid in ended_track_ids:
            if tid in self._people:
                events += self._end(self._people.pop(tid))
        return events

    def finish(self) -> list[ScreeningEvent]:
        """End every person still open (end of stream)."""
        events: list[ScreeningEvent] = []
        for tid in sorted(self._people):
            events += self._end(self._people.pop(tid))
        return events

    # -- internals -------------------------------------------------------------------------
    def _record(self, p: _Person, dets: Detections, i: int, t_ns: int, rgb: np.ndarray | None,
                thermal: np.ndarray | None) -> bool:
        """Add one frame of person p; True if it was a valid measurement."""
        d = dets.data
        p.last_t_ns = t_ns
        gate = str(d["gate"][i]) if "gate" in d else GateReason.NO_VALID_FRAMES
        core = float(d["core_temp_c"][i]) if "core_temp_c" in d else float("nan")
        valid = gate == "" and math.isfinite(core)
        q = float(d["quality"][i]) if valid and "quality" in d else 0.0
        if valid:
            p.core.append(core)
            p.skin.append(float(d["skin_temp_c"][i]))
            p.unc.append(float(d["uncertainty_c"][i]))
            p.sd.append(float(d["skin_sd_c"][i]) if "skin_sd_c" in d else float(d["uncertainty_c"][i]))
            p.quality.append(q)
            p.n_valid += 1
            if len(p.core) > 4 * max(self.cfg.best_n, 16):
                _prune(p, 2 * self.cfg.best_n)
        else:
            p.gates[gate or GateReason.NO_VALID_FRAMES] += 1
        rank = (q, float(dets.score[i]))
        if rank > p.best_rank:  # copy crops only when a better frame arrives
            p.best_rank = rank
            box_th = d["box_xyxy_thermal"][i] if "box_xyxy_thermal" in d else None
            p.best = dict(
                t_ns=t_ns, score=float(dets.score[i]), quality=q,
                box_rgb=tuple(dets.box_xyxy[i].tolist()),
                box_th=None if box_th is None else tuple(np.asarray(box_th, np.float64).tolist()),
                mask=str(d["mask"][i]) if "mask" in d else "unknown",
                mask_conf=float(d["mask_conf"][i]) if "mask_conf" in d else 0.0,
                rgb=_crop(rgb, dets.box_xyxy[i], self.cfg.snapshot_margin_frac),
                thermal=_crop(thermal, box_th, self.cfg.snapshot_margin_frac))
        return valid

    def _measured_verdict(self, p: _Person, t_ns: int) -> tuple[Verdict, Verdict, Verdict]:
        """(combined, absolute, relative) verdicts from p's valid frames (>= min_valid_frames)."""
        cfg = self.cfg
        core, skin, unc, sd = aggregate(p.core, p.skin, p.unc, p.sd, p.quality, cfg.best_n, cfg.percentile)
        a = absolute_verdict(core, unc, self.threshold_c, cfg.borderline_k, skin, sd)
        r = relative_verdict(skin, self.baseline.value(t_ns), cfg, core, unc, sd)
        return combine_verdicts(a, r, cfg.method), a, r

    def _event(self, kind: EventKind, typ: EventType, p: _Person, v: Verdict) -> ScreeningEvent:
        b = p.best
        return ScreeningEvent(
            kind=kind, type=typ, track_id=p.track_id, t_ns=b["t_ns"], verdict=v, box_xyxy_rgb=b["box_rgb"],
            box_xyxy_thermal=b["box_th"], score=b["score"], mask=b["mask"], mask_conf=b["mask_conf"],
            n_frames=p.n_valid, snapshot_rgb=b["rgb"], snapshot_thermal_c=b["thermal"])

    def _live(self, p: _Person, t_ns: int) -> list[ScreeningEvent]:
        v, _, _ = self._measured_verdict(p, t_ns)
        p.live = v
        if v.status != VerdictStatus.ELEVATED:
            return []
        if p.alert is None:
            p.alert, p.alert_quality = v, p.best["quality"]
            self.counts["alerts"] += 1
            return [self._event(EventKind.ALERT, EventType.NEW, p, v)]
        moved = abs(v.core_temp_c - p.alert.core_temp_c) >= self.cfg.alert_update_delta_c if (
            v.core_temp_c is not None and p.alert.core_temp_c is not None) else False
        better = p.best["quality"] >= p.alert_quality + self.cfg.alert_update_quality_gain
        if (moved or better) and p.n_updates < self.cfg.max_alert_updates:
            p.alert, p.alert_quality = v, p.best["quality"]
            p.n_updates += 1
            return [self._event(EventKind.ALERT, EventType.UPDATE, p, v)]
        return []

    def _end(self, p: _Person) -> list[ScreeningEvent]:
        cfg = self.cfg
        if p.n_valid >= cfg.min_valid_frames:
            v, a, r = self._measured_verdict(p, p.last_t_ns)
            # Baseline guard: only clearly normal subjects, never elevated or borderline ones.
            # While warming up the absolute rule must call them normal (even in relative mode:
            # the first people are not trusted blindly); in relative mode the absolute rule is
            # otherwise only a veto against elevated cores.
            rel_ok = r.status == VerdictStatus.NORMAL or (r.reason == GateReason.RELATIVE_WARMUP and a.status == VerdictStatus.NORMAL)
            abs_ok = a.status == VerdictStatus.NORMAL or (cfg.method == "relative" and a.status != VerdictStatus.ELEVATED)
            if p.alert is None and v.status != VerdictStatus.ELEVATED and rel_ok and abs_ok and a.skin_temp_c is not None:
                self.baseline.add(a.skin_temp_c, p.last_t_ns)
            if p.alert is not None and v.status != VerdictStatus.ELEVATED:
                v = p.alert  # once alerted, never pulled back toward normal
        else:
            reason = _reason(p.gates, cfg.min_valid_frames)
            v = Verdict(VerdictStatus.INDETERMINATE, reason, "none")
        self._verdicts[p.track_id] = v
        if len(self._verdicts) > self.max_kept_verdicts:
            del self._verdicts[next(iter(self._verdicts))]  # oldest first (dicts keep order)
        self.counts[v.status] += 1
        if v.status == VerdictStatus.INDETERMINATE:
            self.counts[f"indeterminate:{v.reason}"] += 1
        events = []
        if p.alert is not None:
            events.append(self._event(EventKind.ALERT, EventType.END, p, v))
        events.append(self._event(EventKind.SCREENING, EventType.END, p, v))
        return events
