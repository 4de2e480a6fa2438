"""Render a scenario into a recording folder with truth.json (docs/truth.md).

Each person is a planar, fronto-parallel face at depth z walking along waypoints. One 3x3
transform chain places the same source-photo coordinates in both cameras:

    source px --A(t)--> RGB px --H(z)--> thermal px

A(t) is the perspective projection of the face plane (a similarity: scale f_rgb*m/z, roll,
translation), H(z) the exact plane-induced homography of edge/sim/cameras.py. The RGB cut-out
is warped with A, the thermal temperature map with H(z)·A, and every truth point (landmarks,
canthi, face box) goes through the same matrices.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.io.recording import CameraMeta, RecordingWriter, StreamMeta
from edge.sim import face as F
from edge.sim import rgb as R
from edge.sim.cameras import StationGeometry, apply_homography
from edge.sim.scenario import PersonSpec, Scenario, load_scenario
from edge.sim.thermal import SUPERSAMPLE, ThermalSensor
from edge.sim.truth import (
    CANTHUS_FROM_CORE,
    CANTHUS_RESIDUAL_SD_C,
    FLIR_DEV_PROVENANCE,
    canthus_from_core,
    expected_verdict,
    frame_gate,
)

GENERATOR_VERSION = "sim-10"
# Motion is judged over two bolometer time constants (24 ms): what smears one thermal frame.
MOTION_WINDOW_S = 0.024
# camera ids in stream.json, as the station calibration files name them
THERMAL_CAMERA_IDS = {"lepton35": "lepton0", "boson320": "boson0", "boson640": "boson0"}
TRUTH_VERSION = 1


def load_photo() -> np.ndarray:
    from edge.assets import ASTRONAUT, require

    img = cv2.imread(str(require(ASTRONAUT.target)), cv2.IMREAD_COLOR)
    if img is None or img.shape[:2] != (F.SRC_SIZE, F.SRC_SIZE):
        raise ValueError(f"{ASTRONAUT.target}: not the 512x512 astronaut photo")
    return img


@dataclass
class PersonState:
    """Where a person is at one instant: eye midpoint (m, RGB-camera frame) and head roll."""

    pos_m: np.ndarray
    roll_deg: float


def person_state(p: PersonSpec, t_s: float) -> PersonState | None:
    w = np.asarray(p.waypoints, dtype=np.float64)
    if t_s < w[0, 0] or t_s > w[-1, 0]:
        return None
    pos = np.array([np.interp(t_s, w[:, 0], w[:, k]) for k in (1, 2, 3)])
    roll = p.roll_deg + p.sway_deg * np.sin(2 * np.pi * t_s / 1.1 + p.id)  # walking sway, ~1.1 s stride
    return PersonState(pos, float(roll))


def source_to_rgb_matrix(geo: StationGeometry, p: PersonSpec, st: PersonState) -> np.ndarray:
    eye_mid = geo.project_rgb(st.pos_m)[0]
    scale = geo.rgb.focal_px * (p.iod_m / F.SRC_IOD_PX) / st.pos_m[2]
    return F.source_to_rgb(tuple(eye_mid), scale, st.roll_deg)


def _box_of(pts: np.ndarray) -> list[float]:
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def face_geometry(A: np.ndarray) -> dict[str, np.ndarray]:
    """Truth points in the image that ``A`` (source px -> image px, 3x3) maps into."""
    x1, y1, x2, y2 = F.SRC_FACE_BOX
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return {
        "box": apply_homography(A, corners),
        "landmarks": apply_homography(A, F.SRC_LANDMARKS),
        "canthi": apply_homography(A, F.SRC_CANTHI),
    }


def _r(a, nd=2):
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def _face_truth(pid: int, geo: dict[str, np.ndarray], box: list[float], st: PersonState, w: int, h: int,
                **extra) -> dict:
    """One face's truth entry in a w x h image (docs/truth.md); ``extra`` keys go before in_view."""
    iod = float(np.hypot(*(geo["landmarks"][1] - geo["landmarks"][0])))
    return {"id": pid, "box_xyxy": _r(box), "landmarks_xy": _r(geo["landmarks"]), "canthi_xy": _r(geo["canthi"]),
            "iod_px": round(iod, 2), "distance_m": round(float(st.pos_m[2]), 4), **extra,
            "in_view": _inside(box, w, h)}


