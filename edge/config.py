"""Station configuration: one TOML file, validated into ``StationConfig``.

Each stage owns its section model (a ``StrictModel`` in the stage's module); this module only
composes them, applies environment overrides, runs the cross-section checks and turns every
problem into a one-line message naming the file and the key path::

    station.toml: decision.threshold_c: must be <= 39 (got 40.2)

Relative paths in the file (calibration, recordings, video files) are resolved against the folder of
the config file, so a station behaves the same whatever the working directory is.

Environment overrides (paths and secrets; see ``ENV_OVERRIDES``) replace the file's value
before validation, and errors in them name the variable.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from edge.configbase import StrictModel, format_error, read_toml, resolve_path
from edge.decision import DecisionConfig
from edge.errors import UserError
from edge.feed.publishing import FeedConfig
from edge.guidance import GuidanceConfig
from edge.health import HealthConfig
from edge.io.pairing import PairingConfig
from edge.io.sources import SourcesConfig
from edge.thermal.measurement import MeasurementConfig
from edge.vision.detection import DetectorConfig
from edge.vision.mask import MaskConfig
from edge.vision.tracking import TrackingConfig
from edge.web.station.config import StationWebConfig


class ConfigError(UserError, ValueError):
    """An invalid station config. ``errors`` holds every problem, one line each; ``str()`` is
    the first one (plus a count), so a one-line CLI message stays one line."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors) or ["invalid configuration"]
        more = len(self.errors) - 1
        super().__init__(self.errors[0] + (f" (and {more} more; see thermal-edge validate-config)" if more else ""))


class StationSection(StrictModel):
    """This station: its id and site rules."""

    id: str = Field(
        ..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Station id: names the feed topics (alert.<id>) and the calibration; letters, digits, _ -")
    location: str = Field("", max_length=200, description="Free text shown to operators, e.g. 'terminal 2, gate B'")
    ambient_c: float | None = Field(
        None, ge=-10.0, le=50.0, examples=[23.0],
        description="Ambient air temperature for the skin-to-core model, degC; unset = estimated from the "
                    "median of the blackbody-corrected thermal scene")
    annotate: Path | None = Field(
        None, description="Write an annotated preview video here while running (.webm: VP8, plays in browsers; "
                          ".mp4, .mkv, .avi: see edge/annotate.py; relative to the working directory); none by default")


class CalibrationSection(StrictModel):
    """The station's calibration file (registration, blackbody, skin-to-core)."""

    path: Path = Field(..., description="Per-station calibration TOML (calibration/<station>.toml); must exist")

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path, info: Any) -> Path:
        v = resolve_path(v, info)
        if not v.is_file():
            raise ValueError(f"calibration file not found: {v}")
        return v


class StationConfig(StrictModel):
    """The whole station config: this module's sections (station, calibration, sources, pairing,
    health) and each stage's own, defined in the stage's module."""

    station: StationSection
    calibration: CalibrationSection
    sources: SourcesConfig = Field(default_factory=SourcesConfig, description="Cameras, capture and watchdog")
    pairing: PairingConfig = Field(default_factory=PairingConfig, description="Thermal <-> RGB frame pairing")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Status messages, metrics, logs")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Face detector (edge.vision.detection)")
    mask: MaskConfig = Field(default_factory=MaskConfig, description="Mask classifier (edge.vision.mask)")
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig,
                                           description="Canthus temperature and quality gates (edge.thermal.measurement)")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Tracker (edge.vision.tracking)")
    decision: DecisionConfig = Field(default_factory=DecisionConfig, description="Alarm rules (edge.decision)")
    feed: FeedConfig = Field(default_factory=FeedConfig, description="Alert feed (edge.feed.publishing)")
    guidance: GuidanceConfig = Field(default_factory=GuidanceConfig,
                                     description="Visitor guidance messages (edge.guidance)")
    web: StationWebConfig = Field(default_factory=StationWebConfig,
                                  description="Live view, kiosk and alignment pages (edge.web.station); off by default")

    @model_validator(mode="after")
    def _cross_checks(self) -> StationConfig:
        # RGB frames arrive every 1/fps s: a tolerance below half that period leaves thermal
        # frames unpaired by construction.
        rgb_fps = self.sources.rgb.fps
        if rgb_fps and self.pairing.tolerance_ms < 500.0 / rgb_fps:
            lost = 100 * (1 - self.pairing.tolerance_ms * rgb_fps / 500.0)
            raise ValueError(
                f"pairing.tolerance_ms={self.pairing.tolerance_ms} is below half the RGB frame period "
                f"({500.0 / rgb_fps:.1f} ms at sources.rgb.fps={rgb_fps}); about {lost:.0f}% of thermal frames "
                "would go unpaired")
        port = self.health.metrics_port
        for attr in ("endpoint", "catchup_endpoint"):
            ep = getattr(self.feed, attr)
            if port and ep is not None and ep.rsplit(":", 1)[-1] == str(port):
                raise ValueError(f"health.metrics_port={port} collides with feed.{attr}={ep!r}")
            if self.web.enabled and ep is not None and ep.rsplit(":", 1)[-1] == str(self.web.port):
                raise ValueError(f"web.port={self.web.port} collides with feed.{attr}={ep!r}")
        if self.web.enabled and port and port == self.web.port:
            raise ValueError(f"web.port={self.web.port} collides with health.metrics_port={port}")
        return self


