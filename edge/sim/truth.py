"""Ground truth: physiological constants (with provenance) and the expected verdict per person.

Canthus vs core, computed once from ../shared/data/facial_oral/FLIR_dev.csv (FDA / PhysioNet,
Wang et al., Sensors 2022; 625 volunteers, ODC-By 1.0) and written here so rendering never needs
the shared data:

    canthus   = mean of canthiMax1..4 per subject (max of the inner-canthi region, 4 rounds)
    oral      = aveOralM (monitor-mode oral thermometer), degC; ambient = T_atm, degC
    least squares canthus ~ core + ambient (n = 625; the calibration engineer's fit agrees):
        canthus = 5.0434 + 0.8303 * core + 0.0818 * (ambient - 24),  residual SD 0.310
    oral - canthus:          mean 1.232, SD 0.335  (n = 625)
    canthus, oral < 37.5:    p1 34.82, p5 35.05, median 35.67, p95 36.21, p99 36.55 (n = 555)
    canthus, oral >= 37.5:   p5 35.93, median 36.66, p95 37.81 (n = 70)
    forehead centre (T_FHCC1) - canthiMax1: mean -1.29;  canthus corners (RCC1/LCC1): -0.56
    ambient T_atm: 20.6 .. 28.7 degC

Verdict rule (what an ideal pipeline should say, docs/truth.md): a person is measurable in a
thermal frame when the face is inside both views, no FFC is in progress or settling, the
blackbody is in place and settled, the canthi are not behind glasses, the inter-ocular
distance covers at least ``min_iod_thermal_px`` thermal pixels and the face moved less than
``max_motion_thermal_px`` in the last 24 ms (else the bolometer smears the canthus). With at least
``min_valid_frames`` such frames the verdict is elevated if core >= threshold else normal;
otherwise indeterminate with a reason (``expected_verdict``).
"""
from __future__ import annotations

from collections import Counter

from edge.types import GateReason, VerdictStatus

# Skin from core: E[canthus | core, ambient] -- the generative direction, so a simulated
# population has the data's canthus spread at every core temperature (slope < 1: febrile people
# show less of their fever at the canthus than a fixed offset would suggest).
CANTHUS_FROM_CORE = (5.0434, 0.8303, 0.0818, 24.0)  # intercept, core coef, ambient coef, ambient ref
CANTHUS_RESIDUAL_SD_C = 0.310
FLIR_DEV_PROVENANCE = ("FLIR_dev.csv (FDA/PhysioNet facial and oral temperature data, Wang et al., "
                       "Sensors 2022), 625 subjects: mean(canthiMax1..4) = 5.0434 + 0.8303*aveOralM "
                       "+ 0.0818*(T_atm - 24), residual SD 0.310 degC")



def canthus_from_core(core_c: float, ambient_c: float, residual_c: float = 0.0) -> float:
    """Expected inner-canthus maximum for a core temperature and room temperature, degC."""
    a, b, c, ref = CANTHUS_FROM_CORE
    return a + b * core_c + c * (ambient_c - ref) + residual_c


# The gates the simulator models, in edge.types.GateReason's order -- the station's precedence, so
# truth and pipeline name a frame blocked twice (an FFC while the face is still out of view, a
# glasses wearer still too far) the same way: the first that applies is the frame's reason.
GATE_ORDER = tuple(g for g in GateReason if g in {
    GateReason.FFC, GateReason.BLACKBODY_MISSING, GateReason.BLACKBODY_MOVED, GateReason.OUTSIDE_THERMAL_VIEW,
    GateReason.TOO_FAR, GateReason.MOTION_BLUR, GateReason.GLASSES})


def frame_gate(in_view: bool, ffc_blocked: bool, blackbody_state: str, glasses: bool, iod_thermal_px: float,
               min_iod_px: float, motion_px: float = 0.0, max_motion_px: float = float("inf")) -> str:
    """'' when the person is measurable in this thermal frame, else the reason (GATE_ORDER).
    motion_px: how far the eyes moved in the thermal image over the last 24 ms (2 time constants)."""
    applies = {
        GateReason.FFC: ffc_blocked,
        GateReason.BLACKBODY_MISSING: blackbody_state == "missing",
        GateReason.BLACKBODY_MOVED: blackbody_state == "moved",
        GateReason.OUTSIDE_THERMAL_VIEW: not in_view,
        GateReason.TOO_FAR: iod_thermal_px < min_iod_px,
        GateReason.MOTION_BLUR: motion_px > max_motion_px,
        GateReason.GLASSES: glasses,
    }
    return next((g for g in GATE_ORDER if applies[g]), "")


def expected_verdict(core_c: float, gates: list[str], threshold_c: float, min_valid_frames: int) -> dict:
    """Expected verdict from a person's per-thermal-frame gates (frames the person appears in).

    The reason of an indeterminate verdict is the gate that blocked most of the person's frames
    that were in view and near enough (what kept a close face from being measured: glasses, FFC,
    the blackbody); only when no frame came near enough is it 'too_far', and 'outside_thermal_view'
    when the face was never fully in view. Returns {'status', 'reason', 'valid_frames', 'gate_counts'}.
    """
    valid = sum(1 for g in gates if g == "")
    counts = Counter(g for g in gates if g)
    if valid >= min_valid_frames:
        return {"status": VerdictStatus.ELEVATED if core_c >= threshold_c else VerdictStatus.NORMAL, "reason": "",
                "valid_frames": valid,
                "gate_counts": dict(sorted(counts.items()))}
    near = Counter({g: n for g, n in counts.items() if g not in (GateReason.TOO_FAR, GateReason.OUTSIDE_THERMAL_VIEW)})
    if near:
        top = max(near.values())
        reason: GateReason = next(g for g in GATE_ORDER if near.get(g) == top)
    elif counts.get(GateReason.TOO_FAR):
        reason = GateReason.TOO_FAR
    elif counts.get(GateReason.OUTSIDE_THERMAL_VIEW):
        reason = GateReason.OUTSIDE_THERMAL_VIEW
    else:
        reason = GateReason.NO_VALID_FRAMES
    return {"status": VerdictStatus.INDETERMINATE, "reason": reason, "valid_frames": valid, "gate_counts": dict(sorted(counts.items()))}
