"""Scoring against truth, checked on truth-vs-truth inputs and deliberate corruptions of them."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.eval.scenarios import _OracleEvent, combine, match, oracle_result, score
from edge.sim import render_scenario
from edge.types import Verdict
from edge.vision.boxes import iou_matrix as iou

SCENARIO = """
name = "evaltwo"
description = "two people: masked normal, febrile"
seed = 31
duration_s = 2.0
[[person]]
id = 1
core_c = 36.8
mask = "n95"
mask_colour = "white"
waypoints = [[0.0, -0.15, 0.0, 0.9], [1.0, -0.12, 0.0, 0.55], [2.0, -0.12, 0.0, 0.55]]
[[person]]
id = 2
core_c = 38.5
waypoints = [[0.0, 0.15, 0.0, 0.9], [1.0, 0.14, 0.0, 0.55], [2.0, 0.14, 0.0, 0.55]]
"""


@pytest.fixture(scope="module")
def stream(tmp_path_factory, astronaut_bgr) -> Path:
    d = tmp_path_factory.mktemp("evaltwo")
    (d / "scenario.toml").write_text(SCENARIO)
    render_scenario(d / "scenario.toml", d / "out", astronaut_bgr)
    return d / "out"


@pytest.fixture()
def truth(stream) -> dict:
    t = json.loads((stream / "truth.json").read_text())
    assert [p["expected"]["status"] for p in t["persons"]] == ["normal", "elevated"]
    return t


def test_iou_and_greedy_matching():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[0, 0, 10, 5], [21, 21, 31, 31], [100, 100, 110, 110]], float)
    m = iou(a, b)
    assert m[0, 0] == pytest.approx(0.5) and m[0, 2] == 0
    assert match(a, b) == [(1, 1), (0, 0)]
    assert match(a, b, thr=0.6) == [(1, 1)]
    assert match(np.zeros((0, 4)), b) == []


def test_oracle_scores_perfectly(truth):
    r = score(truth, oracle_result(truth))
    assert r["verdicts_correct"] == 2
    assert r["faces"]["masked"]["recall"] == 1.0 and r["faces"]["unmasked"]["recall"] == 1.0
    assert r["faces"]["masked"]["expected"] > 10 and r["faces"]["precision"] == 1.0
    assert r["canthus_error_subject"]["max_abs_c"] == 0.0 and r["canthus_error_frame"]["n"] > 5
    assert r["alerts"] == {**r["alerts"], "n": 1, "true": 1, "false": 0, "unmatched": 0, "duplicates": 0,
                           "precision": 1.0, "recall": 1.0}
    assert r["confusion"]["elevated"]["elevated"] == 1 and r["confusion"]["normal"]["normal"] == 1


def test_missed_masked_faces_lower_masked_recall_only(truth):
    res = oracle_result(truth)
    for fr in res.frames:
        d = fr.detections
        keep = np.array([tid != 1 for tid in d.data["track_id"]], bool)
        fr.detections = d[keep]
    r = score(truth, res)
    assert r["faces"]["masked"]["recall"] == 0.0
    assert r["faces"]["unmasked"]["recall"] == 1.0
    # no track follows person 1 any more, so its verdict (kept under track 1) cannot be credited
    assert r["persons"][0]["got"] == "missed" and r["persons"][0]["tracks"] == []
    assert r["confusion"]["normal"]["missed"] == 1 and r["tracks"]["unmatched"] == []


def test_wrong_verdicts_false_and_unmatched_alerts(truth):
    res = oracle_result(truth)
    res.verdicts[1] = Verdict("elevated", "", "absolute", 37.5, 37.9, 36.7, 0.2)  # normal person alerted
    res.verdicts[2] = Verdict("indeterminate", "too_far")                          # febrile person missed
    res.events = [_OracleEvent("alert", "new", 1, res.verdicts[1]), _OracleEvent("alert", "new", 99, res.verdicts[1])]
    r = score(truth, res)
    assert r["verdicts_correct"] == 0
    assert r["confusion"]["normal"]["elevated"] == 1 and r["confusion"]["elevated"]["indeterminate"] == 1
    a = r["alerts"]
    assert (a["n"], a["true"], a["false"], a["unmatched"]) == (2, 0, 2, 1)
    assert a["precision"] == 0.0 and a["recall"] == 0.0
    assert r["persons"][0]["skin_error_c"] == pytest.approx(36.7 - truth["persons"][0]["canthus_c"], abs=1e-3)


def test_fragmented_track_and_shifted_boxes(truth):
    res = oracle_result(truth)
    half = len(res.frames) // 2
    for fr in res.frames[half:]:  # person 2 continues under a new track id
        tid = fr.detections.data["track_id"].copy()
        tid[tid == 2] = 7
        fr.detections = fr.detections.with_data(track_id=tid)
    res.verdicts[7] = Verdict("normal", "", "absolute", 37.5, 37.0, 35.8, 0.2)
    r = score(truth, res)
    p2 = r["persons"][1]
    assert p2["tracks"] == [2, 7] and r["tracks"]["fragmented_persons"] == [2]
    assert p2["got"] == "elevated"  # the most decisive of its tracks' verdicts
    shifted = oracle_result(truth)
    for fr in shifted.frames:
        b = fr.detections.box_xyxy.copy()
        w = b[:, 2] - b[:, 0]
        b[:, [0, 2]] += (0.8 * w)[:, None]  # IoU < 0.5 everywhere
        fr.detections = type(fr.detections)(b, fr.detections.score, fr.detections.landmarks_xy, fr.detections.data)
    r = score(truth, shifted)
    assert r["faces"]["precision"] == 0.0 and r["faces"]["unmasked"]["recall"] == 0.0
    assert r["persons"][1]["got"] == "missed" and r["alerts"]["unmatched"] == 1


def test_combine_pools_streams(truth):
    a = score(truth, oracle_result(truth))
    res = oracle_result(truth)
    res.verdicts[2] = Verdict("normal", "", "absolute", 37.5, 37.0, 35.8, 0.1)
    res.events = []
    b = score(truth, res)
    t = combine([a, b])
    assert t["persons"] == 4 and t["verdicts_correct"] == 3
    assert t["alerts"]["expected_elevated"] == 2 and t["alerts"]["recall"] == 0.5
    assert t["canthus_error_subject"]["n"] == 4
    assert t["canthus_error_subject"]["max_abs_c"] == pytest.approx(abs(35.8 - truth["persons"][1]["canthus_c"]), abs=1e-3)


def test_report_names_commit_and_explains_missing_real_data(truth, tmp_path, monkeypatch):
    import edge.eval.report
    from edge.eval.report import console_table, git_commit, markdown_report

    monkeypatch.setenv("THERMAL_EDGE_SHARED_DATA", str(tmp_path / "no-such-dir"))
    # the lab battery is the radiometry stage's own (tested there); keep this test about the report
    monkeypatch.setattr(edge.eval.report, "lab_battery_section", lambda: ["## Lab battery", "", "(stub)", ""])
    rows = [score(truth, oracle_result(truth))]
    md = markdown_report(rows, combine(rows), "thermal-edge eval X")
    assert f"commit `{git_commit()}`" in md and git_commit() != ""
    assert md.count("Missing:") == 3 and "no-such-dir" in md  # faces, clinical, flir_rjpeg
    assert "| evaltwo |" in md
    assert "evaltwo" in console_table(rows, combine(rows))
    from edge.eval.report import CANTHUS_ERR_LEGEND

    # the "canthus err" column says what it is, in the console and in the report
    assert CANTHUS_ERR_LEGEND in console_table(rows, combine(rows)) and CANTHUS_ERR_LEGEND in md


def test_eval_command_oracle_json(stream, tmp_path, capsys):
    from edge.cli import main

    out = tmp_path / "r.json"
    assert main(["eval", "--oracle", str(stream), "--json-out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["total"]["verdicts_correct"] == 2 and data["streams"][0]["scenario"] == "evaltwo"
    capsys.readouterr()
    assert main(["eval", "--oracle", str(stream), "--json"]) == 0  # --json: stdout is the document only
    assert json.loads(capsys.readouterr().out) == data
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_eval_keeps_going_when_one_stream_fails(stream, tmp_path, capsys, monkeypatch):
    import edge.commands.eval  # noqa: F401
    import edge.eval.scenarios
    from edge.cli import main

    def flaky(path, config=None):
        if Path(path).name == "broken":
            raise RuntimeError("stage crashed")
        truth = json.loads((Path(path) / "truth.json").read_text())
        return {**score(truth, oracle_result(truth)), "stream": str(path)}

    monkeypatch.setattr(edge.eval.scenarios, "evaluate_stream", flaky)
    broken = tmp_path / "broken"
    broken.mkdir()
    md = tmp_path / "r.md"
    monkeypatch.setattr("edge.eval.report.lab_battery_section", lambda: [])
    monkeypatch.setattr("edge.eval.report.real_data_sections", lambda data: [])
    assert main(["eval", str(stream), str(broken), "--report", str(md)]) == 1
    out = capsys.readouterr()
    assert "broken: RuntimeError: stage crashed" in out.err and "FAILED" in out.out
    text = md.read_text()
    assert "**FAILED**" in text and "| evaltwo |" in text


def test_truth_is_not_mutated_by_scoring(truth):
    before = copy.deepcopy(truth)
    score(truth, oracle_result(truth))
    assert truth == before


boxes = st.lists(st.tuples(st.floats(0, 600), st.floats(0, 400), st.floats(1, 200), st.floats(1, 200)),
                 max_size=6).map(lambda bs: np.array([[x, y, x + w, y + h] for x, y, w, h in bs], float).reshape(-1, 4))


@given(boxes, boxes)
@settings(max_examples=60, deadline=None)
def test_matching_is_one_to_one_and_above_threshold(a, b):
    m = iou(a, b)
    assert ((m >= 0) & (m <= 1 + 1e-9)).all()
    np.testing.assert_allclose(m, iou(b, a).T)
    pairs = match(a, b)
    assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
    assert all(m[i, j] >= 0.5 for i, j in pairs)
    if len(a):
        np.testing.assert_allclose(np.diag(iou(a, a)), 1.0)


@pytest.mark.parametrize("v, kw, want", [
    (None, {}, "–"), (None, {"missing": "missing"}, "missing"), (1.23456, {}, "1.23"), (1.23456, {"nd": 3}, "1.235"),
    (7, {}, "7"), ("320x256", {}, "320x256"), (0.87654, {"nd": 1, "percent": " %"}, "87.7 %"),
    (0.5, {"nd": 1, "percent": "%"}, "50.0%"), (12, {"nd": 1, "percent": "%"}, "12"),  # counts stay counts
])
def test_fmt_num_table_cells(v, kw, want):
    from edge.eval.tables import fmt_num

    assert fmt_num(v, **kw) == want


def test_eval_of_a_damaged_stream_says_what_it_could_not_read(stream, tmp_path, capsys):
    """A stream whose thermal.mkv was cut short is scored on what could be read, and eval says
    how many frames were lost and why (never a silent partial score)."""
    import shutil

    from edge.cli import main

    s = tmp_path / "cut"
    shutil.copytree(stream, s)
    data = (s / "thermal.mkv").read_bytes()
    (s / "thermal.mkv").write_bytes(data[:len(data) // 2])
    assert main(["eval", str(s)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {s}: thermal: " in err and "frames lost (video ends early:" in err


def test_a_face_hidden_behind_a_nearer_person_is_neither_missed_nor_false(truth):
    """Truth marks how much of each face a nearer person hides (visible_frac): a face less than
    half visible is not expected, and a detection on it is not counted against precision."""
    base = score(truth, oracle_result(truth))["faces"]
    hidden = copy.deepcopy(truth)
    n_hidden = 0
    for fr in hidden["frames"]["rgb"]:
        for f in fr["faces"]:
            if f["id"] == 1 and fr["index"] % 2 == 0:
                f["visible_frac"] = 0.3
                n_hidden += 1
    r = score(hidden, oracle_result(truth))["faces"]  # the oracle still 'detects' the hidden face
    assert n_hidden > 5
    assert r["masked"]["expected"] < base["masked"]["expected"]
    assert r["masked"]["recall"] == 1.0 and r["precision"] == 1.0
    # without the field a face counts as fully visible (truth rendered before sim-10)
    for fr in hidden["frames"]["rgb"]:
        for f in fr["faces"]:
            f.pop("visible_frac", None)
    assert score(hidden, oracle_result(truth))["faces"]["masked"]["expected"] == base["masked"]["expected"]
