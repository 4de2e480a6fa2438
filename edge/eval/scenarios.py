"""Score the real pipeline against a simulated stream's truth.json (docs/truth.md).

``evaluate_stream(dir)`` replays the recording through ``edge.replay.replay`` and returns a
JSON-ready dict; ``score(truth, result)`` is the pure scoring step (tested on truth-vs-truth
inputs, ``oracle_result``). ``combine(per_stream)`` adds streams up. What is scored:

- faces: per paired frame, greedy one-to-one matching of detections to truth boxes at IoU >= 0.5
  (truth boxes clipped to the image; faces less than half inside it are not expected, and a
  detection on one is ignored), recall split masked / unmasked (and for faces >= 64 px tall),
  precision over all detections.
- tracks -> persons: each track is the person whose truth box it overlaps (IoU >= 0.5) in most
  of its frames; tracks matching nobody are 'unmatched'. A person followed by several tracks
  takes the most decisive verdict (elevated > normal > indeterminate) and counts as fragmented.
- canthus temperature: per person, the verdict's skin_temp_c minus the true canthus max;
  also per frame for every measured face (gate '').
- verdicts: confusion of expected (elevated / normal / indeterminate) vs pipeline
  (elevated / normal / indeterminate / missed), with the reasons.
- alerts: one per 'alert'/'new' event. True when its person is febrile (core >= threshold);
  recall over persons whose expected verdict is elevated; unmatched = track matches nobody.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.types import Detections, Verdict
from edge.vision.boxes import greedy_match, iou_matrix

STATUSES = ("elevated", "normal", "indeterminate")
GOT = STATUSES + ("missed",)
IOU_MATCH = 0.5


def match(det: np.ndarray, gt: np.ndarray, thr: float = IOU_MATCH) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by IoU (highest first); pairs (det_index, gt_index)."""
    return greedy_match(iou_matrix(det, gt), thr)


def _clip_box(box: list[float], w: int, h: int) -> tuple[np.ndarray, float]:
    """Box clipped to the image, and the fraction of its area that was inside."""
    b = np.asarray(box, np.float64)
    c = np.array([max(b[0], 0), max(b[1], 0), min(b[2], w - 1), min(b[3], h - 1)])
    full = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
    inside = max(c[2] - c[0], 0) * max(c[3] - c[1], 0)
    return c, inside / full


@dataclass
class _Stats:
    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        v = np.asarray(self.values, np.float64)
        if len(v) == 0:
            return {"n": 0, "mean_c": None, "mean_abs_c": None, "p95_abs_c": None, "max_abs_c": None}
        a = np.abs(v)
        return {"n": int(len(v)), "mean_c": round(float(v.mean()), 3), "mean_abs_c": round(float(a.mean()), 3),
                "p95_abs_c": round(float(np.percentile(a, 95)), 3), "max_abs_c": round(float(a.max()), 3)}


def ratio(k: int, n: int) -> float | None:
    """k / n rounded to 4 places (recall, precision, accuracy); None when n == 0."""
    return round(k / n, 4) if n else None


@dataclass
class _FrameTally:
    """What the per-frame pass over a replay collects."""

    faces: dict[str, list[int]] = field(default_factory=lambda: {
        k: [0, 0] for k in ("masked", "unmasked", "masked_h64", "unmasked_h64")})  # [detected, expected]
    detections: int = 0
    true_positives: int = 0
    votes: dict[int, dict[int, int]] = field(default_factory=dict)  # track -> person -> frames matched
    track_frames: dict[int, int] = field(default_factory=dict)
    frame_err: _Stats = field(default_factory=_Stats)

    def track_person(self) -> dict[int, int | None]:
        """Each track's person: the one it matched in most frames (None: matched nobody)."""
        out: dict[int, int | None] = {}
        for tid in set(self.track_frames) | set(self.votes):
            v = self.votes.get(tid, {})
            out[tid] = min(v, key=lambda p: (-v[p], p)) if v else None
        return out


