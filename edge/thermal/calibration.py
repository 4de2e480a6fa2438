"""Per-station calibration files (calibration/<station>.toml): schema, loading, saving.

One file per station holds what was measured for that station: the RGB->thermal mapping, the
blackbody settings and the skin->core model with its decision threshold. It is validated on
load (pydantic, unknown keys rejected); every error is one line naming the file and the key
path, e.g. ``calibration/gate-2.toml: registration.homography: expected 3 rows of 3 numbers``.

Saving rewrites only the tables it is given and keeps the operator's comments and layout
(tomlkit), so ``thermal-edge calibrate registration`` does not wipe hand-written notes.
"""
from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator

from edge.configbase import StrictModel, read_toml
from edge.errors import UserError
from edge.thermal.blackbody import BlackbodyConfig
from edge.thermal.registration import Registration

SCHEMA_VERSION = 1


class CalibrationError(UserError, ValueError):
    """A calibration file is missing, not TOML, or fails validation. One line, names file and key."""


class CamerasSection(StrictModel):
    rgb_id: str = Field("rgb0", min_length=1, description="id of the RGB camera this calibration belongs to")
    thermal_id: str = Field("lepton0", min_length=1, description="id of the thermal camera")


class RegistrationSection(StrictModel):
    homography: list[list[float]] = Field(
        default_factory=lambda: [[0.25, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 1.0]],
        description="3x3 homography, RGB px -> thermal px at reference_distance_m (default: 640x480 -> 160x120 scaling)")
    reference_distance_m: float = Field(1.5, gt=0.1, le=20.0, description="distance the homography is exact at, m")
    parallax_px_m: list[float] = Field(
        default_factory=lambda: [0.0, 0.0], description="parallax vector, thermal px x m (shift per 1/d); [0, 0] = none")
    rgb_focal_px: float = Field(500.0, gt=10.0, le=100000.0, description="RGB focal length, RGB px (distance from IOD)")
    iod_m: float = Field(0.063, ge=0.04, le=0.09, description="assumed inter-ocular distance, m (adult mean 63 mm)")
    thermal_focal_px: float | None = Field(None, gt=0.0, description="thermal focal length, thermal px (informational)")
    rms_px: float | None = Field(None, ge=0.0, description="reprojection RMS of the fit, thermal px (informational)")
    model_max_error_px: float | None = Field(
        None, ge=0.0, description="worst error of homography+parallax vs the exact mapping, thermal px (informational)")
    fitted_on: str = Field("", description="what the mapping was fitted from (informational)")

    @field_validator("homography")
    @classmethod
    def _h3x3(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) != 3 or any(len(r) != 3 for r in v):
            raise ValueError("expected 3 rows of 3 numbers")
        if not all(math.isfinite(x) for r in v for x in r) or abs(np.linalg.det(np.array(v))) < 1e-12:
            raise ValueError("must be finite and invertible")
        return v

    @field_validator("parallax_px_m")
    @classmethod
    def _two(cls, v: list[float]) -> list[float]:
        if len(v) != 2:
            raise ValueError("expected [kx, ky]")
        return v

    def to_registration(self) -> Registration:
        return Registration(np.array(self.homography), self.reference_distance_m, np.array(self.parallax_px_m),
                            self.rgb_focal_px, self.iod_m)

    @classmethod
    def from_registration(cls, reg: Registration, **extra: Any) -> RegistrationSection:
        return cls(homography=[[float(x) for x in row] for row in reg.homography],
                   reference_distance_m=reg.reference_distance_m,
                   parallax_px_m=[float(x) for x in reg.parallax_px_m], rgb_focal_px=reg.rgb_focal_px,
                   iod_m=reg.iod_m, **extra)


