"""Fine-tune CenterFace on real masked faces; write our weights as a delta on the pinned graph.

    .venv/bin/pip install -e '.[train]'          # PyTorch (CPU is enough), only for this script
    .venv/bin/python tools/detector/train.py              # train, pick the epoch on dev, write the delta
    .venv/bin/python tools/detector/train.py --cv         # 5-fold cross-validation (report only)

Data (../shared/data, CC0): `masked_faces_train/` (403 photos) is trained on; `masked_faces/`
(250) only chooses the epoch and is reported on. `--cv` retrains per fold on train+dev minus
the fold with the epoch count chosen on dev, and evaluates on the fold.

Recipe (tools/detector/config.json holds every number and the seed):
- start from the pinned `models/centerface_dyn.onnx` (tools/detector/graph.py: every ONNX
  initializer is a parameter under its own name); BatchNorm keeps its inference statistics;
- augment: random zoom of the photo into the 320x256 network input (faces from ~10 px to
  gate-distance sizes), random placement with black fill (the detector letterboxes), flip,
  HSV jitter, blur, JPEG re-encoding, grayscale;
- CenterFace's own losses: focal loss on the centre heatmap (CornerNet form, Gaussian targets),
  L1 on log box size and on the sub-cell offset at face centres;
- unlabelled faces (the dataset misses some small ones) are not taught as background: cells
  where the pinned model (the teacher) scores a face outside every labelled box are ignored;
- faces are taught in the teacher's own box convention (box_convention = "teacher"): its
  decoded box where it already sees the face, else the label moved by the convention fitted on
  the training photos (`--fit-convention`). CenterFace stores landmarks relative to its box, so
  teaching the labels' boxes (which start lower) moved the decoded eyes by ~10 % of the eye
  distance and cost two simulator verdicts (models/README.md);
- landmarks are distilled: at each labelled face the student's decoded absolute landmarks
  (its own box + its landmark output, exactly as the product decodes them) are pulled to the
  teacher's, in units of face height, so the canthus the measurement uses does not drift.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import STRIDE, augment, epoch_order, load_photos, targets  # noqa: E402
from graph import OnnxGraphModule  # noqa: E402

from edge.eval.faces import evaluate_faces_dir, load_manifest  # noqa: E402
from edge.modeldelta import apply_delta, make_delta, save_delta  # noqa: E402
from edge.vision.detection import CenterFaceDetector, DetectorConfig  # noqa: E402

DATA = Path(os.environ.get("THERMAL_EDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRAIN_DIR, DEV_DIR = DATA / "masked_faces_train", DATA / "masked_faces"
BASE_MODEL = ROOT / "models" / "centerface_dyn.onnx"
CONFIG = Path(__file__).resolve().parent / "config.json"


# ---------------------------------------------------------------- losses
def decode_landmarks(scale, offset, lms, b, ys, xs):
    """Absolute landmarks (n,5,2) as (y, x) input px at cells (b, ys, xs), the product's decoding."""
    bh = torch.exp(scale[b, 0, ys, xs]) * STRIDE
    bw = torch.exp(scale[b, 1, ys, xs]) * STRIDE
    cy = (ys.float() + offset[b, 0, ys, xs] + 0.5) * STRIDE
    cx = (xs.float() + offset[b, 1, ys, xs] + 0.5) * STRIDE
    lm = lms[b, :, ys, xs].reshape(-1, 5, 2)
    y = (cy - bh / 2)[:, None] + lm[:, :, 0] * bh[:, None]
    x = (cx - bw / 2)[:, None] + lm[:, :, 1] * bw[:, None]
    return torch.stack([y, x], dim=2)


def focal_loss(pred, gt, use):
    pred = pred.clamp(1e-4, 1 - 1e-4)
    pos = (gt >= 1.0).float()
    neg = (1 - pos) * use
    pos_l = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_l = (torch.log(1 - pred) * pred ** 2 * (1 - gt) ** 4 * neg).sum()
    return -(pos_l + neg_l) / pos.sum().clamp(min=1.0)