def _tally_frames(truth: dict, result: Any) -> _FrameTally:
    w, h = truth["cameras"]["rgb"]["width"], truth["cameras"]["rgb"]["height"]
    rgb_truth = {f["index"]: f["faces"] for f in truth["frames"]["rgb"]}
    th_truth = {f["index"]: f for f in truth["frames"]["thermal"]}
    canthus = {p["id"]: p["canthus_c"] for p in truth["persons"]}
    t = _FrameTally()
    for rec in result.frames:
        gt, gt_ids, gt_keys, ignored = [], [], [], []
        for f in rgb_truth.get(rec.rgb_index, []):
            box, frac = _clip_box(f["box_xyxy"], w, h)
            # a face mostly outside the image or mostly behind a nearer person is not findable:
            # neither a miss nor, if found, a false detection (truth without visible_frac: visible)
            frac *= f.get("visible_frac", 1.0)
            if frac >= 0.5:
                gt.append(box)
                gt_ids.append(f["id"])
                key = "masked" if f["masked"] else "unmasked"
                big = f["box_xyxy"][3] - f["box_xyxy"][1] >= 64  # face height, RGB px
                gt_keys.append((key, key + "_h64") if big else (key,))
            elif frac > 0:
                ignored.append(box)  # mostly unseen: a detection there is neither right nor wrong
        d: Detections = rec.detections
        boxes = np.clip(d.box_xyxy, 0, [w - 1, h - 1, w - 1, h - 1])  # compare what lies in the image
        pairs = match(boxes, np.asarray(gt).reshape(-1, 4))
        free = sorted(set(range(len(d))) - {i for i, _ in pairs})
        n_ignored = len(match(boxes[free], np.asarray(ignored).reshape(-1, 4))) if free else 0
        t.detections += len(d) - n_ignored
        t.true_positives += len(pairs)
        for keys in gt_keys:
            for k in keys:
                t.faces[k][1] += 1
        for _, j in pairs:
            for k in gt_keys[j]:
                t.faces[k][0] += 1
        tids = d.data.get("track_id")
        tids = np.full(len(d), -1) if tids is None else np.asarray(tids).astype(int)
        for tid in tids[tids >= 0]:
            t.track_frames[int(tid)] = t.track_frames.get(int(tid), 0) + 1
        th = th_truth.get(rec.thermal_index)
        in_thermal = {f["id"] for f in th["faces"]} if th else set()
        skin, gate = d.data.get("skin_temp_c"), d.data.get("gate")
        for i, j in pairs:
            pid = gt_ids[j]
            if tids[i] >= 0:
                per = t.votes.setdefault(int(tids[i]), {})
                per[pid] = per.get(pid, 0) + 1
            if skin is not None and np.isfinite(skin[i]) and (gate is None or gate[i] == "") and pid in in_thermal:
                t.frame_err.values.append(float(skin[i]) - canthus[pid])
    return t


def _person_rows(truth: dict, result: Any, track_person: dict[int, int | None], track_frames: dict[int, int]):
    """One row per truth person with the pipeline's verdict for it, plus confusion and errors."""
    verdicts: dict[int, Verdict] = dict(result.verdicts)
    rank = {"elevated": 0, "normal": 1, "indeterminate": 2}
    rows, subj_err = [], _Stats()
    confusion = {e: {g: 0 for g in GOT} for e in STATUSES}
    for p in sorted(truth["persons"], key=lambda q: q["id"]):
        pid = p["id"]
        tracks = sorted(t for t, q in track_person.items() if q == pid)
        vs = [(verdicts[t], t) for t in tracks if t in verdicts]
        best = min(vs, key=lambda x: (rank[x[0].status], -track_frames.get(x[1], 0)))[0] if vs else None
        got, reason = (best.status, best.reason) if best else ("missed", "")
        exp = p["expected"]
        confusion[exp["status"]][got] += 1
        err = None
        if best is not None and best.skin_temp_c is not None and np.isfinite(best.skin_temp_c):
            err = float(best.skin_temp_c) - p["canthus_c"]
            subj_err.values.append(err)
        rows.append({
            "id": pid, "core_c": p["core_c"], "canthus_c": p["canthus_c"], "mask": p["mask"], "glasses": p["glasses"],
            "expected": exp["status"], "expected_reason": exp["reason"], "got": got, "got_reason": reason,
            "method": best.method if best else "", "core_est_c": _round(best.core_temp_c if best else None),
            "skin_c": _round(best.skin_temp_c if best else None), "skin_error_c": _round(err),
            "tracks": tracks, "correct": got == exp["status"],
        })
    return rows, confusion, subj_err


