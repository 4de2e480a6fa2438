"""`thermal-edge eval-faces DIR [--json] [--json-out PATH]`: face detection recall/precision and mask-status
accuracy of the product's own detector on a folder of labelled photos (see edge/eval/faces.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands._common import (
    add_json_args,
    emit_json,
    load_or_report,
    report_config_errors,
)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 320x256") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be 16..8192 px")
    return w, h


def detector_models() -> tuple[str, ...]:
    """The values detector.model allows (read from the config model, not repeated here)."""
    from typing import get_args

    from edge.vision.detection import DetectorConfig

    return get_args(DetectorConfig.model_fields["model"].annotation)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-faces", help="detection recall/precision and mask accuracy on labelled photos",
                       description=__doc__)
    p.add_argument("dir", type=Path, help="folder with manifest.json and the images it lists "
                                          "(layout of ../shared/data/masked_faces)")
    add_json_args(p, "the full result")
    p.add_argument("--config", type=Path, help="station config TOML whose [detector]/[mask] sections to use "
                                               "(default: the shipped defaults)")
    p.add_argument("--input-size", type=_size, metavar="WxH",
                   help="override the detector input size (multiples of 32), to measure the trade-off")
    p.add_argument("--frame-size", type=_size, metavar="WxH",
                   help="scale each photo into a camera frame of this size first (e.g. 640x480), so face "
                        "sizes and the detector's downscaling are those of that camera")
    p.add_argument("--score-threshold", type=float, help="override the detector score threshold")
    p.add_argument("--model", choices=detector_models(),
                   help="override detector.model: the published weights or our masked-face fine-tune")
    p.add_argument("--no-mask", action="store_true", help="skip the mask classifier")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def _configs(args: argparse.Namespace):
    """(detector config, mask config), or None after reporting every config error."""
    from pydantic import ValidationError

    from edge.vision.detection import DetectorConfig
    from edge.vision.mask import MaskConfig

    det_cfg, mask_cfg = DetectorConfig(), MaskConfig()
    if args.config is not None:
        station = load_or_report(args.config, "not evaluating")
        if station is None:
            return None
        det_cfg, mask_cfg = station.detector, station.mask
    overrides: dict[str, float | str] = {}
    if args.model is not None:
        overrides["model"] = args.model
    if args.input_size is not None:
        overrides.update(input_width_px=args.input_size[0], input_height_px=args.input_size[1])
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    try:
        det_cfg = DetectorConfig(**{**det_cfg.model_dump(), **overrides})
    except ValidationError as e:
        report_config_errors("--input-size/--score-threshold", [
            f"detector.{'.'.join(map(str, err['loc']))}={err.get('input')!r}: {err['msg']}" for err in e.errors()],
            "not evaluating")
        return None
    return det_cfg, mask_cfg


def run(args: argparse.Namespace) -> int:
    from edge.eval.faces import evaluate_faces_dir, format_table
    from edge.vision.detection import build_detector

    configs = _configs(args)
    if configs is None:
        return 2
    det_cfg, mask_cfg = configs
    detector = build_detector(det_cfg)

    from edge.progress import callback

    progress = (lambda done, total: None) if args.quiet else callback("eval-faces", unit="image")
    result = evaluate_faces_dir(args.dir, detector, mask_cfg=mask_cfg, classify_mask=not args.no_mask,
                                frame_wh=args.frame_size, progress=progress)
    if not args.json:
        print(format_table(result))
    emit_json(args, result)
    return 0
