"""`thermal-edge import FILE... --out STREAM_DIR`: FLIR radiometric files -> a recording (format v2).

Accepts R-JPEG (.jpg), bare FFF (.fff) and SEQ video (.seq, one frame per FFF; frame times from
the camera's own time stamps when they increase, else --fps); CSQ is refused with a message.
Each image becomes one thermal frame (centi-kelvin, from the file's own Planck constants and
scene parameters, with the object emissivity set for skin unless told otherwise) and one RGB
frame: the embedded visible photo when the file has one, else a false-colour rendering of the
thermal image (stream.json ``extra.rgb_source`` says which, per file). Prints per file the
decoded min/median/max and, with --faces, each face's canthus temperature.
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.commands._common import add_json_args, emit_json
from edge.errors import UserError

RGB_SCALE = 4  # false-colour RGB frames are the thermal image upscaled this much (detector input size)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert FLIR radiometric JPEG/FFF/SEQ files into a recording (centi-kelvin)")
    p.add_argument("files", nargs="+", help="FLIR R-JPEG / .fff / .seq files (all with the same thermal resolution)")
    p.add_argument("--out", required=True, help="recording folder to create (new or empty)")
    p.add_argument("--force", action="store_true", help="replace the recording in a non-empty --out folder")
    p.add_argument("--emissivity", default="0.98",
                   help="object emissivity for the conversion (default 0.98, skin); 'file' keeps each file's")
    p.add_argument("--station-id", default="flir-import", help="station_id written to stream.json")
    p.add_argument("--fps", type=float, default=1.0, help="nominal frame rate of the recording (default 1)")
    p.add_argument("--faces", action="store_true", help="detect faces and report canthus temperatures")
    add_json_args(p, "the per-file report")
    p.add_argument("--calibration-out", help="where to write the station calibration TOML for replaying the "
                   "recording (default: OUT/calibration.toml, which replay/demo find by themselves): "
                   "RGB->thermal mapping from the file's PiP record (visible photo) or the exact 4x scale "
                   "(false colour), blackbody disabled, the shipped skin->core model")
    p.set_defaults(func=_run)


def read_images(files: list[str]) -> list[tuple[str, Any]]:
    """[(file, FlirImage)], one per frame of every file (a .seq holds many), each file read once."""
    from edge.io.flir import FlirError, read_flir_any

    try:
        return [(f, im) for f in files for im in read_flir_any(f)]
    except FlirError as e:
        raise UserError(str(e)) from None


def _temperatures_c(im: Any, emissivity: float | None) -> np.ndarray:
    return im.temperatures_c(**({} if emissivity is None else {"emissivity": emissivity}))


def import_files(images: list[tuple[str, Any]], out: str | Path, emissivity: float | None = 0.98,
                 station_id: str = "flir-import", fps: float = 1.0) -> list[dict]:
    """Write the recording of ``images`` (from ``read_images``); return one summary dict per frame."""
    from edge.io.recording import CameraMeta, RecordingWriter, StreamMeta
    from edge.progress import progress
    from edge.thermal.colour import false_colour
    from edge.thermal.radiometry import from_celsius

    decoded = [(f, im, _temperatures_c(im, emissivity)) for f, im in progress(images, "import", len(images), "frame")]
    th_shape = decoded[0][2].shape
    bad = next(((f, t.shape) for f, _, t in decoded if t.shape != th_shape), None)
    if bad:
        raise UserError(f"{bad[0]}: thermal image is {bad[1][::-1]}, the first file's is {th_shape[::-1]}; "
                        "a recording has one resolution -- import them separately")
    rgb0 = decoded[0][1].visible_bgr
    rgb_wh = (rgb0.shape[1], rgb0.shape[0]) if rgb0 is not None else (th_shape[1] * RGB_SCALE, th_shape[0] * RGB_SCALE)
    from edge.utc import utc_iso

    meta = StreamMeta(
        station_id=station_id, start_utc=utc_iso(), t0_ns=0,
        rgb=CameraMeta("rgb0", rgb_wh[0], rgb_wh[1], fps, "bgr24", "rgb.avi"),
        thermal=CameraMeta("flir0", th_shape[1], th_shape[0], fps, "gray16le", "thermal.mkv", "centikelvin"))
    times = [im.camera.get("time_unix_s") for _, im, _ in decoded]
    use_camera_clock = len(times) > 1 and all(t is not None for t in times) and all(
        b > a for a, b in zip(times, times[1:]))
    summaries = []
    out = Path(out)
    with RecordingWriter(out, meta) as w:
        for i, (f, im, temp) in enumerate(decoded):
            t_ns = int(round((times[i] - times[0]) * 1e9)) if use_camera_clock else int(round(i * 1e9 / fps))
            if im.visible_bgr is not None:
                rgb, src = im.visible_bgr, "embedded visible photo"
            else:
                rgb, src = false_colour(temp), "false colour of the thermal image (file has no visible photo)"
            if im.visible_bgr is None and rgb_wh == (temp.shape[1] * RGB_SCALE, temp.shape[0] * RGB_SCALE):
                rgb = cv2.resize(rgb, rgb_wh, interpolation=cv2.INTER_CUBIC)
                src += f", upscaled {RGB_SCALE}x"
            elif rgb.shape[1::-1] != rgb_wh:
                rgb = cv2.resize(rgb, rgb_wh, interpolation=cv2.INTER_AREA)
                src += f", resized to {rgb_wh[0]}x{rgb_wh[1]}"
            w.write("thermal", from_celsius(temp, "centikelvin"), t_ns)
            w.write("rgb", np.ascontiguousarray(rgb), t_ns)
            p = im.params
            summaries.append({
                "file": Path(f).name, "frame": i, "t_ns": t_ns, "camera": im.camera.get("model", ""),
                "thermal_wh": [th_shape[1], th_shape[0]], "raw_format": im.raw_format, "byte_swapped": im.byte_swapped,
                "planck": {"R1": p.r1, "R2": p.r2, "B": p.b, "F": p.f, "O": p.o},
                "file_emissivity": round(p.emissivity, 4), "emissivity_used": round(p.emissivity if emissivity is None else emissivity, 4),
                "reflected_c": round(p.reflected_c, 2), "atmosphere_c": round(p.atmosphere_c, 2),
                "humidity": round(p.humidity, 3), "distance_m": round(p.distance_m, 2),
                "min_c": round(float(np.nanmin(temp)), 2), "median_c": round(float(np.nanmedian(temp)), 2),
                "max_c": round(float(np.nanmax(temp)), 2), "rgb_source": src, "pip": im.pip,
            })
        w.meta.extra = {"generator": "thermal-edge import", "frame_times": "camera clock" if use_camera_clock
                        else f"--fps {fps:g}", "files": summaries}
    return summaries


def write_import_calibration(images: list[tuple[str, Any]], summaries: list[dict], out: str | Path,
                             station_id: str) -> Path:
    """A calibration file matching an imported recording (see --calibration-out)."""
    from edge.eval.clinical import load_skin_to_core
    from edge.io.flir import pip_homography
    from edge.thermal.calibration import (
        CalibrationFile,
        RegistrationSection,
        save_calibration,
    )

    sources = {s["rgb_source"] for s in summaries}
    if len(sources) != 1 or "resized" in next(iter(sources)):
        raise UserError(f"--calibration-out: the frames' RGB images differ in kind or size ({sorted(sources)}); "
                        "import such files into separate recordings")
    if summaries[0]["rgb_source"].startswith("embedded"):
        homs = [pip_homography(im) for _, im in images]
        pips = [h for h in homs if h is not None]
        if len(pips) < len(homs) or any(not np.allclose(h, pips[0]) for h in pips):
            raise UserError("--calibration-out: the files carry no PiP record, or different ones; "
                            "fit the mapping with `thermal-edge calibrate registration --points`")
        h, how = pips[0], "FLIR PiP record (Real2IR, OffsetX/Y) of the imported files"
    else:  # false colour drawn from the thermal image itself, upscaled by RGB_SCALE
        k = RGB_SCALE
        h = np.array([[1 / k, 0, 0.5 / k - 0.5], [0, 1 / k, 0.5 / k - 0.5], [0, 0, 1.0]])
        how = f"exact: the RGB frames are the thermal image in false colour, upscaled {k}x"
    cal = CalibrationFile(
        station_id=station_id, date=dt.date.today(),
        cameras={"rgb_id": "rgb0", "thermal_id": "flir0"},
        registration=RegistrationSection(homography=h.tolist(), fitted_on=how),
        blackbody={"enabled": False}, skin_to_core=load_skin_to_core())
    return save_calibration(cal, out)


def _run(args: argparse.Namespace) -> int:
    emissivity = None if args.emissivity == "file" else float(args.emissivity)
    if emissivity is not None and not 0.01 <= emissivity <= 1.0:
        raise UserError(f"--emissivity {args.emissivity}: allowed 0.01..1 or 'file'")
    for f in args.files:
        if not Path(f).is_file():
            raise UserError(f"{f}: file not found")
    # with --json, stdout carries only the JSON report; the readable lines go to stderr
    say = functools.partial(print, file=sys.stderr) if args.json else print

    from edge.io.recording import claim_output_dir

    claim_output_dir(args.out, args.force)
    images = read_images(args.files)
    summaries = import_files(images, args.out, emissivity, args.station_id, args.fps)
    if args.calibration_out:
        write_import_calibration(images, summaries, args.calibration_out, args.station_id)
        say(f"wrote {args.calibration_out}")
    else:  # next to the recording, where replay/demo look first (edge.pipeline.find_calibration)
        from edge.pipeline import RECORDING_CALIBRATION

        try:
            cal = write_import_calibration(images, summaries, Path(args.out) / RECORDING_CALIBRATION, args.station_id)
            say(f"wrote {cal} (replay/demo {args.out} use it)")
        except UserError as e:
            say(f"note: no calibration written next to the recording: {str(e).removeprefix('--calibration-out: ')}")
    detector = None
    if args.faces:
        from edge.io.flir import face_report
        from edge.vision.detection import build_detector
        detector = build_detector()
    for (_, im), s in zip(images, summaries):
        say(f"{s['file']} (frame {s['frame']}): {s['camera']} {s['thermal_wh'][0]}x{s['thermal_wh'][1]} "
              f"({s['raw_format']}"
              f"{', byte-swapped' if s['byte_swapped'] else ''}), emissivity {s['emissivity_used']}: "
              f"min {s['min_c']:.2f}  median {s['median_c']:.2f}  max {s['max_c']:.2f} degC; rgb = {s['rgb_source']}")
        if detector is not None:
            s["faces"] = face_report(_temperatures_c(im, emissivity), detector)
            for k, face in enumerate(s["faces"]):
                canthus = f"canthus {face['canthus_c']:.2f} degC" if face["canthus_c"] is not None \
                    else f"not measured ({face['gate']}); hottest 2x2 in upper face {face['hot_region_c']:.2f} degC"
                say(f"  face {k}: box {face['box_xyxy']} score {face['score']:.2f}: {canthus}; "
                      f"face median {face['face_median_c']:.2f} degC")
    say(f"wrote {args.out} ({len(summaries)} frame pairs)")
    if detector is not None:
        from types import SimpleNamespace

        from edge.decision import DecisionConfig
        from edge.replay import why_nobody_screened
        from edge.vision.tracking import TrackingConfig

        defaults = SimpleNamespace(tracking=TrackingConfig(), decision=DecisionConfig())  # what a replay uses
        note = why_nobody_screened(len(summaries), sum(1 for s in summaries if s["faces"]), defaults)
        if note and len(summaries) < max(defaults.tracking.min_hits, defaults.decision.min_valid_frames):
            say(f"note: a replay of {args.out} will screen nobody -- {note}")
    emit_json(args, summaries)
    return 0