def _alerts(truth: dict, result: Any, track_person: dict[int, int | None]) -> dict[str, Any]:
    persons = {p["id"]: p for p in truth["persons"]}
    rows, alerted = [], set()
    for e in (e for e in result.events if e.kind == "alert" and e.type == "new"):
        pid = track_person.get(e.track_id)
        if pid is not None:
            alerted.add(pid)
        rows.append({"track_id": e.track_id, "person": pid,
                     "true": pid is not None and persons[pid]["core_c"] >= float(truth["threshold_c"]),
                     "core_est_c": _round(e.verdict.core_temp_c)})
    expected = [pid for pid, p in persons.items() if p["expected"]["status"] == "elevated"]
    n_true = sum(1 for a in rows if a["true"])
    unmatched = sum(1 for a in rows if a["person"] is None)
    recalled = sum(1 for pid in expected if pid in alerted)
    return {"n": len(rows), "true": n_true, "false": len(rows) - n_true, "unmatched": unmatched,
            "duplicates": len(rows) - unmatched - len(alerted), "precision": ratio(n_true, len(rows)),
            "expected_elevated": len(expected), "recalled": recalled, "recall": ratio(recalled, len(expected)),
            "rows": rows}


def score(truth: dict, result: Any) -> dict[str, Any]:
    """Score a replay ``result`` (edge.replay.ReplayResult or the same shape) against truth."""
    t = _tally_frames(truth, result)
    track_person = t.track_person()
    rows, confusion, subj_err = _person_rows(truth, result, track_person, t.track_frames)
    return {
        "scenario": truth.get("scenario", ""),
        "hard_case": truth.get("hard_case", ""),
        "pairs": int(result.pairs),
        "pairs_per_s": round(float(result.pairs_per_s), 2),
        "faces": {
            **{k: {"detected": v[0], "expected": v[1], "recall": ratio(*v)} for k, v in t.faces.items()},
            "detections": t.detections, "true_positives": t.true_positives,
            "precision": ratio(t.true_positives, t.detections),
        },
        "canthus_error_subject": subj_err.summary(),
        "canthus_error_frame": t.frame_err.summary(),
        "_subject_errors": subj_err.values,
        "_frame_errors": t.frame_err.values,
        "confusion": confusion,
        "persons": rows,
        "verdicts_correct": sum(r["correct"] for r in rows),
        "tracks": {"n": len(track_person), "unmatched": sorted(k for k, q in track_person.items() if q is None),
                   "fragmented_persons": sorted(r["id"] for r in rows if len(r["tracks"]) > 1)},
        "alerts": _alerts(truth, result, track_person),
    }


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def combine(streams: list[dict]) -> dict[str, Any]:
    """Totals over several scored streams (sums of counts, errors pooled)."""
    def tot(path: tuple[str, ...]) -> int:
        s = 0
        for r in streams:
            v: Any = r
            for k in path:
                v = v[k]
            s += v
        return s

    conf = {e: {g: sum(r["confusion"][e][g] for r in streams) for g in GOT} for e in STATUSES}
    subj = _Stats([v for r in streams for v in r["_subject_errors"]])
    frame = _Stats([v for r in streams for v in r["_frame_errors"]])
    n_alerts, n_true = tot(("alerts", "n")), tot(("alerts", "true"))
    exp_el, rec = tot(("alerts", "expected_elevated")), tot(("alerts", "recalled"))
    recall = {f"{k}_recall": ratio(tot(("faces", k, "detected")), tot(("faces", k, "expected")))
              for k in ("masked", "unmasked", "masked_h64", "unmasked_h64")}
    return {
        "streams": len(streams),
        "pairs": tot(("pairs",)),
        "pairs_per_s_median": round(float(np.median([r["pairs_per_s"] for r in streams])), 2) if streams else None,
        "faces": {**recall,
                  "precision": ratio(tot(("faces", "true_positives")), tot(("faces", "detections")))},
        "canthus_error_subject": subj.summary(),
        "canthus_error_frame": frame.summary(),
        "confusion": conf,
        "persons": sum(len(r["persons"]) for r in streams),
        "verdicts_correct": tot(("verdicts_correct",)),
        "alerts": {"n": n_alerts, "true": n_true, "false": n_alerts - n_true, "unmatched": tot(("alerts", "unmatched")),
                   "duplicates": tot(("alerts", "duplicates")), "precision": ratio(n_true, n_alerts),
                   "expected_elevated": exp_el, "recalled": rec, "recall": ratio(rec, exp_el)},
    }


