"""Fit and honestly evaluate the mask classifier of edge/vision/mask.py (numpy only, deterministic).

    .venv/bin/python tools/mask/train.py [--data ../shared/data/masked_faces_train]
                                         [--dev ../shared/data/masked_faces] [--write]

1. Runs the product's own detector (DetectorConfig() defaults) on every photo of the CC0
   "Face Mask Detection" set and keeps the detections that match a labelled face (IoU >= 0.5),
   so the classifier learns from the landmarks it will get in production.
2. Features: edge.vision.mask.face_features on the aligned crop, plus the left-right mirrored crop as
   augmentation. Labels: with_mask = 1, without_mask = 0; mask_weared_incorrect is not trained
   on, only reported (which status it gets).
3. Nested cross-validation grouped by photo: 5 outer folds (faces of one photo are never split),
   the L2 strength and a confidence temperature chosen by an inner 4-fold CV on the training
   part only. The outer-fold predictions, passed through classify_masks' own rules (min face
   size, unreadable crops, min_confidence -> 'unknown'), give the accuracy we report.
4. Held out: a model fitted on the training split alone (``--data``) is scored on the dev
   photos (``--dev``), which nothing was fitted or chosen on.
5. The shipped model is fitted on both splits (the L2 strength and temperature chosen by CV on
   all of them, standardisation folded into the weights); its estimate is the nested CV of
   step 3 run over both splits together. With --write it replaces the weights block in
   edge/vision/mask.py (same data -> same weights). Both reports go to tools/mask/cv_report.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge.eval.faces import SIZE_BUCKETS_PX, load_manifest, match_greedy  # noqa: E402
from edge.eval.report import shared_data_dir  # noqa: E402
from edge.vision.detection import DetectorConfig, build_detector  # noqa: E402
from edge.vision.mask import N_FEATURES, MaskConfig, face_features, readable_crop  # noqa: E402

L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
SEED = 20240601


def collect(data_dir: Path, mask_cfg: MaskConfig) -> dict[str, np.ndarray]:
    """Detector-matched faces: features (n,d), mirrored features, label, photo index, GT height."""
    manifest = load_manifest(data_dir)
    images = manifest.images
    det = build_detector(DetectorConfig())
    feats, mirrored, labels, photo, height_px = [], [], [], [], []
    n_unreadable = 0
    for k, im in enumerate(images):
        bgr = cv2.imread(str(im.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{im.path}: missing or not a readable image (listed in {data_dir / 'manifest.json'})")
        dets = det.detect(bgr)
        match = match_greedy(dets.box_xyxy, dets.score, im.boxes_xyxy, 0.5)
        for g, d in enumerate(match):
            if d < 0:
                continue
            crop = readable_crop(bgr, dets.box_xyxy[d], dets.landmarks_xy[d], mask_cfg)
            if crop is None:  # classify_masks says 'unknown'; kept so the accuracy counts it
                n_unreadable += 1
                feats.append(np.full(N_FEATURES, np.nan))
                mirrored.append(np.full(N_FEATURES, np.nan))
            else:
                feats.append(face_features(crop))
                mirrored.append(face_features(np.ascontiguousarray(crop[:, ::-1])))
            labels.append(im.labels[g])
            photo.append(k)
            height_px.append(float(im.boxes_xyxy[g, 3] - im.boxes_xyxy[g, 1]))
    print(f"{len(feats)} detected labelled faces in {len(images)} photos, {n_unreadable} of them "
          "too small or unreadable ('unknown')")
    return {"dataset": manifest.dataset or str(data_dir), "X": np.array(feats), "Xm": np.array(mirrored),
            "label": np.array(labels), "photo": np.array(photo), "height_px": np.array(height_px)}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 30) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method; classes weighted to balance.

    x: (n,d) standardised features; y: (n,) 0/1. Returns (w (d,), b).
    """
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pos = max(1.0, float(y.sum()))
    sw = np.where(y == 1, (n - pos) / pos, 1.0)
    reg = np.eye(d + 1) * l2
    reg[-1, -1] = 0.0
    w = np.zeros(d + 1)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (sw * (p - y)) + reg @ w
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def train(X: np.ndarray, Xm: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Fit on features + mirrored features; return weights on raw features (standardisation folded in)."""
    xa = np.vstack([X, Xm])
    ya = np.concatenate([y, y])
    mu = xa.mean(0)
    sd = xa.std(0) + 1e-6
    w, b = fit_logistic((xa - mu) / sd, ya, l2 * 2)  # *2: the mirrored copies double the data
    return w / sd, b - float((w * mu / sd).sum())


def predict(w: np.ndarray, b: float, X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(X @ w + b)))


def folds_by_photo(photo: np.ndarray, k: int, seed: int) -> np.ndarray:
    ids = np.unique(photo)
    perm = np.random.default_rng(seed).permutation(len(ids))
    fold_of = dict(zip(ids.tolist(), (perm % k).tolist()))
    return np.array([fold_of[p] for p in photo.tolist()])


def choose_l2(X, Xm, y, photo) -> tuple[float, float]:
    """L2 strength by 4-fold CV grouped by photo, and a temperature calibrating its confidence.

    The temperature T (logits are divided by it) minimises the log-loss of the same inner-CV
    predictions, so the reported mask_conf means what it says; it never changes yes/no.
    """
    folds = folds_by_photo(photo, 4, SEED + 1)
    best = None
    for l2 in L2_GRID:
        z = np.zeros(len(y))
        for f in range(4):
            tr, te = folds != f, folds == f
            w, b = train(X[tr], Xm[tr], y[tr], l2)
            z[te] = X[te] @ w + b
        correct = int(((z >= 0) == (y == 1)).sum())
        if best is None or correct > best[0]:
            best = (correct, l2, z)
    _, l2, z = best
    temps = np.exp(np.linspace(np.log(0.2), np.log(50.0), 400))
    nll = [np.mean(np.logaddexp(0, -np.where(y == 1, 1, -1) * z / t)) for t in temps]
    return l2, float(temps[int(np.argmin(nll))])


def statuses(p: np.ndarray, readable: np.ndarray, cfg: MaskConfig) -> np.ndarray:
    """classify_masks' own rules on probabilities: low confidence or unreadable -> 'unknown'."""
    conf = np.maximum(p, 1 - p)
    status = np.where(conf < cfg.min_confidence, "unknown", np.where(p >= 0.5, "yes", "no"))
    status[~readable] = "unknown"
    return status


def accuracy_rows(d: dict[str, np.ndarray], status: np.ndarray, title: str) -> tuple[list[dict], dict]:
    """Per size bucket (eval-faces' buckets) and label: faces, correct, unknown, accuracy; printed."""
    scored = d["label"] != "mask_weared_incorrect"
    expected = np.where(d["label"] == "with_mask", "yes", "no")
    rows: list[dict] = []
    acc_summary: dict = {}
    print(title)
    print(f"{'size':>8} {'label':>22} {'faces':>5} {'correct':>7} {'unknown':>7} {'accuracy':>8}")
    for size, min_h in SIZE_BUCKETS_PX.items():
        sel = d["height_px"] >= min_h
        for label in ("with_mask", "without_mask", "both"):
            k = sel & scored & ((d["label"] == label) if label != "both" else True)
            n = int(k.sum())
            correct = int((status[k] == expected[k]).sum())
            unknown = int((status[k] == "unknown").sum())
            acc = correct / n if n else None
            rows.append({"size": size, "label": label, "faces": n, "correct": correct, "unknown": unknown,
                         "accuracy": acc})
            if label == "both":
                acc_summary[size] = round(acc, 4) if acc is not None else None
            print(f"{size:>8} {label:>22} {n:>5} {correct:>7} {unknown:>7} {acc if acc is None else f'{acc:.3f}':>8}")
        k = sel & ~scored
        counts = {s: int((status[k] == s).sum()) for s in ("yes", "no", "unknown")}
        rows.append({"size": size, "label": "mask_weared_incorrect", "faces": int(k.sum()), "status_counts": counts})
        print(f"{size:>8} {'mask_weared_incorrect':>22} {int(k.sum()):>5} -> {counts}")
    return rows, acc_summary


def merge(d: dict[str, np.ndarray], e: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two collected folders as one (photo numbers of the second shifted past the first's)."""
    out = {k: np.concatenate([d[k], e[k]]) for k in ("X", "Xm", "label", "height_px")}
    out["photo"] = np.concatenate([d["photo"], e["photo"] + d["photo"].max() + 1])
    return out


def fit(d: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float, float, int]:
    """The model on every readable with/without-mask face of ``d``: (w, b) with the temperature
    folded in, the chosen L2 and temperature, and how many faces it learnt from."""
    ok = (d["label"] != "mask_weared_incorrect") & np.isfinite(d["X"]).all(axis=1)
    y = (d["label"] == "with_mask").astype(float)
    l2, temp = choose_l2(d["X"][ok], d["Xm"][ok], y[ok], d["photo"][ok])
    w, b = train(d["X"][ok], d["Xm"][ok], y[ok], l2)
    return w / temp, b / temp, l2, temp, int(ok.sum())


def cross_validate(d: dict[str, np.ndarray], cfg: MaskConfig, title: str) -> tuple[list[dict], dict, list[dict]]:
    """Nested CV grouped by photo (incorrectly-worn faces only get predictions): rows, summary,
    the L2 and temperature each outer fold chose."""
    readable = np.isfinite(d["X"]).all(axis=1)
    trainable = (d["label"] != "mask_weared_incorrect") & readable
    y_all = (d["label"] == "with_mask").astype(float)
    outer = folds_by_photo(d["photo"], 5, SEED)
    p_cv = np.full(len(y_all), 0.5)
    chosen = []
    for f in range(5):
        tr = trainable & (outer != f)
        te = (outer == f) & readable
        l2, temp = choose_l2(d["X"][tr], d["Xm"][tr], y_all[tr], d["photo"][tr])
        chosen.append({"l2": l2, "temperature": round(temp, 3)})
        w, b = train(d["X"][tr], d["Xm"][tr], y_all[tr], l2)
        p_cv[te] = predict(w / temp, b / temp, d["X"][te])
    rows, summary = accuracy_rows(d, statuses(p_cv, readable, cfg), title)
    return rows, summary, chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "masked_faces_train",
                    help="labelled photos to fit on (the training split)")
    ap.add_argument("--dev", type=Path, default=shared_data_dir() / "masked_faces",
                    help="labelled photos to report held-out accuracy on (never fitted on)")
    ap.add_argument("--write", action="store_true", help="write the fitted weights into edge/vision/mask.py")
    ap.add_argument("--report", type=Path, default=ROOT / "tools" / "mask" / "cv_report.json")
    args = ap.parse_args()
    cfg = MaskConfig()
    d, e = collect(args.data, cfg), collect(args.dev, cfg)

    # 1. held out: fitted on the training split only, scored on the dev photos it never saw
    w, b, l2, temp, _ = fit(d)
    e_readable = np.isfinite(e["X"]).all(axis=1)
    p_dev = np.full(len(e["label"]), 0.5)
    p_dev[e_readable] = predict(w, b, e["X"][e_readable])
    dev_rows, dev_summary = accuracy_rows(e, statuses(p_dev, e_readable, cfg),
                                          f"held out: fitted on {args.data.name}, scored on {args.dev.name}:")
    # 2. the shipped model learns from both splits; its estimate is the nested CV over both
    both = merge(d, e)
    cv_rows, cv_summary, chosen = cross_validate(both, cfg, f"cross-validated on {args.data.name} + {args.dev.name} "
                                                           "(5 folds by photo):")
    w, b, l2, temp, n_train = fit(both)
    report: dict = {"data": [os.path.relpath(args.data, ROOT), os.path.relpath(args.dev, ROOT)],
                    "dataset": d["dataset"], "detector": DetectorConfig().model,
                    "cv": "5-fold outer by photo over both splits, inner 4-fold choice of L2 and temperature",
                    "chosen_per_fold": chosen, "min_confidence": cfg.min_confidence, "rows": cv_rows,
                    "dev_held_out": f"fitted on {args.data.name} only, scored on {args.dev.name}",
                    "dev_rows": dev_rows, "final_l2": l2, "final_temperature": round(temp, 3),
                    "n_train_faces": n_train}
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(f"final model: L2={l2}, temperature {temp:.2f}, {n_train} faces (+ mirrored); report -> {args.report}")
    if args.write:
        write_weights(ROOT / "edge" / "vision" / "mask.py", w, b, f"L2={l2}, temperature {temp:.3g}", n_train,
                      info={"trained_on": d["dataset"], "trained_on_dirs": [args.data.name, args.dev.name],
                            "cv_accuracy": cv_summary, "dev_dir": args.dev.name, "dev_accuracy": dev_summary})
    return 0


def write_weights(path: Path, w: np.ndarray, b: float, how: str, n: int, info: dict) -> None:
    body = ", ".join(f"{v:.6g}" for v in w)
    lines, line = [], "    "
    for tok in body.split(" "):
        if len(line) + len(tok) + 1 > 100:
            lines.append(line.rstrip())
            line = "    "
        line += tok + " "
    lines.append(line.rstrip())
    block = ("# --- weights: generated by tools/mask/train.py; do not edit by hand ---\n"
             f"# logistic regression, {how}, {n} faces + mirrored copies; standardisation folded in\n"
             "_W = np.array([\n" + "\n".join(lines) + "\n])\n"
             f"_B = {b:.6g}\n"
             f"MODEL_INFO = {info!r}\n"
             "# --- end weights ---")
    src = path.read_text()
    new, count = re.subn(r"# --- weights: generated.*?# --- end weights ---", lambda _: block, src, flags=re.S)
    if count != 1:
        raise SystemExit(f"{path}: weights block markers not found")
    path.write_text(new)
    print(f"wrote {len(w)} weights into {path}")


if __name__ == "__main__":
    sys.exit(main())
