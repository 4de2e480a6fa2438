"""Face detection and mask-status evaluation on a folder of real labelled photos.

The folder is laid out like ../shared/data/masked_faces::

    DIR/manifest.json   {"labels": [...], "images": [{"image": "images/x.png",
                          "faces": [{"label": "with_mask", "box_xyxy": [x1, y1, x2, y2]}, ...]}, ...]}
    DIR/images/...      the photos the manifest names (paths relative to DIR)

Each photo goes through the product's own detector (its configured input size and thresholds)
and mask classifier, exactly as a frame would in the pipeline. Detections are matched greedily
to labelled boxes, best score first, at IoU >= ``iou_threshold``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import UserError
from edge.eval.scenarios import ratio
from edge.eval.tables import fmt_num
from edge.types import Detections
from edge.vision.boxes import iou_matrix
from edge.vision.detection import FaceDetector

SIZE_BUCKETS_PX = {"all": 0.0, ">=32px": 32.0, ">=64px": 64.0}
# label -> the mask status a correct classifier gives it (None: reported, not scored)
EXPECTED_MASK = {"with_mask": "yes", "without_mask": "no", "mask_weared_incorrect": None}


@dataclass
class LabelledImage:
    path: Path
    labels: list[str]
    boxes_xyxy: np.ndarray  # (M,4) float32


@dataclass
class Manifest:
    dataset: str | None  # the manifest's "dataset" name, if it gives one
    images: list[LabelledImage]


def load_manifest(directory: str | Path) -> Manifest:
    """Read and check DIR/manifest.json; every problem is a one-line UserError naming the file."""
    directory = Path(directory)
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (expected a folder with manifest.json)")
    if not path.is_file():
        raise UserError(f"{path}: missing (expected a manifest listing images and face boxes)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise UserError(f"{path}: expected an object with an 'images' list")
    out: list[LabelledImage] = []
    for i, entry in enumerate(doc["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise UserError(f"{where}: expected an object with an 'image' path")
        faces = entry.get("faces", [])
        if not isinstance(faces, list):
            raise UserError(f"{where}.faces: expected a list")
        labels, boxes = [], []
        for j, face in enumerate(faces):
            box = face.get("box_xyxy") if isinstance(face, dict) else None
            label = face.get("label") if isinstance(face, dict) else None
            if not isinstance(label, str):
                raise UserError(f"{where}.faces[{j}].label: expected a string")
            try:
                b = np.asarray(box, dtype=np.float64).reshape(4)
            except (TypeError, ValueError):
                raise UserError(f"{where}.faces[{j}].box_xyxy={box!r}: expected 4 numbers x1 y1 x2 y2") from None
            if not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
                raise UserError(f"{where}.faces[{j}].box_xyxy={box!r}: need x2 > x1 and y2 > y1")
            labels.append(label)
            boxes.append(b)
        out.append(LabelledImage(directory / entry["image"], labels,
                                 np.asarray(boxes, np.float32).reshape(-1, 4)))
    dataset = doc.get("dataset")
    return Manifest(dataset if isinstance(dataset, str) else None, out)


def match_greedy(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray,
                 iou_threshold: float) -> np.ndarray:
    """(len(gt),) index of the detection matched to each labelled face, -1 if none.

    Detections are taken best score first; each takes the unmatched face it overlaps most.
    """
    match = np.full(len(gt_boxes), -1, np.int64)
    ious = iou_matrix(det_boxes, gt_boxes)
    for d in np.argsort(-det_scores, kind="stable"):
        if len(gt_boxes) == 0:
            break
        cand = np.where(match < 0, ious[d], -1.0)
        g = int(np.argmax(cand))
        if cand[g] >= iou_threshold:
            match[g] = d
    return match


def _into_frame(bgr: np.ndarray, frame_wh: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The photo scaled to fit a (w,h) frame at its top-left, black elsewhere; and the scale."""
    w, h = frame_wh
    s = min(w / bgr.shape[1], h / bgr.shape[0])
    rw, rh = max(1, round(bgr.shape[1] * s)), max(1, round(bgr.shape[0] * s))
    frame = np.zeros((h, w, 3), np.uint8)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    frame[:rh, :rw] = cv2.resize(bgr, (rw, rh), interpolation=interp)
    return frame, s


