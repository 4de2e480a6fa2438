"""Render every scenario in sample_streams/ whose output is missing or stale.

``python -m edge.sim.render_all [--force] [--only NAME...] [--root DIR]`` (``make setup`` runs it).
A folder is up to date when its ``.rendered`` stamp holds the sha256 of its scenario.toml plus the
generator (version and source files) and stream.json exists (written last, so a half-rendered
folder is re-rendered).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

from edge.io import mkv, recording
from edge.paths import REPO_ROOT, STREAMS_DIR
from edge.sim.render import GENERATOR_VERSION, load_photo, render_scenario
from edge.sim.scenario import load_scenario

STAMP = ".rendered"


# Code whose change changes the rendered bytes: the simulator itself and the recording writer.
_GENERATOR_SOURCES = sorted(p for p in (REPO_ROOT / "edge" / "sim").glob("*.py")
                            if p.name not in ("render_all.py", "__init__.py")) + [Path(recording.__file__), Path(mkv.__file__)]


def generator_digest() -> str:
    """GENERATOR_VERSION plus the sha256 of the generator's source files: editing the simulator
    re-renders the streams even if nobody remembered to bump the version."""
    h = hashlib.sha256(GENERATOR_VERSION.encode())
    for p in _GENERATOR_SOURCES:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def scenario_stamp(scenario_file: Path) -> str:
    """What a rendered folder's .rendered holds: sha256 of the scenario file + generator_digest()."""
    h = hashlib.sha256(scenario_file.read_bytes())
    h.update(generator_digest().encode())
    return h.hexdigest()


def scenario_files(root: Path = STREAMS_DIR) -> list[Path]:
    """Every sample_streams/<name>/scenario.toml, sorted by name."""
    return sorted(root.glob("*/scenario.toml"))


def is_fresh(scenario_file: Path) -> bool:
    folder = scenario_file.parent
    stamp = folder / STAMP
    return (folder / "stream.json").is_file() and stamp.is_file() and stamp.read_text().strip() == scenario_stamp(scenario_file)


def render_folder(scenario_file: Path, photo=None, force: bool = True) -> float:
    """Render one scenario into its own folder; returns the seconds it took (0 if another process
    rendered it meanwhile). Safe against concurrent runs (two `make test` in one checkout): an
    exclusive lock on scenario.toml serialises them, the stream is written into a scratch folder
    and moved into place file by file (os.replace), stream.json last, so a reader never sees a
    half-written recording."""
    folder = scenario_file.parent
    with open(scenario_file, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_fresh(scenario_file):
            return 0.0
        t0 = time.perf_counter()
        scratch = folder / f".render-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            render_scenario(scenario_file, scratch, photo)
            (folder / STAMP).unlink(missing_ok=True)
            (folder / "stream.json").unlink(missing_ok=True)  # incomplete while files are swapped
            for f in sorted(scratch.iterdir()):
                if f.name not in ("stream.json", "scenario.toml"):
                    os.replace(f, folder / f.name)
            os.replace(scratch / "stream.json", folder / "stream.json")
            (folder / STAMP).write_text(scenario_stamp(scenario_file) + "\n")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.sim.render_all", description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="re-render even when up to date")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these scenario folders")
    ap.add_argument("--root", type=Path, default=STREAMS_DIR, help="folder holding <name>/scenario.toml")
    args = ap.parse_args(argv)
    files = scenario_files(args.root)
    if args.only:
        missing = set(args.only) - {f.parent.name for f in files}
        if missing:
            print(f"error: no scenario folder named {sorted(missing)} under {args.root}", file=sys.stderr)
            return 2
        files = [f for f in files if f.parent.name in args.only]
    todo = [f for f in files if args.force or not is_fresh(f)]
    if not todo:
        print(f"sample streams: {len(files)} up to date")
        return 0
    try:
        for f in todo:  # validate all first: one bad file should not leave half the set rendered
            load_scenario(f)
        photo = load_photo()
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = 0.0
    for f in todo:
        dt = render_folder(f, photo, force=args.force)
        total += dt
        print(f"rendered {f.parent.relative_to(args.root.parent)} in {dt:.1f} s" if dt else
              f"{f.parent.relative_to(args.root.parent)}: rendered meanwhile by another process")
    print(f"sample streams: {len(todo)} rendered in {total:.1f} s, {len(files) - len(todo)} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
