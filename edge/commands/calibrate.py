"""`thermal-edge calibrate registration|blackbody|clinical`: fit a station's calibration from data."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from edge.commands._common import emit_json
from edge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit the RGB->thermal registration, the blackbody ROI or the skin->core model")
    cs = p.add_subparsers(dest="what", required=True, metavar="WHAT")

    r = cs.add_parser("registration", help="fit the RGB->thermal homography (+parallax) from a target recording")
    r.add_argument("stream", nargs="?", help="recording of a heated checkerboard / circle grid seen by both cameras")
    r.add_argument("--points", help="CSV of hand-picked pairs: rgb_x,rgb_y,thermal_x,thermal_y[,distance_m]")
    r.add_argument("--calibration", default=None,
                   help="station calibration TOML to update (default: $THERMAL_EDGE_CALIBRATION, else "
                        "STREAM/calibration.toml, else calibration/<station_id>.toml)")
    r.add_argument("--pattern", default="chessboard", choices=("chessboard", "circles", "acircles"),
                   help="target type (default chessboard)")
    r.add_argument("--size", default="7x5", help="inner corners (chessboard) or circles per row x column, e.g. 7x5")
    r.add_argument("--square-m", type=float, default=None,
                   help="target pitch in metres; with it each view's distance is estimated and parallax fitted")
    r.add_argument("--every", type=int, default=1, help="use every Nth thermal frame (default 1)")
    r.add_argument("--ransac-px", type=float, default=1.5, help="RANSAC inlier threshold, thermal px")
    r.add_argument("--dry-run", action="store_true", help="report only, do not write the calibration file")
    r.set_defaults(func=_registration)

    b = cs.add_parser("blackbody", help="find the blackbody in a recording and write its ROI")
    b.add_argument("stream", help="recording with the blackbody in view (nobody in front of it)")
    b.add_argument("--calibration", default=None,
                   help="station calibration TOML to update (default: $THERMAL_EDGE_CALIBRATION, else "
                        "STREAM/calibration.toml, else calibration/<station_id>.toml)")
    b.add_argument("--frames", type=int, default=20,
                   help="thermal frames to average and judge stability over; the recording must have them "
                        "outside FFC (default 20, at least 3)")
    b.add_argument("--dry-run", action="store_true", help="report only, do not write the calibration file")
    b.set_defaults(func=_blackbody)

    c = cs.add_parser("clinical", help="fit the skin->core model from paired canthus / reference temperatures")
    c.add_argument("csv", help="CSV with the FLIR_dev.csv columns (canthiMax1..4, T_atm, aveOralM)")
    c.add_argument("--threshold", default="youden",
                   help="decision threshold on the estimated core: a number in degC, 'youden' or "
                        "'sensitivity:0.9' (chosen inside each training fold; default youden)")
    c.add_argument("--fever-c", type=float, default=37.5, help="reference temperature defining fever (default 37.5)")
    c.add_argument("--model", default="linear", choices=("linear", "offset"), help="model form (default linear)")
    c.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    c.add_argument("--repeats", type=int, default=20, help="cross-validation repetitions (default 20)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=None,
                   help="model file to write (e.g. calibration/skin_to_core.toml, the shipped model); without "
                        "--out or --station-file the model is printed as TOML, no file is written")
    c.add_argument("--station-file", action="append", default=[],
                   help="also replace [skin_to_core] in this station calibration file (repeatable)")
    c.add_argument("--json-out", type=Path, metavar="PATH", help="also write the full cross-validation report as JSON")
    c.set_defaults(func=_clinical)


def _threshold_rule(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        if text == "youden" or text.startswith("sensitivity:"):
            return text
        raise UserError(f"--threshold {text!r}: expected degC, 'youden' or 'sensitivity:<0..1>'") from None


def _clinical(args: argparse.Namespace) -> int:
    import tomlkit

    from edge.eval.clinical import calibrate, load_clinical_csv
    from edge.thermal.calibration import load_calibration, save_calibration

    rule = _threshold_rule(args.threshold)
    data = load_clinical_csv(args.csv)
    model, cv = calibrate(data, args.model, rule, args.fever_c, args.folds, args.repeats, args.seed)
    p = cv["pooled_first_repeat"]
    print(f"{args.csv}: {cv['n_subjects']} subjects, {cv['n_febrile']} febrile (reference >= {args.fever_c} degC), "
          f"{cv['n_excluded']} excluded (no canthus or reference value)")
    if model.model == "linear":
        print(f"model: core = {model.intercept_c:.4f} + {model.skin_coef:.4f} * skin "
              f"{model.ambient_coef:+.4f} * (ambient - {model.ambient_ref_c:g})")
    else:
        print(f"model: core = skin {model.offset_c:+.4f}")
    print(f"decision threshold on estimated core: {model.decision_threshold_c:.2f} degC "
          f"(rule {rule}; per-fold range {cv['threshold_range_c'][0]:.2f}-{cv['threshold_range_c'][1]:.2f})")
    print(f"cross-validated ({args.folds}-fold x{args.repeats}, refitted per fold): "
          f"sensitivity {cv['sensitivity_mean']:.3f} (sd {cv['sensitivity_sd']:.3f}), "
          f"specificity {cv['specificity_mean']:.3f} (sd {cv['specificity_sd']:.3f})")
    print(f"first repeat pooled: TP {p['tp']} FN {p['fn']} TN {p['tn']} FP {p['fp']}; "
          f"sensitivity {p['sensitivity']:.3f} [95% CI {p['sensitivity_ci95'][0]:.3f}-{p['sensitivity_ci95'][1]:.3f}], "
          f"specificity {p['specificity']:.3f} [{p['specificity_ci95'][0]:.3f}-{p['specificity_ci95'][1]:.3f}]")
    print(f"held-out core error: bias {cv['heldout_bias_c']:+.3f} degC, SD {cv['heldout_residual_sd_c']:.3f} degC")

    doc = tomlkit.document()
    doc.add(tomlkit.comment("Default skin->core model, written by `thermal-edge calibrate clinical`; see calibration/README.md"))
    doc["skin_to_core"] = model.to_toml_dict()
    if args.out:  # only where asked: never a default file in the working directory
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(tomlkit.dumps(doc))
        print(f"wrote {out}")
    elif not args.station_file:
        print("no --out or --station-file: the model, not written anywhere:\n")
        print(tomlkit.dumps(doc), end="")
    for station_file in args.station_file:
        cal = load_calibration(station_file)
        cal.file = cal.file.model_copy(update={"skin_to_core": model})
        save_calibration(cal.file, station_file, only=("skin_to_core",))
        print(f"updated [skin_to_core] in {station_file}")
    emit_json(args, {"model": model.model_dump(mode="json"), "cv": cv})
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().split("x"))
        if a < 2 or b < 2:
            raise ValueError
        return a, b
    except ValueError:
        raise UserError(f"--size {text!r}: expected COLSxROWS of inner corners / circles, e.g. 7x5") from None


def _paired_frames(stream: str, every: int):
    """Yield the FramePairs of a recording, every ``every``-th one."""
    from itertools import islice

    from edge.io.recording import recording_pairs

    pairs = recording_pairs(stream)  # capture-time order, as replay pairs them
    try:
        yield from islice(pairs, 0, None, every)
    finally:
        pairs.close()


def _read_points_csv(path: str):
    import csv

    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = ["rgb_x", "rgb_y", "thermal_x", "thermal_y"]
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)} (need {','.join(need)}[,distance_m])")
        for lineno, row in enumerate(reader, start=2):
            try:
                vals = [float(row[c]) for c in need]
                vals.append(float(row["distance_m"]) if row.get("distance_m") not in (None, "") else np.nan)
            except ValueError:
                raise UserError(f"{path}:{lineno}: not a number in {row}") from None
            rows.append(vals)
    if len(rows) < 4:
        raise UserError(f"{path}: {len(rows)} point pairs; at least 4 are needed")
    a = np.array(rows)
    for cols, which in ((slice(0, 2), "rgb_x,rgb_y"), (slice(2, 4), "thermal_x,thermal_y")):
        if _collinear(a[:, cols]):
            raise UserError(f"{path}: the {which} points lie on one line (or repeat); a homography needs "
                            "at least 4 points spread over the image, no 3 of them in line")
    dist = a[:, 4] if np.isfinite(a[:, 4]).all() else None
    return a[:, :2], a[:, 2:4], dist


def _collinear(xy: np.ndarray) -> bool:
    """(M,2) points all on one line, or all at one place: the spread across their main direction
    is under 0.1 % of the spread along it (or none at all)."""
    sv = np.linalg.svd(xy - xy.mean(axis=0), compute_uv=False)
    return bool(sv[0] == 0 or sv[1] <= 1e-3 * sv[0])


def _blackbody(args: argparse.Namespace) -> int:
    from edge.io.recording import open_recording
    from edge.pipeline import find_calibration
    from edge.thermal.blackbody import (
        FFC_ACTIVE,
        candidate_problems,
        find_patch,
        roi_core,
    )
    from edge.thermal.calibration import load_calibration, save_calibration
    from edge.thermal.radiometry import to_celsius

    rec = open_recording(args.stream)
    cal_path = args.calibration or find_calibration(rec.meta.station_id, rec.path)
    cal = load_calibration(cal_path)
    cfg = cal.blackbody
    src = rec.source("thermal")
    frames: list[np.ndarray] = []
    try:
        while len(frames) < max(1, args.frames) and (f := src.read()) is not None:
            if f.ffc_state not in FFC_ACTIVE:  # the shutter image is not the scene
                frames.append(to_celsius(f.image, rec.thermal_units))
    finally:
        src.close()
    if not frames:
        raise UserError(f"{args.stream}: no thermal frames outside FFC")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # dead pixels are NaN in every frame
        mean_c = np.nanmean(np.stack(frames), axis=0)  # averaging frames beats down temporal noise
    roi = find_patch(mean_c, cfg.expected_c(), cfg.auto_tolerance_c, cfg.max_spatial_sd_c, cfg.auto_min_area_px,
                     cfg.auto_max_area_px)
    if roi is None:
        raise UserError(f"{args.stream}: no uniform patch within {cfg.auto_tolerance_c} degC of the "
                        f"{cfg.expected_c():.2f} degC set point in {len(frames)} frames (blackbody on and in view?)")
    problems = candidate_problems(frames, roi, cfg, args.frames)
    if problems:
        raise UserError(f"{args.stream}: refusing the candidate at roi_xywh {list(roi)} "
                        f"({len(frames)} frames): " + "; ".join(problems))
    x, y, w, h = roi
    patch = roi_core(mean_c, roi)  # what the monitor reads: the ROI without its blurred border
    print(f"{args.stream}: blackbody at roi_xywh [{x}, {y}, {w}, {h}] ({len(frames)} frames averaged): "
          f"reads {np.nanmean(patch):.3f} degC (SD {np.nanstd(patch):.3f}), set point {cfg.setpoint_c} degC -> "
          f"camera offset {np.nanmean(patch) - cfg.expected_c():+.3f} degC")
    if args.dry_run:
        print("dry run: calibration file not changed")
        return 0
    new_bb = cfg.model_copy(update={"roi_xywh": [x, y, w, h]})
    save_calibration(cal.file.model_copy(update={"blackbody": new_bb}), cal_path, only=("blackbody",))
    print(f"updated [blackbody] roi_xywh in {cal_path}")
    return 0


def _registration(args: argparse.Namespace) -> int:
    from edge.thermal.calibration import (
        RegistrationSection,
        load_calibration,
        save_calibration,
    )
    from edge.thermal.registration import fit_registration
    from edge.thermal.targets import collect_target_points

    if not args.stream and not args.points:
        raise UserError("calibrate registration: give a STREAM recording or --points CSV")
    cal_path = args.calibration
    if cal_path is None:
        if not args.stream:
            raise UserError("calibrate registration --points: also give --calibration FILE to update")
        from edge.io.recording import open_recording
        from edge.pipeline import find_calibration
        rec = open_recording(args.stream)
        cal_path = find_calibration(rec.meta.station_id, rec.path)
    cal = load_calibration(cal_path)
    reg0 = cal.registration
    if args.points:
        rgb, th, dist = _read_points_csv(args.points)
        source = f"{len(rgb)} hand-picked point pairs from {Path(args.points).name}"
    else:
        size = _parse_size(args.size)
        from edge.io.recording import open_recording
        from edge.progress import progress

        every = max(1, args.every)
        n_thermal = len(open_recording(args.stream).rows["thermal"])
        pairs = progress(_paired_frames(args.stream, every), "calibrate registration", -(-n_thermal // every), "pair")
        rgb, th, dist, n_pairs, n_views = collect_target_points(
            pairs, args.pattern, size, args.square_m, reg0.rgb_focal_px, where=args.stream)
        source = f"{args.pattern} {size[0]}x{size[1]} in {n_views} of {n_pairs} paired frames of {Path(args.stream).name}"
        print(f"{args.stream}: target found in both images of {n_views} of {n_pairs} paired frames")
    try:
        fit = fit_registration(rgb, th, dist, reg0.reference_distance_m, reg0.rgb_focal_px, reg0.iod_m,
                               reg0.parallax_px_m, args.ransac_px)
    except ValueError as e:  # degenerate points the checks above let through
        raise UserError(f"{args.points or args.stream}: {e}") from None
    k = fit.registration.parallax_px_m
    print(f"points {fit.n_points}, RANSAC inliers {fit.n_inliers} (threshold {args.ransac_px} thermal px)")
    print(f"reprojection RMS: {fit.rms_px:.3f} thermal px with parallax model, "
          f"{fit.rms_no_parallax_px:.3f} px homography only")
    if fit.parallax_fitted:
        print(f"parallax fitted: [{k[0]:.3f}, {k[1]:.3f}] thermal px x m")
    else:
        print(f"parallax kept from {cal_path}: [{k[0]:.3f}, {k[1]:.3f}] (views span too little distance"
              + (", or no --square-m" if dist is None else "") + ")")
    if args.dry_run:
        print("dry run: calibration file not changed")
        return 0
    old = cal.file.registration
    section = RegistrationSection.from_registration(
        fit.registration, rms_px=round(fit.rms_px, 4), thermal_focal_px=old.thermal_focal_px,
        fitted_on=source)
    save_calibration(cal.file.model_copy(update={"registration": section}), cal_path, only=("registration",))
    print(f"updated [registration] in {cal_path}")
    return 0