def evaluate_faces_dir(directory: str | Path, detector: FaceDetector, *, mask_cfg: Any = None,
                       classify_mask: bool = True, iou_threshold: float = 0.5,
                       frame_wh: tuple[int, int] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate ``detector`` (and the mask classifier) on a labelled photo folder.

    frame_wh: if given, each photo is first scaled (keeping aspect, up or down) into the top-left
    of a black frame of that size -- what a camera of that resolution would see of the scene --
    and boxes and face-height buckets are in that frame's pixels. Use it to measure how the
    detector's input size behaves on camera-sized frames (e.g. (640, 480)).

    Returns a JSON-ready dict (stable keys; the evaluation report reads them)::

      dir, n_images, n_faces, iou_threshold, frame_wh (None: photos as they are),
      detector: {name, config (the detector's cfg as a dict, if it has one)},
      dataset: the manifest's "dataset" name or None,
      mask_classified: whether the mask classifier ran,
      mask_model: None, or {trained_on (dataset name), trained_on_dirs (the folders it was fitted
        on), cv_accuracy: {size: cross-validated accuracy over those folders}, dev_dir,
        dev_accuracy: {size: accuracy on dev_dir of a model fitted without it}, from
        tools/mask/train.py; in_sample: True when DIR is one of the classifier's training folders
        -- then the mask accuracy below is in-sample and cv_accuracy is the honest figure},
      mean_detect_ms: mean wall time of detector.detect per photo, ms (machine-load dependent),
      rows: one per (label, size) with label in [*labels, 'all'] and size in SIZE_BUCKETS_PX:
        {label, size, min_height_px,
         faces          labelled faces of that label whose box height >= min_height_px,
         detected       of those, matched by a detection at IoU >= iou_threshold,
         recall         detected / faces (None when faces == 0),
         detections     label 'all': detections whose own box height >= min_height_px;
                        other labels: such detections the mask classifier assigned to this label
                        ('yes' -> with_mask, 'no' -> without_mask; none for mask_weared_incorrect),
         true_positives of those detections, matched to a labelled face (of this label),
         precision      true_positives / detections (None when no detections). Some small faces
                        in the data are unlabelled, so precision is a lower bound.
         mask_scored    detected faces of a label with an expected status (with_mask -> 'yes',
                        without_mask -> 'no'),
         mask_correct   of those, classified as expected ('unknown' counts as wrong),
         mask_unknown   of those, classified 'unknown',
         mask_accuracy  mask_correct / mask_scored (None when 0 or the classifier did not run),
         mask_accuracy_decided  mask_correct / (mask_scored - mask_unknown) (same None rule),
         mask_status    counts of 'yes'/'no'/'unknown' over the detected faces of this label}
      images_with_no_faces_labelled: photos whose manifest entry lists no face.
    """
    manifest = load_manifest(directory)
    images = manifest.images
    # the three standard labels always appear (stable rows), plus any other label the data uses
    labels = sorted({lab for im in images for lab in im.labels} | set(EXPECTED_MASK))
    mask_model: dict[str, Any] | None = None
    if classify_mask:
        from edge.vision.mask import MODEL_INFO, MaskConfig, classify_masks

        mask_cfg = mask_cfg or MaskConfig()
        # the classifier was fitted on named folders of one dataset: on those, accuracy here is
        # in-sample (other photos of the same dataset are held out)
        mask_model = {**MODEL_INFO, "in_sample": manifest.dataset is not None
                      and manifest.dataset == MODEL_INFO.get("trained_on")
                      and Path(directory).resolve().name in MODEL_INFO.get("trained_on_dirs", ())}
    groups = labels + ["all"]
    counters: dict[tuple[str, str], dict[str, Any]] = {
        (g, s): {"faces": 0, "detected": 0, "detections": 0, "true_positives": 0, "mask_scored": 0,
                 "mask_correct": 0, "mask_unknown": 0, "mask_status": {"yes": 0, "no": 0, "unknown": 0}}
        for g in groups for s in SIZE_BUCKETS_PX}
    status_to_label = {"yes": "with_mask", "no": "without_mask"}
    total_ms, empty_images = 0.0, 0
    for k, im in enumerate(images):
        bgr = cv2.imread(str(im.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(f"{im.path}: missing or not a readable image (listed in {Path(directory) / 'manifest.json'})")
        gt_boxes = im.boxes_xyxy
        if frame_wh is not None:
            bgr, s = _into_frame(bgr, frame_wh)
            gt_boxes = gt_boxes * np.float32(s)
        t0 = time.perf_counter()
        dets: Detections = detector.detect(bgr)
        total_ms += (time.perf_counter() - t0) * 1e3
        if classify_mask and len(dets):
            dets = classify_masks(bgr, dets, mask_cfg)
        status = dets.data.get("mask", np.full(len(dets), "unknown", dtype=object))
        empty_images += not im.labels
        match = match_greedy(dets.box_xyxy, dets.score, gt_boxes, iou_threshold)
        gt_h = gt_boxes[:, 3] - gt_boxes[:, 1]
        det_h = dets.box_xyxy[:, 3] - dets.box_xyxy[:, 1]
        det_to_gt = {int(d): g for g, d in enumerate(match) if d >= 0}
        for size, min_h in SIZE_BUCKETS_PX.items():
            for g, label in enumerate(im.labels):
                if gt_h[g] < min_h:
                    continue
                for grp in (label, "all"):
                    c = counters[(grp, size)]
                    c["faces"] += 1
                    if match[g] < 0:
                        continue
                    c["detected"] += 1
                    st = str(status[match[g]])
                    c["mask_status"][st] += 1
                    if EXPECTED_MASK.get(label) is not None:
                        c["mask_scored"] += 1
                        c["mask_correct"] += st == EXPECTED_MASK[label]
                        c["mask_unknown"] += st == "unknown"
            for d in range(len(dets)):
                if det_h[d] < min_h:
                    continue
                gt = det_to_gt.get(d)
                c = counters[("all", size)]
                c["detections"] += 1
                c["true_positives"] += gt is not None
                pred_label = status_to_label.get(str(status[d]))
                if pred_label is not None and pred_label in labels:
                    c = counters[(pred_label, size)]
                    c["detections"] += 1
                    c["true_positives"] += gt is not None and im.labels[gt] == pred_label
        if progress is not None:
            progress(k + 1, len(images))
    rows = []
    for grp in groups:
        for size, min_h in SIZE_BUCKETS_PX.items():
            c = counters[(grp, size)]
            decided = c["mask_scored"] - c["mask_unknown"]
            rows.append({"label": grp, "size": size, "min_height_px": min_h, **c,
                         "recall": ratio(c["detected"], c["faces"]),
                         "precision": ratio(c["true_positives"], c["detections"]),
                         "mask_accuracy": ratio(c["mask_correct"], c["mask_scored"]) if classify_mask else None,
                         "mask_accuracy_decided": ratio(c["mask_correct"], decided) if classify_mask else None})
    cfg = getattr(detector, "cfg", None)
    return {
        "dir": str(directory),
        "n_images": len(images),
        "n_faces": int(sum(len(im.labels) for im in images)),
        "iou_threshold": iou_threshold,
        "frame_wh": list(frame_wh) if frame_wh is not None else None,
        "detector": {"name": type(detector).__name__,
                     "config": cfg.model_dump() if cfg is not None and hasattr(cfg, "model_dump") else None},
        "dataset": manifest.dataset,
        "mask_classified": bool(classify_mask),
        "mask_model": mask_model,
        "mean_detect_ms": round(total_ms / max(1, len(images)), 2),
        "images_with_no_faces_labelled": empty_images,
        "rows": rows,
    }


def _fmt(v: Any) -> str:
    return fmt_num(v, 1, missing="-", percent="%")  # every float in these rows is a fraction


def format_table(result: dict) -> str:
    """The result as a fixed-width text table (also valid Markdown-ish for the report)."""
    cfg = (result.get("detector") or {}).get("config") or {}
    framed = f" (each scaled into a {result['frame_wh'][0]}x{result['frame_wh'][1]} frame)" if result.get("frame_wh") else ""
    head = (f"{result['dir']}{framed}: {result['n_images']} images, {result['n_faces']} labelled faces, "
            f"IoU >= {result['iou_threshold']}; detector {result['detector']['name']} {cfg.get('model', '')} "
            f"{cfg.get('input_width_px', '?')}x{cfg.get('input_height_px', '?')} "
            f"score >= {cfg.get('score_threshold', '?')}, {result['mean_detect_ms']} ms/image")
    cols = ["label", "size", "faces", "detected", "recall", "precision"]
    if result.get("mask_classified"):
        cols += ["mask_accuracy", "mask_unknown"]
    lines = [head]
    mm = result.get("mask_model")
    if mm and mm.get("in_sample"):
        cv = ", ".join(f"{k} {_fmt(v)}" for k, v in mm.get("cv_accuracy", {}).items())
        lines.append(f"note: the mask classifier was trained on this dataset, so mask_accuracy here is "
                     f"in-sample; held-out (cross-validated by photo): {cv}")
    lines += ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in result["rows"]:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)
