"""Detector input size vs recall vs speed (`python -m edge.bench.suite sizes`).

For each network input size: recall on real labelled photos (../shared/data/masked_faces via
edge.eval.faces, all faces and faces >= 32 / 64 px), recall on the benchmark stream's faces that
are close enough to be measured (the simulator's truth: thermal gate '' in that frame) and on
all its in-view faces, and the detector's inference time on the benchmark's paired frames,
one thread, pinned to the calling process's cores. Sizes are timed round-robin on the same
frames so machine noise hits them alike; the ratio to the first size is the figure to trust.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.bench import procstat as ps
from edge.eval.tables import fmt_num

SIZES_DEFAULT = ((320, 256), (288, 224), (256, 192), (224, 160))


def paired_frames(stream: Path, limit: int | None = None) -> list:
    """The stream's pairs as replay makes them (including the ones flushed at its end), or the
    first ``limit``."""
    from itertools import islice

    from edge.io.recording import recording_pairs

    pairs = recording_pairs(stream)
    try:
        return list(islice(pairs, limit))
    finally:
        pairs.close()


def stream_recall(pairs: list, truth: dict, dets_per_pair: list) -> dict:
    """Recall (IoU >= 0.5) on the stream's truth faces: measurable ones and all in view."""
    from edge.eval.faces import match_greedy
    from edge.eval.scenarios import ratio

    rgb_truth = {f["index"]: f["faces"] for f in truth["frames"]["rgb"]}
    th_truth = {f["index"]: f["faces"] for f in truth["frames"]["thermal"]}
    hit = {"measurable": [0, 0], "in_view": [0, 0]}
    for pair, dets in zip(pairs, dets_per_pair):
        faces = [f for f in rgb_truth.get(pair.rgb.index, []) if f["in_view"]]
        if not faces:
            continue
        ok_ids = {f["id"] for f in th_truth.get(pair.thermal.index, []) if f.get("gate") == ""}
        gt = np.array([f["box_xyxy"] for f in faces], np.float32)
        match = match_greedy(dets.box_xyxy, dets.score, gt, 0.5)
        for f, m in zip(faces, match):
            for key, counts in hit.items():
                if key == "in_view" or f["id"] in ok_ids:
                    counts[0] += int(m >= 0)
                    counts[1] += 1
    return {k: {"faces": v[1], "recall": ratio(*v)} for k, v in hit.items()}


def run_sizes(stream: Path, faces_dir: Path | None, sizes=SIZES_DEFAULT, n_frames: int = 120, reps: int = 2,
              log=print) -> dict:
    from edge.io.recording import open_recording
    from edge.vision.detection import (
        CenterFaceDetector,
        DetectorConfig,
        load_session,
        model_file,
    )

    pairs = paired_frames(stream)
    truth = open_recording(stream).truth()
    model = model_file(DetectorConfig())
    dets = {s: CenterFaceDetector(load_session(model, 1), DetectorConfig(input_width_px=s[0], input_height_px=s[1]))
            for s in sizes}
    timing: dict[tuple[int, int], list[float]] = {s: [] for s in sizes}  # (w, h) -> inference ms
    timed = pairs[:n_frames]
    for d in dets.values():  # warm-up
        d.detect(timed[0].rgb.image)
    for _ in range(reps):
        for pair in timed:
            for s, d in dets.items():
                d.detect(pair.rgb.image)
                timing[s].append(d.last_timing_ms["inference"])
    rows = []
    base: float | None = None
    for s, d in dets.items():
        inf = ps.median(timing[s])
        base = base or inf
        row = {"size": f"{s[0]}x{s[1]}", "inference_ms_p50": ps.rnd(inf), "inference_ratio": ps.rnd(inf / base, 3) if inf is not None and base else None,
               "stream": stream_recall(pairs, truth, [d.detect(p.rgb.image) for p in pairs]) if truth else None}
        if faces_dir is not None and Path(faces_dir).is_dir():
            from edge.eval.faces import evaluate_faces_dir

            ev = evaluate_faces_dir(faces_dir, d, classify_mask=False)
            row["masked_faces"] = {r["size"]: {"faces": r["faces"], "recall": r["recall"], "precision": r["precision"]}
                                   for r in ev["rows"] if r["label"] == "all"}
        else:
            row["masked_faces"] = None
        log(f"bench sizes: {json.dumps(row)}")
        rows.append(row)
    return {"stream": str(stream), "faces_dir": str(faces_dir) if faces_dir else None, "timed_frames": len(timed),
            "reps": reps, "rows": rows}


def format_sizes(res: dict) -> str:
    lines = ["| input | inference ms (p50) | vs first | recall measurable (sim) | recall in view (sim) | "
             "recall masked_faces all | >=32 px | >=64 px |", "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        st = r.get("stream") or {}
        mf = r.get("masked_faces") or {}

        def rc(d):
            return fmt_num((d or {}).get("recall"), 1, missing="-", percent="%")
        lines.append(f"| {r['size']} | {r['inference_ms_p50']} | {r['inference_ratio']} | {rc(st.get('measurable'))} | "
                     f"{rc(st.get('in_view'))} | {rc(mf.get('all'))} | {rc(mf.get('>=32px'))} | {rc(mf.get('>=64px'))} |")
    return "\n".join(lines)