def evaluate_stream(stream_dir: str | Path, config: Any = None) -> dict[str, Any]:
    """Replay ``stream_dir`` through the real pipeline and score it against its truth.json."""
    from edge.io.recording import RecordingError, open_recording
    from edge.replay import replay

    truth = open_recording(stream_dir).truth()
    if truth is None:
        raise RecordingError(f"{Path(stream_dir) / 'truth.json'}: missing (only simulated streams carry truth)")
    result = replay(stream_dir, config)
    out = score(truth, result)
    out["stream"] = str(stream_dir)
    # a damaged stream is scored on what could be read; "_" keeps it out of the JSON and the report
    out["_loss_lines"] = result.loss_lines()
    return out


# --- truth-vs-truth: what a perfect pipeline would hand back (tests, `eval --oracle`) --------------
@dataclass
class _OracleFrame:
    thermal_index: int
    rgb_index: int
    t_ns: int
    detections: Detections


@dataclass
class _OracleEvent:
    kind: str
    type: str
    track_id: int
    verdict: Verdict


@dataclass
class OracleResult:
    frames: list
    events: list
    verdicts: dict
    pairs: int
    pairs_per_s: float = 0.0


def oracle_result(truth: dict) -> OracleResult:
    """A ReplayResult-shaped object built from truth itself: every face detected with its true
    box, tracked by person id, measured at its true canthus, with the expected verdicts. Pairs
    each thermal frame with the nearest RGB frame, as the pipeline does."""
    rgb = truth["frames"]["rgb"]
    t_rgb = np.array([f["t_ns"] for f in rgb], np.int64)
    persons = {p["id"]: p for p in truth["persons"]}
    frames = []
    for th in truth["frames"]["thermal"]:
        j = int(np.argmin(np.abs(t_rgb - th["t_ns"])))
        faces = rgb[j]["faces"]
        gates = {f["id"]: f.get("gate", "") for f in th["faces"]}
        n = len(faces)
        dets = Detections(
            np.array([f["box_xyxy"] for f in faces], np.float32).reshape(n, 4), np.ones(n, np.float32),
            np.array([f["landmarks_xy"] for f in faces], np.float32).reshape(n, 5, 2),
            {"track_id": np.array([f["id"] for f in faces], np.int64),
             "gate": np.array([gates.get(f["id"], "outside_thermal_view") for f in faces], object),
             "skin_temp_c": np.array([persons[f["id"]]["canthus_c"] for f in faces], np.float32)})
        frames.append(_OracleFrame(th["index"], j, th["t_ns"], dets))
    verdicts, events = {}, []
    for pid, p in persons.items():
        e = p["expected"]
        measured = e["status"] != "indeterminate"
        v = Verdict(e["status"], e["reason"], "absolute" if measured else "none", truth["threshold_c"],
                    p["core_c"] if measured else None, p["canthus_c"] if measured else None, 0.0 if measured else None)
        verdicts[pid] = v
        if e["status"] == "elevated":
            events.append(_OracleEvent("alert", "new", pid, v))
    return OracleResult(frames, events, verdicts, len(frames))
