"""Fuzz over damaged recording folders (issue 14 item 13): truncated and byte-flipped videos and
tables, bad stream.json values, permuted timestamps. Whatever the damage, a replay either
refuses with one RecordingError/UserError line naming a file of the recording, or processes
every frame it can read and counts every frame it cannot -- never another exception.

Bounded: small synthetic recordings, one shared detector, max_examples sized to run in well
under a minute on one core (marked slow)."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import UserError
from edge.io.recording import (
    LOSS_CORRUPT,
    LOSS_ENDS_EARLY,
    RecordingError,
    open_recording,
)
from edge.pipeline import default_config
from edge.replay import replay
from tests.synth_streams import make_recording

CLUSTER_ID = b"\x1f\x43\xb6\x75"
JSON_KEYS = [("station_id",), ("start_utc",), ("t0_ns",), ("cameras", "thermal", "width"),
             ("cameras", "thermal", "height"), ("cameras", "rgb", "fps"), ("cameras", "thermal", "units"),
             ("cameras", "rgb", "file"), ("cameras",), ("extra",)]
JSON_VALUES = [None, "x", -1, 0, 7, 1e30, [], {}, True, "2026-13-45T99:00:00Z"]

truncate = st.tuples(st.just("truncate"), st.sampled_from(["thermal.mkv", "rgb", "timestamps.csv"]),
                     st.floats(0.0, 1.0))
flip = st.tuples(st.just("flip"), st.sampled_from(["thermal.mkv", "rgb", "timestamps.csv"]),
                 st.floats(0.0, 1.0), st.integers(1, 255))
bad_json = st.tuples(st.just("json"), st.sampled_from(JSON_KEYS), st.sampled_from(JSON_VALUES))
permute = st.tuples(st.just("permute"), st.sampled_from(["rgb", "thermal"]), st.integers(0, 2**16))
damage = st.lists(st.one_of(truncate, flip, bad_json, permute), min_size=1, max_size=3)


@pytest.fixture(scope="module", params=["rgb.avi", "rgb.mkv"])  # the simulator's RGB and record's
def pristine(tmp_path_factory, request):
    s = make_recording(tmp_path_factory.mktemp("fuzz") / "s", seconds=1.5, rgb_file=request.param)
    (s / "calibration.toml").write_text('station_id = "test-gate"\ndate = 2026-11-26\n')
    return s


@pytest.fixture(scope="module")
def detector(centerface_path):
    from edge.vision.detection import (
        CenterFaceDetector,
        DetectorConfig,
        load_session,
        model_file,
    )

    dcfg = DetectorConfig()
    return CenterFaceDetector(load_session(model_file(dcfg), 1), dcfg)


def apply(folder: Path, op: tuple) -> None:
    kind = op[0]
    if kind in ("truncate", "flip") and op[1] == "rgb":  # whichever RGB file the recording has
        op = (kind, next(p.name for p in folder.iterdir() if p.name.startswith("rgb.")), *op[2:])
    if kind == "truncate":
        f = folder / op[1]
        data = f.read_bytes()
        f.write_bytes(data[:int(len(data) * op[2])])
    elif kind == "flip":
        f = folder / op[1]
        data = bytearray(f.read_bytes())
        if data:
            at = min(len(data) - 1, int(len(data) * op[2]))
            data[at] ^= op[3]
            f.write_bytes(bytes(data))
    elif kind == "json":
        f = folder / "stream.json"
        try:
            d = json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError):
            return
        node = d
        for k in op[1][:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(k), dict):
                return
            node = node[k]
        if isinstance(node, dict):
            node[op[1][-1]] = op[2]
        f.write_text(json.dumps(d))
    elif kind == "permute":  # shuffle the times among one camera's rows: clocks that jump about
        f = folder / "timestamps.csv"
        try:
            lines = f.read_text().splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return
        idx = [i for i, ln in enumerate(lines) if ln.startswith(op[1] + ",") and ln.count(",") >= 3]
        times = [lines[i].split(",")[2] for i in idx]
        random.Random(op[2]).shuffle(times)
        for i, t in zip(idx, times):
            parts = lines[i].split(",")
            parts[2] = t
            lines[i] = ",".join(parts)
        f.write_text("".join(lines))


def complete_thermal_frames(pristine: Path, folder: Path) -> int | None:
    """Thermal frames whose whole cluster is still in a (only truncated) thermal.mkv, counted on
    the intact file's layout: the ground truth a truncation leaves readable."""
    intact = (pristine / "thermal.mkv").read_bytes()
    now = (folder / "thermal.mkv").read_bytes()
    if not intact.startswith(now):
        return None  # flipped, not only cut
    starts = []
    at = intact.find(CLUSTER_ID)
    while at >= 0:
        starts.append(at)
        at = intact.find(CLUSTER_ID, at + 4)
    ends = starts[1:] + [len(intact)]
    return sum(1 for e in ends if e <= len(now))


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=damage)
def test_damaged_recording_replays_what_it_can_and_counts_the_rest(ops, pristine, detector, tmp_path_factory):
    folder = tmp_path_factory.mktemp("case") / "s"
    shutil.copytree(pristine, folder)
    for op in ops:
        apply(folder, op)
    try:
        rec = open_recording(folder)
        result = replay(folder, default_config(rec.meta.station_id, folder / "calibration.toml"), detector=detector)
    except (RecordingError, UserError) as e:
        msg = str(e)
        assert "\n" not in msg and msg, msg
        assert str(folder) in msg, msg  # names the file (or folder) at fault
        return
    listed = {cam: len(rec.rows[cam]) for cam in ("rgb", "thermal")}
    lost = {cam: sum(n for r, n in result.lost.get(cam, {}).items() if r in (LOSS_ENDS_EARLY, LOSS_CORRUPT))
            for cam in ("rgb", "thermal")}
    delivered = listed["thermal"] - lost["thermal"]
    assert 0 <= lost["thermal"] <= listed["thermal"] and 0 <= lost["rgb"] <= listed["rgb"]
    s = result.stats
    # every delivered thermal frame went through pairing: paired, unpaired, or dropped as out of order
    assert s.pairs + s.unpaired_thermal <= delivered <= s.pairs + s.unpaired_thermal + s.out_of_order
    assert len(result.frames) == s.pairs  # every pair was processed by the pipeline
    assert result.lost_frames == sum(n for by in result.lost.values() for n in by.values())
    assert len(result.loss_lines()) == sum(len(by) for by in result.lost.values())
    if all(op[0] == "truncate" and op[1] == "thermal.mkv" for op in ops):
        want = complete_thermal_frames(pristine, folder)
        if want is not None:  # exactly the frames the cut left whole
            assert delivered == min(want, listed["thermal"]), (want, delivered, result.lost)
