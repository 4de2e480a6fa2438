"""`thermal-edge recording repair DIR --station-id ID`: rebuild stream.json and timestamps.csv of
a recording killed before it wrote them (recordings made before the crash-safe writer; newer
ones replay as they are). See edge/io/repair.py for what is recovered and what is approximate."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recording", help="maintain recording folders (repair a killed capture)",
                       description=" ".join(__doc__.split()))
    cs = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    r = cs.add_parser("repair", help="rebuild stream.json and timestamps.csv of a killed older recording",
                      description=" ".join(__doc__.split()))
    r.add_argument("dir", type=Path, help="recording folder with thermal.mkv and rgb.avi but no timestamps.csv")
    r.add_argument("--station-id", required=True, help="station the capture came from (stream.json station_id)")
    r.add_argument("--units", default="centikelvin", help="thermal raw units: centikelvin (default) or decikelvin")
    r.add_argument("--start-utc", help="wall-clock time of the first frame, ISO 8601 UTC (default: estimated "
                                       "from thermal.mkv's modification time)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.io.recording import open_recording
    from edge.io.repair import repair_recording

    s = repair_recording(args.dir, args.station_id, args.units, args.start_utc)
    open_recording(args.dir)  # what was written must read back (a bad --station-id is refused here)
    print(f"{args.dir}: rebuilt stream.json and timestamps.csv: {s['thermal_frames']} thermal frames "
          f"({s['thermal_fps']} frames/s, times from the Matroska blocks), {s['rgb_frames']} RGB frames "
          f"(times at the nominal {s['rgb_fps']:g} frames/s: alignment approximate), start {s['start_utc']}")
    print(f"replay with: thermal-edge replay {args.dir}")
    return 0