class SkinToCore(StrictModel):
    """Skin (inner-canthus maximum) -> core (oral) temperature.

    offset: core = skin + offset_c.
    linear: core = intercept_c + skin_coef * skin + ambient_coef * (ambient - ambient_ref_c);
        without an ambient reading the ambient term is 0 (ambient taken as ambient_ref_c);
        ambient is clamped to ambient_range_c (the range it was fitted on).
    """

    # The one default model (a calibration without [skin_to_core], MeasureContext()): core =
    # canthus skin + offset, fitted on ../shared/data/facial_oral/FLIR_dev.csv (FDA/PhysioNet, 625
    # volunteers; 614 rows with both values): aveOralM - canthiMax1 has mean 1.2994 degC and sample
    # SD 0.3585 degC (median 1.28). The SD is the person-to-person residual of this model, i.e.
    # the uncertainty a perfect camera still has about the core.
    model: Literal["offset", "linear"] = Field("offset", description="model form")
    offset_c: float = Field(1.2994, ge=-5.0, le=5.0, description="offset model: core - skin, degC")
    intercept_c: float = Field(0.0, ge=-100.0, le=100.0, description="linear model intercept, degC")
    skin_coef: float = Field(1.0, ge=0.0, le=5.0, description="linear model: degC core per degC skin")
    ambient_coef: float = Field(0.0, ge=-2.0, le=2.0, description="linear model: degC core per degC ambient")
    ambient_ref_c: float = Field(24.0, ge=-20.0, le=50.0, description="ambient the linear model is centred on, degC")
    ambient_range_c: list[float] = Field(default_factory=lambda: [15.0, 35.0],
                                         description="ambient range the model was fitted on, degC [lo, hi]")
    residual_sd_c: float = Field(0.3585, gt=0.0, le=3.0, description="1-sigma error of the core estimate, degC")
    decision_threshold_c: float = Field(37.5, ge=35.0, le=40.0,
                                        description="estimated-core threshold at/above which a subject is elevated, degC")
    fever_definition_c: float = Field(37.5, ge=36.0, le=40.0,
                                      description="reference (oral) temperature defining fever in the fit, degC")
    fitted_on: str = Field("", description="data and method the model was fitted with")
    validation: str = Field("", description="cross-validated sensitivity/specificity of model + threshold")

    @field_validator("ambient_range_c")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or v[0] >= v[1]:
            raise ValueError("expected [lo, hi] with lo < hi")
        return v

    def core_c(self, skin_c: Any, ambient_c: Any = None) -> Any:
        """Estimated core temperature, degC (float in -> float out; arrays broadcast)."""
        skin = np.asarray(skin_c, dtype=np.float64)
        if self.model == "offset":
            out = skin + self.offset_c
        else:
            if ambient_c is None:
                amb_term: float | np.ndarray = 0.0
            else:
                lo_c, hi_c = self.ambient_range_c
                amb = np.clip(np.asarray(ambient_c, dtype=np.float64), lo_c, hi_c)
                amb_term = self.ambient_coef * (amb - self.ambient_ref_c)
            out = self.intercept_c + self.skin_coef * skin + amb_term
        return float(out) if np.ndim(out) == 0 else out.astype(np.float32)

    def to_toml_dict(self) -> dict[str, Any]:
        """Plain dict for TOML, without the coefficients the chosen model form does not use."""
        unused = {"intercept_c", "skin_coef", "ambient_coef", "ambient_ref_c", "ambient_range_c"} \
            if self.model == "offset" else {"offset_c"}
        return self.model_dump(mode="json", exclude_none=True, exclude=unused)

    def uncertainty_c(self) -> float:
        """1-sigma uncertainty of ``core_c``, degC (the cross-validated residual SD; the same for
        every skin and ambient reading)."""
        return self.residual_sd_c


class CalibrationFile(StrictModel):
    schema_version: Literal[1] = Field(1, description="calibration schema version")
    station_id: str = Field(..., min_length=1, description="station this file calibrates")
    date: dt.date = Field(..., description="date of the calibration, YYYY-MM-DD")
    cameras: CamerasSection = Field(default_factory=CamerasSection)
    registration: RegistrationSection = Field(default_factory=RegistrationSection)
    blackbody: BlackbodyConfig = Field(default_factory=BlackbodyConfig)
    skin_to_core: SkinToCore = Field(default_factory=SkinToCore)