# Environment variable -> key path it overrides. Paths and secrets, so a deployment can keep
# secrets out of the file (systemd EnvironmentFile / credentials) and move files around.
ENV_OVERRIDES = {
    "THERMAL_EDGE_STATION_ID": ("station", "id"),
    "THERMAL_EDGE_CALIBRATION": ("calibration", "path"),
    "THERMAL_EDGE_FEED_ENDPOINT": ("feed", "endpoint"),
    "THERMAL_EDGE_FEED_SECRET_KEY": ("feed", "server_secret_key"),
    "THERMAL_EDGE_FEED_CLIENTS_DIR": ("feed", "authorized_clients_dir"),
    "THERMAL_EDGE_JOURNAL": ("feed", "journal_path"),
    "THERMAL_EDGE_RGB_DEVICE": ("sources", "rgb", "device"),
    "THERMAL_EDGE_RGB_URL": ("sources", "rgb", "url"),
    "THERMAL_EDGE_THERMAL_DEVICE": ("sources", "thermal", "device"),
    "THERMAL_EDGE_METRICS_PORT": ("health", "metrics_port"),
}


def apply_env(data: dict[str, Any], environ: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """Apply ENV_OVERRIDES to the raw dict in place. Returns {dotted key path: variable name}."""
    applied: dict[str, str] = {}
    for var, path in ENV_OVERRIDES.items():
        if var not in environ:
            continue
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = environ[var]
            applied[".".join(path)] = var
    return applied


def validate_data(data: dict[str, Any], *, name: str = "<config>", base_dir: Path | None = None,
                  environ: dict[str, str] | os._Environ = os.environ) -> StationConfig:
    """Validate an already-parsed dict; raise ConfigError listing every problem."""
    applied = apply_env(data, environ)
    try:
        return StationConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc, msg = format_error(err)
            origin = next((f" (from ${var})" for key, var in applied.items() if loc.startswith(key)), "")
            lines.append(f"{name}: {loc}: {msg}{origin}" if loc else f"{name}: {msg}{origin}")
        raise ConfigError(lines) from None


def load_config(path: str | Path, environ: dict[str, str] | os._Environ = os.environ) -> StationConfig:
    """Read and validate a station TOML file. Raises ConfigError (one line per problem)."""
    path = Path(path)
    data = read_toml(path, "config file", lambda line: ConfigError([line]))
    return validate_data(data, name=str(path), base_dir=path.resolve().parent, environ=environ)



# ----------------------------------------------------------------------------- annotated example

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inline table, e.g. guidance.messages
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bounds(info: Any) -> str:
    parts = []
    for m in info.metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{op} {getattr(m, attr)}")
    return f" [{', '.join(parts)}]" if parts else ""


def example_toml(values: dict[str, Any], model: type[StrictModel] | None = None, prefix: str = "") -> str:
    """An annotated TOML of every field of ``model`` (default: StationConfig): description and
    bounds as comments, ``values`` (nested dict) where given, else the default; fields without a
    value and a None default are written commented out."""
    model = model or StationConfig
    scalars, tables = [], []
    for name, info in model.model_fields.items():
        ann = info.annotation
        given = values.get(name) if isinstance(values, dict) else None
        if isinstance(ann, type) and issubclass(ann, StrictModel):
            tables.append(example_toml(given or {}, ann, f"{prefix}{name}."))
            continue
        if given is not None:
            val: Any = given
        elif info.is_required():
            val = None
        else:
            val = info.get_default(call_default_factory=True)
        if hasattr(val, "model_dump"):
            val = None
        desc = (info.description or "").strip()
        line = f"# {desc}{_bounds(info)}\n" if desc or _bounds(info) else ""
        hint = _toml_value(info.examples[0]) if info.examples else ""  # a commented-out example value
        line += (f"{name} = {_toml_value(val)}" if val is not None else f"# {name} = {hint}") + "\n"
        scalars.append(line)
    head = f"[{prefix[:-1]}]\n" if prefix else ""
    doc = (model.__doc__ or "").strip().splitlines()
    if prefix and doc and not doc[0].startswith(("Usage docs", "!!!")):
        head = f"# {doc[0]}\n" + head
    return head + "".join(scalars) + ("\n" if scalars else "") + "".join(tables)