def peak_in_middle(heat: np.ndarray, box) -> tuple[int, int, float]:
    """(row, col, score) of the best heatmap cell (h4, w4) inside the middle half of ``box`` (input px)."""
    h4, w4 = heat.shape
    x1, y1, x2, y2 = box
    qy1, qy2 = int((y1 * 0.75 + y2 * 0.25) // STRIDE), int(math.ceil((y1 * 0.25 + y2 * 0.75) / STRIDE))
    qx1, qx2 = int((x1 * 0.75 + x2 * 0.25) // STRIDE), int(math.ceil((x1 * 0.25 + x2 * 0.75) / STRIDE))
    qy1, qx1 = max(0, min(qy1, h4 - 1)), max(0, min(qx1, w4 - 1))
    win = heat[qy1:max(qy1 + 1, min(qy2, h4)), qx1:max(qx1 + 1, min(qx2, w4))]
    k = np.unravel_index(int(np.argmax(win)), win.shape)
    return qy1 + int(k[0]), qx1 + int(k[1]), float(win[k])


def teacher_convention(boxes: np.ndarray, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                       cfg: dict) -> np.ndarray:
    """Labelled boxes (K,4) restated in the pinned model's own box convention (its boxes start
    higher, at the forehead; the dataset's at the hairline), so box-relative landmarks keep their
    meaning: where the teacher sees the face (score >= teacher_sees_score), its own decoded box;
    elsewhere the label moved by the convention fitted on the training photos (``--fit-convention``).
    heat (h4,w4), scale and offset (2,h4,w4): the teacher's outputs for this image."""
    dcy, dcx, kh, kw = cfg["teacher_box_from_labels"]
    out = np.empty_like(boxes)
    for j, (x1, y1, x2, y2) in enumerate(boxes):
        ty, tx, ts = peak_in_middle(heat, (x1, y1, x2, y2))
        if ts >= cfg["teacher_sees_score"]:
            bh, bw = np.exp(scale[0, ty, tx]) * STRIDE, np.exp(scale[1, ty, tx]) * STRIDE
            cy, cx = (ty + offset[0, ty, tx] + 0.5) * STRIDE, (tx + offset[1, ty, tx] + 0.5) * STRIDE
        else:
            h, w = y2 - y1, x2 - x1
            cy, cx, bh, bw = (y1 + y2) / 2 + dcy * h, (x1 + x2) / 2 + dcx * w, kh * h, kw * w
        out[j] = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
    return out


def fit_convention(directory: Path) -> list[float]:
    """Median (centre dy / label height, centre dx / label width, height ratio, width ratio) of the
    pinned model's boxes against the labels it matches (IoU >= 0.5, labels >= 24 px tall)."""
    from edge.eval.faces import match_greedy
    from edge.vision.detection import build_detector

    det = build_detector(DetectorConfig(model="centerface"))
    rows = []
    for _, bgr, labels_xyxy, _ in load_photos(directory):
        r = det.detect(bgr)
        for g, d in enumerate(match_greedy(r.box_xyxy, r.score, labels_xyxy, 0.5)):
            if d < 0:
                continue
            G, T = labels_xyxy[g], r.box_xyxy[d]
            gh, gw = G[3] - G[1], G[2] - G[0]
            if gh >= 24:
                rows.append([((T[1] + T[3]) - (G[1] + G[3])) / 2 / gh, ((T[0] + T[2]) - (G[0] + G[2])) / 2 / gw,
                             (T[3] - T[1]) / gh, (T[2] - T[0]) / gw])
    return [round(float(v), 3) for v in np.median(np.array(rows), axis=0)]


def batch_loss(student, teacher, images: np.ndarray, boxes: list[np.ndarray], ignores: list[np.ndarray],
               cfg: dict) -> tuple[torch.Tensor, dict[str, float]]:
    x = torch.from_numpy(np.ascontiguousarray(images[:, :, :, ::-1].transpose(0, 3, 1, 2)).astype(np.float32))
    with torch.no_grad():
        t_heat, t_scale, t_off, t_lms = teacher(x)
    heat, scale, off, lms = student(x)
    n, _, h4, w4 = heat.shape
    th = t_heat[:, 0].numpy()
    gts, uses = np.zeros((n, h4, w4), np.float32), np.zeros((n, h4, w4), np.float32)
    pb, py, px, sz, of, lm_sel = [], [], [], [], [], []
    if cfg["box_convention"] == "teacher":
        t_sc, t_of = t_scale.numpy(), t_off.numpy()
        boxes = [teacher_convention(boxes[i], th[i], t_sc[i], t_of[i], cfg) for i in range(n)]
    for i in range(n):
        heat_t, use, cells, sizes, offs = targets(boxes[i], ignores[i], h4, w4)
        # the teacher's confident faces outside every labelled box: unlabelled people, not background
        inside = np.zeros((h4, w4), bool)
        for x1, y1, x2, y2 in boxes[i]:
            inside[max(0, int(y1 // STRIDE) - 1):int(math.ceil(y2 / STRIDE)) + 1,
                   max(0, int(x1 // STRIDE) - 1):int(math.ceil(x2 / STRIDE)) + 1] = True
        use[(th[i] > cfg["teacher_ignore_score"]) & ~inside] = 0
        gts[i], uses[i] = heat_t, use
        for (iy, ix), s, o, (x1, y1, x2, y2) in zip(cells, sizes, offs, boxes[i]):
            pb.append(i), py.append(iy), px.append(ix), sz.append(s), of.append(o)
            # the teacher's own best cell in the middle half of the face: where it sees this face
            lm_sel.append((*peak_in_middle(th[i], (x1, y1, x2, y2)), y2 - y1))
    losses = {"heatmap": focal_loss(heat[:, 0], torch.from_numpy(gts), torch.from_numpy(uses))}
    zero = heat.sum() * 0
    if pb:
        b_i, y_i, x_i = torch.tensor(pb), torch.tensor(py), torch.tensor(px)
        losses["size"] = (scale[b_i, :, y_i, x_i] - torch.tensor(sz, dtype=torch.float32)).abs().mean()
        losses["offset"] = (off[b_i, :, y_i, x_i] - torch.tensor(of, dtype=torch.float32)).abs().mean()
        sel = [j for j, (_, _, sc, _) in enumerate(lm_sel) if sc >= cfg["teacher_landmark_score"]]
        if sel:
            jb = b_i[sel]
            ty = torch.tensor([lm_sel[j][0] for j in sel])
            tx = torch.tensor([lm_sel[j][1] for j in sel])
            t_abs = decode_landmarks(t_scale, t_off, t_lms, jb, ty, tx)
            face_h = torch.tensor([lm_sel[j][3] for j in sel], dtype=torch.float32)
            # at the centre cell (landmark_cells 1) or also its neighbours (3: a 3x3 block): the
            # product decodes at whichever cell peaks, and each should place the eyes where the
            # pinned model does
            terms = []
            around = range(-(cfg["landmark_cells"] // 2), cfg["landmark_cells"] // 2 + 1)
            for dy in around:
                for dx in around:
                    sy, sx = (y_i[sel] + dy).clamp(0, h4 - 1), (x_i[sel] + dx).clamp(0, w4 - 1)
                    s_abs = decode_landmarks(scale, off, lms, jb, sy, sx)
                    terms.append((s_abs - t_abs).abs().sum(dim=2).mean(dim=1) / face_h)
            losses["landmarks"] = torch.stack(terms).mean()
        else:
            losses["landmarks"] = zero
    else:
        losses.update(size=zero, offset=zero, landmarks=zero)
    w = cfg["loss_weights"]
    total = sum(w[k] * v for k, v in losses.items())
    return total, {k: float(v.detach()) for k, v in losses.items()}


# ---------------------------------------------------------------- export and evaluation
def base_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def trained_model(base: onnx.ModelProto, student: OnnxGraphModule) -> tuple[onnx.ModelProto, dict]:
    """The base graph with the student's changed tensors (float16-rounded, as shipped)."""
    trained = {k: v.detach().numpy() for k, v in student.named_initializers().items()}
    delta = make_delta(base_arrays(base), trained)
    model = copy.deepcopy(base)
    apply_delta(model, delta)
    return model, delta


def evaluate(model: onnx.ModelProto, directory: Path) -> dict:
    """The product's own eval-faces on ``directory`` (no mask classifier): row dicts by (label, size)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    res = evaluate_faces_dir(directory, CenterFaceDetector(sess, DetectorConfig()), classify_mask=False)
    return {(r["label"], r["size"]): r for r in res["rows"]}


def summary(rows: dict) -> dict[str, float | None]:
    g = lambda lab, size, k: rows[(lab, size)][k]  # noqa: E731
    return {"masked_recall_32": g("with_mask", ">=32px", "recall"), "masked_recall_64": g("with_mask", ">=64px", "recall"),
            "unmasked_recall_32": g("without_mask", ">=32px", "recall"),
            "unmasked_recall_64": g("without_mask", ">=64px", "recall"),
            "all_recall": g("all", "all", "recall"), "all_recall_32": g("all", ">=32px", "recall"),
            "precision_64": g("all", ">=64px", "precision"), "precision_32": g("all", ">=32px", "precision")}


def selection_score(s: dict) -> float:
    """Epoch choice on dev: masked and unmasked recall from 32 px, precision >= 64 px must hold 0.97."""
    score = (s["masked_recall_32"] or 0) + (s["masked_recall_64"] or 0) + (s["unmasked_recall_32"] or 0)
    return score - 5 * max(0.0, 0.97 - (s["precision_64"] or 0))


def manifest_dir(photos: list, tmp: Path) -> Path:
    """A labelled folder (manifest with absolute image paths) for a subset of photos."""
    images = [{"image": str(p), "faces": [{"label": lab, "box_xyxy": [float(v) for v in box]}
                                          for lab, box in zip(labs, boxes)]} for p, labs, boxes in photos]
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "manifest.json").write_text(json.dumps({"images": images}))
    return tmp


# ---------------------------------------------------------------- training
def train(photos: list, cfg: dict, epochs: int, seed: int, eval_dir: Path | None, log,
          keep_epoch: int | None = None) -> tuple[OnnxGraphModule, list]:
    """Train from the pinned weights; evaluate on ``eval_dir`` after each epoch (if given).

    Returns the student at its best dev epoch (with eval_dir), else at ``keep_epoch`` (the epoch
    the dev run chose: cross-validation repeats the same schedule and stops where it stopped),
    else at the last epoch; and the history."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    base = onnx.load(str(BASE_MODEL))
    teacher = OnnxGraphModule(base).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = OnnxGraphModule(base).train()
    opt = torch.optim.Adam(student.parameters(), lr=cfg["lr"])
    steps_per_epoch = len(epoch_order(photos, cfg["oversample_unmasked"], np.random.default_rng(0))) // cfg["batch"]
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / cfg["warmup_steps"]) *
                                              0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    history, best, best_state = [], -1e9, None
    last = epochs if eval_dir is not None or keep_epoch is None else keep_epoch  # same schedule, stopped there
    for epoch in range(1, last + 1):
        t0, sums = time.time(), {}
        order = epoch_order(photos, cfg["oversample_unmasked"], rng)
        for k in range(steps_per_epoch):
            batch = [augment(photos[j][1], photos[j][2], cfg, rng) for j in order[k * cfg["batch"]:(k + 1) * cfg["batch"]]]
            loss, parts = batch_loss(student, teacher, np.stack([b[0] for b in batch]), [b[1] for b in batch],
                                     [b[2] for b in batch], cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for name, v in parts.items():
                sums[name] = sums.get(name, 0.0) + v
        entry = {"epoch": epoch, "train_s": round(time.time() - t0, 1),
                 **{f"loss_{k}": round(v / steps_per_epoch, 4) for k, v in sums.items()}}
        if eval_dir is not None and epoch % cfg["eval_every_epochs"] == 0:
            s = summary(evaluate(trained_model(base, student)[0], eval_dir))
            entry.update({k: (round(v, 4) if v is not None else None) for k, v in s.items()})
            entry["score"] = round(selection_score(s), 4)
            if entry["score"] > best:
                best, best_state = entry["score"], copy.deepcopy(student.state_dict())
        if eval_dir is None and epoch == keep_epoch:
            best_state = copy.deepcopy(student.state_dict())
        history.append(entry)
        log(json.dumps(entry))
    if best_state is not None:
        student.load_state_dict(best_state)
    return student, history


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--epochs", type=int, help="override the config's epoch count")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "centerface_masked.delta.npz")
    ap.add_argument("--report", type=Path, default=Path(__file__).resolve().parent / "train_report.json")
    ap.add_argument("--cv", action="store_true", help="k-fold cross-validation on train+dev (writes no delta)")
    ap.add_argument("--folds", type=str, help="with --cv: comma-separated fold numbers to run (default all)")
    ap.add_argument("--fit-convention", action="store_true",
                    help="print the pinned model's box convention against the training labels "
                         "(config teacher_box_from_labels) and exit")
    a = ap.parse_args(argv)
    cfg = json.loads(a.config.read_text())
    epochs = a.epochs or cfg["epochs"]
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:7.0f} s] {msg}", flush=True)

    if a.fit_convention:
        print(json.dumps({"teacher_box_from_labels": fit_convention(TRAIN_DIR)}))
        return 0
    base = onnx.load(str(BASE_MODEL))
    if not a.cv:
        photos = load_photos(TRAIN_DIR)
        log(f"training on {len(photos)} photos of {TRAIN_DIR}, choosing the epoch on {DEV_DIR}")
        before = summary(evaluate(base, DEV_DIR))
        log(f"pinned model on dev: {json.dumps(before)}")
        student, history = train(photos, cfg, epochs, cfg["seed"], DEV_DIR, log)
        model, delta = trained_model(base, student)
        after = summary(evaluate(model, DEV_DIR))
        save_delta(a.out, delta)
        report = {"config": cfg, "epochs": epochs, "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "train_dir": os.path.relpath(TRAIN_DIR, ROOT), "dev_dir": os.path.relpath(DEV_DIR, ROOT),
                  "seconds": round(time.time() - started), "history": history, "dev_before": before, "dev_after": after,
                  "delta_tensors": len(delta), "delta_bytes": a.out.stat().st_size}
        a.report.write_text(json.dumps(report, indent=1) + "\n")
        log(f"wrote {a.out} ({a.out.stat().st_size} bytes, {len(delta)} tensors) and {a.report}")
        return 0
    # cross-validation: folds over the photos of train+dev, each trained with the fixed epoch count
    train_m, dev_m = load_manifest(TRAIN_DIR).images, load_manifest(DEV_DIR).images
    everything = [(im.path, im.labels, im.boxes_xyxy) for im in train_m + dev_m]
    photos = load_photos(TRAIN_DIR) + load_photos(DEV_DIR)
    fold_of = np.random.default_rng(cfg["seed"]).permutation(len(photos)) % cfg["cv_folds"]
    wanted = [int(f) for f in a.folds.split(",")] if a.folds else list(range(cfg["cv_folds"]))
    # the epoch the dev run chose (its report), so each fold stops where the shipped model did
    chosen = json.loads(a.report.read_text())
    keep_epoch = max(chosen["history"], key=lambda h: h.get("score", -1e9))["epoch"]
    log(f"each fold: the {epochs}-epoch schedule, kept at epoch {keep_epoch} (chosen on dev in {a.report.name})")
    report_path = a.report.with_name("cv_report.json")
    results = json.loads(report_path.read_text()).get("folds", {}) if report_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in wanted:
            held = manifest_dir([everything[i] for i in np.flatnonzero(fold_of == f)], Path(tmp) / f"fold{f}")
            train_idx = np.flatnonzero(fold_of != f)
            log(f"fold {f}: training on {len(train_idx)} photos, testing on {int((fold_of == f).sum())}")
            before = summary(evaluate(base, held))
            student, history = train([photos[i] for i in train_idx], cfg, epochs, cfg["seed"] + f, None, log,
                                     keep_epoch=keep_epoch)
            after = summary(evaluate(trained_model(base, student)[0], held))
            results[str(f)] = {"n_test_photos": int((fold_of == f).sum()), "before": before, "after": after,
                               "train_s": sum(h["train_s"] for h in history)}
            log(f"fold {f}: before {json.dumps(before)}\n after {json.dumps(after)}")
            report_path.write_text(json.dumps({"config": cfg, "epochs": epochs, "keep_epoch": keep_epoch,
                                               "folds": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