@dataclass
class Calibration:
    """A loaded calibration. ``registration`` is ready to map points; ``file`` is the validated
    TOML content (for saving back)."""

    schema_version: int
    station_id: str
    date: dt.date
    cameras: CamerasSection
    registration: Registration
    blackbody: BlackbodyConfig
    skin_to_core: SkinToCore
    file: CalibrationFile
    path: Path | None = None

    @classmethod
    def from_file_model(cls, f: CalibrationFile, path: Path | None = None) -> Calibration:
        return cls(f.schema_version, f.station_id, f.date, f.cameras, f.registration.to_registration(),
                   f.blackbody, f.skin_to_core, f, path)


def _format_validation_error(path: Path, err: ValidationError, prefix: str = "") -> str:
    e = err.errors()[0]
    loc = prefix + ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path}: {loc}: {msg}{more}"


def parse_calibration(data: dict[str, Any], path: Path | str = "<calibration>") -> Calibration:
    path = Path(path)
    if "schema_version" in data and data["schema_version"] != SCHEMA_VERSION:
        raise CalibrationError(f"{path}: schema_version: is {data['schema_version']!r}; this version reads {SCHEMA_VERSION}")
    try:
        f = CalibrationFile.model_validate(data)
    except ValidationError as err:
        raise CalibrationError(_format_validation_error(path, err)) from None
    return Calibration.from_file_model(f, path)


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration TOML. Raises CalibrationError (one line) on any problem."""
    return parse_calibration(read_toml(path, "calibration file", CalibrationError), path)


def load_skin_to_core(path: str | Path) -> SkinToCore:
    """[skin_to_core] of a skin_to_core.toml or of a full station calibration file."""
    data = read_toml(path, "skin-to-core model file", CalibrationError)
    if "skin_to_core" not in data:
        raise CalibrationError(f"{path}: skin_to_core: table missing")
    try:
        return SkinToCore.model_validate(data["skin_to_core"])
    except ValidationError as err:
        raise CalibrationError(_format_validation_error(Path(path), err, prefix="skin_to_core.")) from None


def _plain(f: CalibrationFile) -> dict[str, Any]:
    d = f.model_dump(mode="json", exclude_none=True)
    d["skin_to_core"] = f.skin_to_core.to_toml_dict()
    return d


def save_calibration(cal: Calibration | CalibrationFile, path: str | Path,
                     only: tuple[str, ...] | None = None) -> Path:
    """Write ``cal`` to ``path``. If the file exists, only the tables named in ``only`` (default:
    all) are replaced, keeping comments and everything else as it was. The result is read back
    and validated before it replaces the file, so a bad save never leaves a broken file."""
    import tomlkit

    path = Path(path)
    f = cal.file if isinstance(cal, Calibration) else cal
    if isinstance(cal, Calibration):  # the Registration object may have been refitted
        info = f.registration.model_dump(include={"thermal_focal_px", "rms_px", "model_max_error_px", "fitted_on"})
        f = f.model_copy(update={"registration": RegistrationSection.from_registration(cal.registration, **info)})
    data = _plain(f)
    doc = tomlkit.parse(path.read_text()) if path.is_file() else tomlkit.document()
    keys = only if only is not None else tuple(data)
    for key in keys:
        value = data[key]
        if isinstance(value, dict):
            table = doc.get(key)
            if table is None or not isinstance(table, dict):
                table = tomlkit.table()
                doc[key] = table
            for old in [k for k in table if k not in value]:
                del table[old]
            for k, v in value.items():
                table[k] = v
        else:
            doc[key] = value
    text = tomlkit.dumps(doc)
    parse_calibration(tomllib.loads(text), path)  # never write something we cannot load
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
