"""The bad-input table (issue 14 item 12): each case runs the real CLI in a subprocess and must
end in exactly one line on stderr, `error: <file>: ...`, exit code 2 -- no traceback, no abort
(rc 134, "terminate called", "FATAL: exception not rethrown"), no FFmpeg noise.

Unreadable files: the suite usually runs as root, for whom chmod 000 does not block reads, so
those cases run the CLI as uid 65534 (nobody) through `setpriv`; where that is impossible they
skip saying why. The same files replaced by a folder run as any user."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge.paths import REPO_ROOT as REPO
from tests.synth_streams import make_recording

NOBODY = 65534
CAL = 'station_id = "test-gate"\ndate = 2026-11-26\n'


def _recording(root: Path, name: str) -> Path:
    s = make_recording(root / name, seconds=1.0)
    (s / "calibration.toml").write_text(CAL)  # found by replay/demo (item 11): the case is the damage only
    return s


def _unreadable(f: Path) -> None:
    f.chmod(0)


def _folder_instead(f: Path) -> None:
    f.unlink()
    f.mkdir()


def _cut_header(f: Path) -> None:
    f.write_bytes(f.read_bytes()[:100])  # inside the track list


def _empty(f: Path) -> None:
    f.write_bytes(b"")


def _wrong_types(f: Path) -> None:
    d = json.loads(f.read_text())
    d["cameras"]["thermal"]["width"] = "wide"
    d["cameras"]["rgb"]["fps"] = None
    d["t0_ns"] = "zero"
    f.write_text(json.dumps(d))


def _setup_recording(file: str, damage):
    def setup(root: Path):
        s = _recording(root, "s")
        damage(s / file)
        return ["demo", str(s)], str(s / file)
    return setup


def _setup_clinical_binary(root: Path):
    f = root / "measurements.csv"
    f.write_bytes(bytes(range(256)) * 16)
    return ["eval-clinical", str(f)], str(f)


def _setup_collinear(root: Path):
    pts = root / "points.csv"
    pts.write_text("rgb_x,rgb_y,thermal_x,thermal_y\n" + "".join(f"{i * 10},{i * 5},{i * 3},{i}\n" for i in range(6)))
    cal = root / "cal.toml"
    cal.write_text(CAL)
    return ["calibrate", "registration", "--points", str(pts), "--calibration", str(cal), "--dry-run"], str(pts)


def _setup_annotate_below_file(root: Path):
    s = _recording(root, "s")
    (root / "afile").write_text("")
    return ["replay", str(s), "--annotate", str(root / "afile" / "out.mp4")], str(root / "afile" / "out.mp4")


def _setup_annotate_read_only(root: Path):
    s = _recording(root, "s")
    ro = root / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ["replay", str(s), "--annotate", str(ro / "out.mp4")], str(ro / "out.mp4")


# (case, setup(root) -> (argv, the file the line must name), run as nobody, expected words)
CASES = [
    ("stream.json unreadable", _setup_recording("stream.json", _unreadable), True, "cannot read it: Permission denied"),
    ("timestamps.csv unreadable", _setup_recording("timestamps.csv", _unreadable), True, "cannot read it: Permission denied"),
    ("thermal.mkv unreadable", _setup_recording("thermal.mkv", _unreadable), True, "cannot read it: Permission denied"),
    ("stream.json is a folder", _setup_recording("stream.json", _folder_instead), False, "is a folder, not a file"),
    ("timestamps.csv is a folder", _setup_recording("timestamps.csv", _folder_instead), False, "is a folder, not a file"),
    ("thermal.mkv is a folder", _setup_recording("thermal.mkv", _folder_instead), False, "is a folder, not a file"),
    ("thermal.mkv cut inside its header", _setup_recording("thermal.mkv", _cut_header), False, "damaged Matroska header"),
    ("thermal.mkv empty", _setup_recording("thermal.mkv", _empty), False, "empty file (0 bytes"),
    ("eval-clinical on a binary file", _setup_clinical_binary, False, "not a CSV text file"),
    ("calibrate registration --points collinear", _setup_collinear, False, "points lie on one line"),
    ("replay --annotate below a file", _setup_annotate_below_file, False, "afile is a file, not a folder"),
    ("replay --annotate into a read-only folder", _setup_annotate_read_only, True, "cannot write the preview video: Permission denied"),
    ("stream.json with wrong types", _setup_recording("stream.json", _wrong_types), False,
     "3 error(s): t0_ns: input should be a valid integer"),
]


def _as_nobody() -> list[str] | None:
    """The command prefix that runs the CLI as uid nobody (root only), or None."""
    if os.geteuid() != 0:
        return []  # not root: chmod already blocks this user
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import edge.cli"], cwd=REPO, capture_output=True)
    return prefix if probe.returncode == 0 else None


@pytest.mark.slow  # 13 CLI subprocesses
@pytest.mark.parametrize("case, setup, nobody, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(case, setup, nobody, words, tmp_path):
    prefix: list[str] = []
    env = dict(os.environ)
    if nobody:
        prefix = _as_nobody()
        if prefix is None:
            pytest.skip("running as root and cannot drop to uid nobody (no setpriv, or nobody cannot run this "
                        "venv): chmod 000 would not block root; the 'is a folder' cases cover the same paths")
        root = Path(tempfile.mkdtemp(prefix="bad-input-"))  # outside pytest's 0700 tmp: nobody must reach it
        root.chmod(0o755)
        home = root / "home"  # onnxruntime persists a telemetry id under $HOME/.cache, or warns on stderr
        home.mkdir()
        if os.geteuid() == 0:
            os.chown(home, NOBODY, NOBODY)
        env["HOME"] = str(home)
    else:
        root = tmp_path
    try:
        argv, named = setup(root)
        if nobody:
            for p in root.rglob("*"):
                if p.is_relative_to(home):
                    continue
                if p.is_dir() and p.name != "ro":
                    p.chmod(0o755)
                elif p.is_file() and p.stat().st_mode & 0o777:
                    p.chmod(0o644)
        proc = subprocess.run([*prefix, sys.executable, "-m", "edge.cli", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        if nobody:
            shutil.rmtree(root, ignore_errors=True)
    err = proc.stderr
    assert proc.returncode == 2, f"{case}: rc {proc.returncode}\n{err}"
    assert "Traceback" not in err and "terminate called" not in err and "FATAL" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"{case}: expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(f"error: {named}: "), lines[0]
    assert words in lines[0], lines[0]
