"""`thermal-edge validate-config FILE`: check a station config and print every problem.

Each problem is one line naming the file and the key path, e.g.
``station.toml: decision.threshold_c: must be <= 39 (got 40.2)``. Exit 0 when valid (and a
summary of what the station will open), 1 when not. `thermal-edge run` refuses an invalid file
with the same lines.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# What config/station.example.toml sets beyond the defaults: the bundled sample recording played
# as if it were two live cameras, relative to the config/ folder.
EXAMPLE_VALUES = {
    "station": {"id": "sample-gate-1", "location": "bundled sample stream"},
    "calibration": {"path": "../calibration/sample-gate-1.toml"},
    "sources": {
        "rgb": {"kind": "recording", "path": "../sample_streams/walkthrough", "realtime": True, "loop": True},
        "thermal": {"kind": "recording", "path": "../sample_streams/walkthrough", "realtime": True, "loop": True},
    },
}


def example_header() -> str:
    """The comment block at the top of config/station.example.toml (what --print-example writes
    first), with the environment overrides read from edge.config.ENV_OVERRIDES."""
    import textwrap

    from edge.config import ENV_OVERRIDES

    env = textwrap.wrap(", ".join(ENV_OVERRIDES), 96, initial_indent="#   ", subsequent_indent="#   ")
    return ("# thermal-edge station config (annotated example). Validate with: thermal-edge validate-config FILE\n"
            "# Relative paths are relative to this file's folder. Regenerate the full key list with\n"
            "# 'thermal-edge validate-config --print-example'. Environment overrides (paths, secrets):\n"
            + "\n".join(env) + "\n\n")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate-config", help="check a station config file; print every error with its key path")
    p.add_argument("file", type=Path, nargs="?", help="station config TOML")
    p.add_argument("--print-example", action="store_true",
                   help="print an annotated config with every key, its unit, bounds and default, and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing when the file is valid")
    p.set_defaults(func=run)


def describe(cfg) -> list[str]:
    """A short account of what a valid config will open."""
    out = [f"station {cfg.station.id}: calibration {cfg.calibration.path}"]
    for cam in ("rgb", "thermal"):
        c = getattr(cfg.sources, cam)
        where = {"v4l2": c.device, "url": c.url, "file": c.path, "recording": c.path}[c.kind]
        out.append(f"  {cam}: {c.kind} {where}" + (f" faults={c.faults}" if c.faults else ""))
    out.append(f"  mode {cfg.sources.mode}, watchdog {cfg.sources.watchdog_timeout_s} s, "
               f"reconnect {cfg.sources.reconnect_initial_s}..{cfg.sources.reconnect_max_s} s")
    out.append(f"  feed {cfg.feed.endpoint}")
    h = cfg.health
    out.append(f"  status every {h.status_interval_s} s; metrics "
               + (f"http://{h.metrics_host}:{h.metrics_port}/metrics" if h.metrics_port else "off"))
    return out


def run(args: argparse.Namespace) -> int:
    from edge.commands._common import report_config_errors
    from edge.config import ConfigError, example_toml, load_config

    if args.print_example:
        print(example_header() + example_toml(EXAMPLE_VALUES), end="")
        return 0
    if args.file is None:
        print("error: give a config FILE (or --print-example)", file=sys.stderr)
        return 2
    from edge.thermal.calibration import CalibrationError, load_calibration

    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        report_config_errors(args.file, e.errors, "invalid")
        return 1
    from edge.decision import ThresholdError, threshold_in_force

    try:  # the file it names must be a valid calibration too, or `run` would stop at start-up
        cal = load_calibration(cfg.calibration.path)
        threshold = threshold_in_force(cfg.decision, cal.skin_to_core.decision_threshold_c)
    except (CalibrationError, ThresholdError) as e:
        report_config_errors(args.file, [str(e)], "calibration.path names an invalid calibration")
        return 1
    if not args.quiet:
        print(f"{args.file}: OK")
        print("\n".join(describe(cfg)))
        print(f"  alarm threshold {threshold[0]:.1f} degC on the estimated core ({threshold[1]}"
              + (f" in {cfg.calibration.path})" if threshold[1].startswith("calibration") else ")"))
    return 0
