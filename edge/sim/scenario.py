"""Scenario files (TOML): a seeded description of one simulated recording.

Every section is a StrictModel (unknown keys are errors naming the key); every field has bounds
and a unit. ``load_scenario(path)`` raises ``ScenarioError`` with a one-line message naming the
file and the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from edge.configbase import StrictModel, read_toml
from edge.errors import UserError
from edge.sim.cameras import THERMAL_PRESETS, StationGeometry, make_station
from edge.sim.face import MASK_COLOURS_BGR, MASK_STYLES


class ScenarioError(UserError, ValueError):
    """A scenario file is missing or invalid; one line naming the file and key."""


class StationSpec(StrictModel):
    thermal_preset: str = Field("lepton35", description=f"thermal camera preset: {sorted(THERMAL_PRESETS)}")
    rgb_width: int = Field(640, ge=160, le=3840, description="RGB width, px")
    rgb_height: int = Field(480, ge=120, le=2160, description="RGB height, px")
    rgb_fps: float = Field(30.0, gt=1, le=120, description="RGB frame rate, Hz")
    rgb_hfov_deg: float = Field(50.0, gt=10, lt=150, description="RGB horizontal field of view, degrees")
    thermal_fps: float | None = Field(None, gt=1, le=60, description="override the preset's thermal rate, Hz")
    thermal_center_m: tuple[float, float, float] = Field(
        (0.045, 0.012, 0.0), description="thermal lens centre in RGB-camera coordinates (x right, y down), m")
    thermal_rot_deg: tuple[float, float, float] = Field(
        (0.25, -0.35, 0.8), description="thermal camera pitch, yaw, roll relative to RGB, degrees")
    reference_distance_m: float = Field(1.5, gt=0.3, le=5, description="distance the calibration homography is exact at, m")

    @model_validator(mode="after")
    def _preset_known(self) -> StationSpec:
        if self.thermal_preset not in THERMAL_PRESETS:
            raise ValueError(f"thermal_preset {self.thermal_preset!r}; allowed: {sorted(THERMAL_PRESETS)}")
        return self

    def geometry(self) -> StationGeometry:
        return make_station(self.thermal_preset, (self.rgb_width, self.rgb_height), self.rgb_hfov_deg,
                            self.rgb_fps, self.thermal_center_m, self.thermal_rot_deg,
                            self.reference_distance_m, self.thermal_fps)


class SceneSpec(StrictModel):
    ambient_c: float = Field(23.0, ge=18, le=28, description="room air / background temperature, degC")
    gradient_c: float = Field(1.5, ge=0, le=5, description="background temperature rise from floor to ceiling, degC")
    blackbody_setpoint_c: float = Field(35.0, ge=20, le=45, description="blackbody reference set point, degC")
    blackbody_emissivity: float = Field(0.98, gt=0.5, le=1, description="blackbody emissivity (apparent temperature uses it)")
    blackbody_position_m: tuple[float, float, float] = Field(
        (0.70, -0.50, 1.6), description="blackbody aperture centre in RGB-camera coordinates, m")
    blackbody_size_m: float = Field(0.08, gt=0.01, le=0.5, description="blackbody aperture side, m")
    rgb_brightness: float = Field(1.0, gt=0.2, le=2, description="global RGB lighting gain")


class SensorSpec(StrictModel):
    netd_mk: float = Field(50.0, ge=0, le=500, description="temporal noise (NETD), mK, 1 sigma")
    fpn_c: float = Field(
        0.05, ge=0, le=2, description="residual fixed-pattern noise per pixel after FFC (about the NETD), degC 1 sigma")
    column_fpn_c: float = Field(0.02, ge=0, le=2, description="column fixed-pattern noise, degC 1 sigma")
    blur_sigma_px: float = Field(0.6, ge=0, le=3, description="optics blur (Gaussian PSF), thermal px 1 sigma")
    time_constant_ms: float = Field(
        12.0, ge=0, le=100,
        description="microbolometer thermal time constant, ms (Lepton: ~12): moving subjects smear")
    offset_c: float = Field(0.0, ge=-10, le=10, description="sensor absolute offset at stream start, degC")
    drift_c_per_h: float = Field(
        0.0, ge=-3600, le=3600,
        description="offset drift rate, degC per hour (real cores: up to ~1; larger values compress hours into seconds)")
    dead_pixels: int = Field(3, ge=0, le=1000, description="pixels stuck at raw 0")
    ffc_times_s: list[float] = Field(default_factory=list, description="times an FFC starts (shutter closes), s")
    ffc_imminent_s: float = Field(0.5, ge=0, le=5, description="telemetry says 'imminent' this long before, s")
    ffc_duration_s: float = Field(0.35, gt=0, le=3, description="shutter closed: frames frozen, s")
    ffc_step_c: float = Field(0.4, ge=-5, le=5, description="offset step after each FFC, degC")
    drop_windows_s: list[tuple[float, float]] = Field(
        default_factory=list, description="[start, end) windows with no thermal frames delivered, s")
    units: Literal["centikelvin", "decikelvin"] = Field("centikelvin", description="raw thermal units")


class PersonSpec(StrictModel):
    id: int = Field(..., ge=1, description="person id (truth key)")
    core_c: float = Field(..., ge=34, le=42, description="true core (oral) temperature, degC")
    canthus_residual_c: float = Field(
        0.0, ge=-1.5, le=1.5,
        description="this person's canthus above the FLIR_dev regression on core and ambient, degC (data SD 0.31)")
    canthus_offset_c: float | None = Field(
        None, ge=0, le=3, description="if set: canthus = core - this, degC, instead of the regression")
    waypoints: list[tuple[float, float, float, float]] = Field(
        ..., min_length=2, description="[t_s, x_m, y_m, z_m] eye-midpoint positions, linearly interpolated")
    iod_m: float = Field(0.063, ge=0.05, le=0.075, description="inter-ocular distance, m")
    roll_deg: float = Field(0.0, ge=-20, le=20, description="head roll, degrees")
    sway_deg: float = Field(2.0, ge=0, le=10, description="amplitude of the walking roll sway, degrees")
    mask: str = Field("none", description=f"one of {MASK_STYLES}")
    mask_colour: str = Field("blue", description=f"one of {sorted(MASK_COLOURS_BGR)}")
    mask_temp_c: float | None = Field(None, ge=15, le=40, description="mask surface temperature, degC (default canthus - 1.8)")
    glasses: bool = Field(False, description="LWIR-opaque glasses (hide the canthi)")
    brightness: float = Field(1.0, gt=0.3, le=2.0, description="RGB lighting gain on this person")

    @model_validator(mode="after")
    def _check(self) -> PersonSpec:
        if self.mask not in MASK_STYLES:
            raise ValueError(f"mask {self.mask!r}; allowed: {MASK_STYLES}")
        ts = [w[0] for w in self.waypoints]
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise ValueError(f"waypoint times must increase, got {ts}")
        if any(w[3] < 0.3 for w in self.waypoints):
            raise ValueError("waypoint z (distance) must be >= 0.3 m")
        return self


class EventSpec(StrictModel):
    kind: Literal["blackbody_occluded", "blackbody_moved", "blackbody_off"] = Field(..., description="event type")
    t0_s: float = Field(..., ge=0, description="start, s")
    t1_s: float = Field(1e9, ge=0, description="end, s (default: never)")
    to_m: tuple[float, float, float] | None = Field(None, description="blackbody_moved: new aperture centre, m")

    @model_validator(mode="after")
    def _check(self) -> EventSpec:
        if self.t1_s <= self.t0_s:
            raise ValueError(f"t1_s={self.t1_s} must be after t0_s={self.t0_s}")
        if self.kind == "blackbody_moved" and self.to_m is None:
            raise ValueError("blackbody_moved needs to_m = [x, y, z] (the new aperture centre, m)")
        return self


class TruthSpec(StrictModel):
    threshold_c: float = Field(37.5, ge=34, le=39, description="fever threshold on core temperature, degC")
    min_iod_thermal_px: float = Field(
        13.0, gt=0, le=100,
        description="fewer thermal px between the eyes -> too_far (the blurred canthus reads >0.1 degC low below it)")
    min_valid_frames: int = Field(3, ge=1, le=100, description="measurable thermal frames needed for a verdict")
    max_motion_thermal_px: float = Field(
        4.0, gt=0, le=100,
        description="eyes moving more than this in the thermal image within 24 ms -> motion_blur, px "
                    "(the 12 ms bolometer smear then costs the canthus ~0.2 degC)")
    ffc_settle_s: float = Field(0.5, ge=0, le=10, description="after an FFC, measurements are suppressed this long, s")
    blackbody_settle_s: float = Field(1.0, ge=0, le=10, description="after the blackbody returns, still not ok this long, s")


class Scenario(StrictModel):
    name: str = Field(..., pattern=r"^[a-z0-9_]+$", description="scenario name (folder name)")
    description: str = Field(..., min_length=1, description="one line for `simulate --list`")
    seed: int = Field(..., ge=0, description="random seed: same seed, same bytes")
    duration_s: float = Field(..., gt=0, le=120, description="stream length, s")
    station_id: str = Field("sample-gate-1", description="station id (calibration/<id>.toml)")
    start_utc: str = Field("2026-11-26T09:00:00.000000Z", description="wall time of t_ns = 0")
    hard_case: str = Field("", description="the hard case this scenario exercises")
    station: StationSpec = Field(default_factory=StationSpec)
    scene: SceneSpec = Field(default_factory=SceneSpec)
    sensor: SensorSpec = Field(default_factory=SensorSpec)
    truth: TruthSpec = Field(default_factory=TruthSpec)
    person: list[PersonSpec] = Field(default_factory=list)
    event: list[EventSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        ids = [p.id for p in self.person]
        if len(ids) != len(set(ids)):
            raise ValueError(f"person ids must be unique, got {ids}")
        return self


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    raw = read_toml(path, "scenario file", ScenarioError)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ScenarioError(f"{path}: {loc}: {err['msg']}") from None