def _inside(box: list[float], w: int, h: int) -> bool:
    return box[0] >= 0 and box[1] >= 0 and box[2] <= w - 1 and box[3] <= h - 1


def _overlaps(box: list[float], w: int, h: int) -> bool:
    return box[2] > 0 and box[3] > 0 and box[0] < w - 1 and box[1] < h - 1


def _frame_times(n_frames: int, fps: float, start_ns: int, jitter_ns: float, rng: np.random.Generator) -> np.ndarray:
    t = start_ns + np.arange(n_frames) * (1e9 / fps) + rng.normal(0.0, jitter_ns, n_frames)
    return np.round(t).astype(np.int64)


class Renderer:
    def __init__(self, sc: Scenario, photo_bgr: np.ndarray):
        self.sc = sc
        self.geo = sc.station.geometry()
        self.rng = np.random.default_rng(sc.seed)
        self.photo = photo_bgr
        g = self.geo
        self.th_w, self.th_h = g.thermal.width, g.thermal.height
        self.ss_size = (self.th_w * SUPERSAMPLE, self.th_h * SUPERSAMPLE)
        ss = SUPERSAMPLE
        self.S_ss = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1]], np.float64)
        self.persons = sorted(sc.person, key=lambda p: p.id)
        self.canthus_c = {}
        self.offsets = {}
        amb = sc.scene.ambient_c
        for p in self.persons:
            if p.canthus_offset_c is not None:
                self.canthus_c[p.id] = p.core_c - p.canthus_offset_c
            else:
                self.canthus_c[p.id] = canthus_from_core(p.core_c, amb, p.canthus_residual_c)
            self.offsets[p.id] = p.core_c - self.canthus_c[p.id]
        self.rgb_levels, self.th_tmpl = {}, {}
        for p in self.persons:
            cut, alpha = F.person_cutout(photo_bgr, p.mask, p.mask_colour, p.glasses)
            self.rgb_levels[p.id] = R.pyramid(cut, alpha)
            self.th_tmpl[p.id] = F.thermal_template(photo_bgr, self.canthus_c[p.id], amb, p.mask, p.mask_temp_c, p.glasses)
        self.bg_rgb = R.background(g.rgb.width, g.rgb.height, self.rng, sc.scene.rgb_brightness)
        self.noise_bank = R.noise_bank(self.rng, 6, (g.rgb.height, g.rgb.width, 3), 2.0)
        yy = np.linspace(1.0, 0.0, self.ss_size[1], dtype=np.float32)[:, None]
        xx = np.linspace(-0.5, 0.5, self.ss_size[0], dtype=np.float32)[None, :]
        self.bg_th = (amb - 0.5 * sc.scene.gradient_c + sc.scene.gradient_c * yy + 0.3 * xx).astype(np.float32)
        self.sensor = ThermalSensor(sc.sensor, self.th_w, self.th_h, self.rng)

    # --- blackbody -------------------------------------------------------------------------------
    def blackbody_center(self, t_s: float) -> np.ndarray:
        pos = np.asarray(self.sc.scene.blackbody_position_m, dtype=np.float64)
        for ev in self.sc.event:
            if ev.kind == "blackbody_moved" and ev.t0_s <= t_s < ev.t1_s and ev.to_m is not None:
                pos = np.asarray(ev.to_m, dtype=np.float64)
        return pos

    def blackbody_corners(self, t_s: float | None) -> np.ndarray:
        """(4,3) aperture corners, m; t_s None -> where it was installed (the calibrated place)."""
        c = self.blackbody_center(t_s) if t_s is not None else np.asarray(self.sc.scene.blackbody_position_m)
        h = self.sc.scene.blackbody_size_m / 2
        return c + np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])

    def _event_active(self, kind: str, t_s: float, settle_s: float = 0.0) -> bool:
        return any(ev.kind == kind and ev.t0_s <= t_s < ev.t1_s + settle_s for ev in self.sc.event)

    def blackbody_state(self, t_s: float, covered_frac: float) -> str:
        settle = self.sc.truth.blackbody_settle_s
        if (self._event_active("blackbody_occluded", t_s, settle) or self._event_active("blackbody_off", t_s, settle)
                or covered_frac > 0.2):
            return "missing"
        if self._event_active("blackbody_moved", t_s):
            return "moved"
        return "ok"

    def calibrated_roi_xywh(self, margin_px: int = 2) -> list[int]:
        """The blackbody aperture in thermal px at its installed place, shrunk ``margin_px`` per
        side: with the 0.6 px optics blur a 1 px margin still lets the wall pull the ROI mean
        0.17 degC low (measured on the Lepton sample), 2 px leaves < 0.02 degC."""
        px = self.geo.project_thermal(self.blackbody_corners(None))
        x0, y0 = np.ceil(px.min(axis=0)).astype(int) + margin_px
        x1, y1 = np.floor(px.max(axis=0)).astype(int) - margin_px
        return [int(x0), int(y0), int(max(1, x1 - x0 + 1)), int(max(1, y1 - y0 + 1))]

    # --- frames ----------------------------------------------------------------------------------
    def _layers(self, t_s: float, ref_s: float | None = None) -> list[tuple[str, tuple[PersonSpec, PersonState] | None]]:
        """What is in view at t_s, farthest first (painter's order): ('bb', None), ('p', (spec, state)).
        With ``ref_s``: the people in view at ref_s, placed where they were at t_s (clamped to their
        waypoints) -- the sensor's recent past for its time constant."""
        layers: list[tuple[float, str, tuple[PersonSpec, PersonState] | None]] = [
            (self.blackbody_center(t_s)[2], "bb", None)]
        for p in self.persons:
            if ref_s is None:
                st = person_state(p, t_s)
            elif person_state(p, ref_s) is not None:
                st = person_state(p, min(max(t_s, p.waypoints[0][0]), p.waypoints[-1][0]))
            else:
                st = None
            if st is not None:
                layers.append((st.pos_m[2], "p", (p, st)))
        return [(kind, obj) for _, kind, obj in sorted(layers, key=lambda x: -x[0])]

    def rgb_frame(self, idx: int, t_s: float) -> tuple[np.ndarray, list[dict]]:
        g = self.geo
        img = self.bg_rgb.copy()
        truth = []
        covers: list[list[tuple[int, int, np.ndarray]]] = []  # per truth face: the people drawn over it
        for kind, obj in self._layers(t_s):
            if kind == "bb":
                corners = g.project_rgb(self.blackbody_corners(t_s))
                R.draw_blackbody(img, corners, self._event_active("blackbody_occluded", t_s))
                continue
            assert obj is not None  # a person layer
            p, st = obj
            A = source_to_rgb_matrix(g, p, st)
            exp_s = 0.012  # exposure: indoor lighting, 12 ms
            st2 = person_state(p, min(t_s + exp_s, p.waypoints[-1][0]))
            A2 = source_to_rgb_matrix(g, p, st2) if st2 is not None else A
            d = apply_homography(A2, [F.SRC_EYE_MID])[0] - apply_homography(A, [F.SRC_EYE_MID])[0]
            landed = R.composite_person(img, self.rgb_levels[p.id], A, p.brightness, R.motion_kernel(d[0], d[1]))
            if landed is not None:  # painter's order: this person hides part of every face drawn before
                for c in covers:
                    c.append(landed)
            geo = face_geometry(A)
            box = _box_of(geo["box"])
            if not _overlaps(box, g.rgb.width, g.rgb.height):
                continue
            truth.append(_face_truth(p.id, geo, box, st, g.rgb.width, g.rgb.height, masked=p.mask != "none"))
            covers.append([])
        for face, c in zip(truth, covers):
            # after in_view (docs/truth.md): the share of the face box no nearer person hides
            face["visible_frac"] = round(1.0 - R.hidden_fraction(face["box_xyxy"], c), 3)
        return R.finish(img, self.noise_bank, idx), truth

    def thermal_exposure(self, t_s: float) -> tuple[np.ndarray, list[dict], float]:
        """The scene as the microbolometer integrates it: an exponential average over the recent
        past with the sensor's time constant (samples at t, t - tau, t - 2 tau, weights e^0,
        e^-1, e^-2), so a subject moving fast smears. Truth is the scene at t."""
        tau = self.sc.sensor.time_constant_ms / 1000.0
        scene, faces, covered = self.thermal_scene(t_s)
        if tau <= 0 or not faces or self._thermal_motion_px(t_s, 2 * tau) < 0.25:
            return scene, faces, covered  # nothing moved enough to smear: skip two renders
        weights = np.exp(-np.arange(3.0))
        acc = scene * weights[0]
        for k in (1, 2):
            acc += self.thermal_scene(t_s - k * tau, ref_s=t_s)[0] * weights[k]
        return acc / weights.sum(), faces, covered

    def face_motion_px(self, p: PersonSpec, t_s: float, dt_s: float) -> float:
        """How far the eyes of ``p`` move in the thermal image between t_s - dt_s and t_s, px."""
        st = person_state(p, t_s)
        st0 = person_state(p, min(max(t_s - dt_s, p.waypoints[0][0]), p.waypoints[-1][0]))
        if st is None or st0 is None:
            return 0.0
        pts = [apply_homography(self.geo.homography_at(s.pos_m[2]) @ source_to_rgb_matrix(self.geo, p, s),
                                F.SRC_LANDMARKS[:2]) for s in (st, st0)]
        return float(np.abs(pts[0] - pts[1]).max())

    def _thermal_motion_px(self, t_s: float, dt_s: float) -> float:
        """Largest image motion of any face in view at t_s over the last dt_s, thermal px."""
        return max((self.face_motion_px(obj[0], t_s, dt_s) for kind, obj in self._layers(t_s)
                    if kind == "p" and obj is not None),
                   default=0.0)

    def thermal_scene(self, t_s: float, ref_s: float | None = None) -> tuple[np.ndarray, list[dict], float]:
        """Supersampled scene degC, per-person truth, fraction of the blackbody ROI covered."""
        g, sc = self.geo, self.sc
        T = self.bg_th.copy()
        bb_c = self.blackbody_center(t_s)
        bb_poly = apply_homography(self.S_ss, g.project_thermal(self.blackbody_corners(t_s)))
        bb_mask = np.zeros(T.shape, np.float32)
        cv2.fillConvexPoly(bb_mask, np.round(bb_poly * 16).astype(np.int32), 1.0, cv2.LINE_AA, 4)
        truth, covered = [], 0.0
        for kind, obj in self._layers(t_s, ref_s):
            if kind == "bb":
                amb = sc.scene.ambient_c
                if self._event_active("blackbody_off", t_s):
                    T[:] = T * (1 - bb_mask) + (amb + 0.5) * bb_mask
                    continue
                T[:] = T * (1 - bb_mask) + sc.scene.blackbody_setpoint_c * bb_mask
                if self._event_active("blackbody_occluded", t_s):
                    c = bb_poly.mean(axis=0)
                    card = np.round((c + (bb_poly - c) * 2.2) * 16).astype(np.int32)
                    cv2.fillConvexPoly(T, card, amb + 0.8, cv2.LINE_AA, 4)
                continue
            assert obj is not None  # a person layer
            p, st = obj
            A = source_to_rgb_matrix(g, p, st)
            H = g.homography_at(st.pos_m[2])
            Hs = self.S_ss @ H @ A
            tmpl, alpha = self.th_tmpl[p.id]
            Tp = cv2.warpPerspective(tmpl, Hs, self.ss_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.warpPerspective(alpha, Hs, self.ss_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            T[:] = T * (1 - a) + Tp * a
            if bb_c[2] > st.pos_m[2]:
                covered = max(covered, float((a * bb_mask).sum() / max(bb_mask.sum(), 1e-6)))
            geo = face_geometry(H @ A)
            box = _box_of(geo["box"])
            truth.append(_face_truth(p.id, geo, box, st, self.th_w, self.th_h))
        return T, truth, covered


def render_scenario(scenario_file: str | Path, out_dir: str | Path, photo_bgr: np.ndarray | None = None,
                    seed: int | None = None) -> dict:
    """Render ``scenario_file`` into the recording folder ``out_dir``; returns the truth dict.
    ``seed`` overrides the file's seed (new noise, FPN, dead pixels, background; same people)."""
    scenario_file = Path(scenario_file)
    sc = load_scenario(scenario_file)
    if seed is not None:
        sc = sc.model_copy(update={"seed": int(seed)})
    rd = Renderer(sc, photo_bgr if photo_bgr is not None else load_photo())
    g = rd.geo
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "stream.json").unlink(missing_ok=True)  # incomplete until close() rewrites it
    n_rgb = int(np.floor(sc.duration_s * g.rgb.fps))
    n_th = int(np.floor(sc.duration_s * g.thermal.fps))
    t_rgb = _frame_times(n_rgb, g.rgb.fps, 1_000_000, 300_000, rd.rng)
    t_th = _frame_times(n_th, g.thermal.fps, 3_000_000, 500_000, rd.rng)
    meta = StreamMeta(
        station_id=sc.station_id, start_utc=sc.start_utc, t0_ns=0,
        rgb=CameraMeta("rgb0", g.rgb.width, g.rgb.height, g.rgb.fps, "bgr24", "rgb.avi"),
        thermal=CameraMeta(THERMAL_CAMERA_IDS[sc.station.thermal_preset], g.thermal.width, g.thermal.height,
                           g.thermal.fps, "gray16le", "thermal.mkv", sc.sensor.units),
        extra={"scenario": sc.name, "seed": sc.seed, "generator": GENERATOR_VERSION},
    )
    rgb_truth, th_truth = [], []
    gates: dict[int, list[str]] = {p.id: [] for p in rd.persons}
    writer = RecordingWriter(out_dir, meta)
    try:
        # Interleave the two cameras in time order, as a station would record them.
        events = sorted([(int(t), "rgb", i) for i, t in enumerate(t_rgb)] + [(int(t), "thermal", i) for i, t in enumerate(t_th)])
        from edge.progress import progress

        for t_ns, cam, i in progress(events, f"simulate {sc.name}", len(events), "frame"):
            t_s = t_ns / 1e9
            if cam == "rgb":
                img, faces = rd.rgb_frame(i, t_s)
                idx = writer.write("rgb", img, t_ns)
                rgb_truth.append({"index": idx, "t_ns": t_ns, "faces": faces})
                continue
            scene, faces, covered = rd.thermal_exposure(t_s)
            raw, ffc_state = rd.sensor.expose(scene, t_s)  # the sensor runs even when frames are lost
            if any(a <= t_s < b for a, b in sc.sensor.drop_windows_s):
                continue
            bb_state = rd.blackbody_state(t_s, covered)
            ffc_blocked = ffc_state == "in_progress" or rd.sensor.ffc.since_last_end_s(t_s) < sc.truth.ffc_settle_s
            idx = writer.write("thermal", raw, t_ns, ffc_state)
            for f in faces:
                p = next(q for q in rd.persons if q.id == f["id"])
                st = person_state(p, t_s)
                assert st is not None  # the frame's faces are persons in view
                box_rgb = _box_of(face_geometry(source_to_rgb_matrix(g, p, st))["box"])
                if not _overlaps(box_rgb, g.rgb.width, g.rgb.height):
                    f["gate"] = "not_in_rgb"
                    continue
                in_view = f["in_view"] and _inside(box_rgb, g.rgb.width, g.rgb.height)
                f["motion_px"] = round(rd.face_motion_px(p, t_s, MOTION_WINDOW_S), 3)
                f["gate"] = frame_gate(in_view, ffc_blocked, bb_state, p.glasses, f["iod_px"],
                                       sc.truth.min_iod_thermal_px, f["motion_px"], sc.truth.max_motion_thermal_px)
                gates[p.id].append(f["gate"])
            th_truth.append({"index": idx, "t_ns": t_ns, "ffc_state": ffc_state, "ffc_blocked": bool(ffc_blocked),
                             "offset_c": round(rd.sensor.offset_c(t_s), 4), "blackbody_state": bb_state,
                             "blackbody_covered_frac": round(covered, 3), "faces": faces})
    except BaseException:
        writer.__exit__(RuntimeError, None, None)
        raise
    truth = build_truth(sc, rd, rgb_truth, th_truth, gates, scenario_file)
    writer.close(truth)  # the v2 thermal writer is byte-reproducible itself (edge/io/mkv.py)
    copy = out_dir / "scenario.toml"
    if not copy.exists() or not copy.samefile(scenario_file):
        copy.write_bytes(scenario_file.read_bytes())
    return truth


def build_truth(sc: Scenario, rd: Renderer, rgb_truth, th_truth, gates, scenario_file: Path) -> dict:
    g = rd.geo
    persons = []
    for p in rd.persons:
        v = expected_verdict(p.core_c, gates[p.id], sc.truth.threshold_c, sc.truth.min_valid_frames)
        persons.append({
            "id": p.id, "core_c": p.core_c, "canthus_c": round(rd.canthus_c[p.id], 4),
            "canthus_offset_c": round(rd.offsets[p.id], 4), "febrile": p.core_c >= sc.truth.threshold_c,
            "mask": p.mask, "mask_colour": p.mask_colour if p.mask != "none" else "", "glasses": p.glasses,
            "iod_m": p.iod_m, "expected": v,
        })
    bb_px = g.project_thermal(rd.blackbody_corners(None))
    return {
        "truth_version": TRUTH_VERSION,
        "generator": GENERATOR_VERSION,
        "scenario": sc.name,
        "description": sc.description,
        "hard_case": sc.hard_case,
        "seed": sc.seed,
        "scenario_sha256": hashlib.sha256(scenario_file.read_bytes()).hexdigest(),
        "station_id": sc.station_id,
        "threshold_c": sc.truth.threshold_c,
        "rules": sc.truth.model_dump(),
        "physiology": {"canthus_from_core": dict(zip(("intercept_c", "core_coef", "ambient_coef", "ambient_ref_c"),
                                                     CANTHUS_FROM_CORE)),
                       "canthus_residual_sd_c": CANTHUS_RESIDUAL_SD_C, "source": FLIR_DEV_PROVENANCE},
        "cameras": {
            "rgb": {"width": g.rgb.width, "height": g.rgb.height, "fps": g.rgb.fps, "hfov_deg": g.rgb.hfov_deg,
                    "K": _r(g.rgb.K, 6)},
            "thermal": {"width": g.thermal.width, "height": g.thermal.height, "fps": g.thermal.fps,
                        "hfov_deg": g.thermal.hfov_deg, "K": _r(g.thermal.K, 6),
                        "center_m": list(g.thermal_center_m), "rot_deg_pitch_yaw_roll": list(g.thermal_rot_deg),
                        "R": _r(g.R, 9), "t_m": _r(g.t, 9)},
        },
        "registration": g.calibration_numbers(),
        "sensor": {**sc.sensor.model_dump(), "dead_pixels_yx": rd.sensor.dead_yx.tolist(), "emissivity_setting": 0.98},
        "blackbody": {"setpoint_c": sc.scene.blackbody_setpoint_c, "emissivity": sc.scene.blackbody_emissivity,
                      "position_m": list(sc.scene.blackbody_position_m), "size_m": sc.scene.blackbody_size_m,
                      "corners_thermal_xy": _r(bb_px), "roi_xywh": rd.calibrated_roi_xywh()},
        "ambient_c": sc.scene.ambient_c,
        "persons": persons,
        "frames": {"rgb": rgb_truth, "thermal": th_truth},
    }

