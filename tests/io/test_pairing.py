"""Pairing: each thermal frame with the nearest RGB frame within tolerance, streaming."""
from __future__ import annotations

import numpy as np
import pytest

from edge.io.pairing import Pairer, PairingConfig, merged_frames, paired
from edge.types import Frame

MS = 1_000_000


def _f(cam, idx, t_ms):
    return Frame(cam, idx, int(t_ms * MS), np.zeros((1, 1), np.uint16))


def _run(frames, tol_ms=20.0):
    p = Pairer(PairingConfig(tolerance_ms=tol_ms))
    pairs = []
    for f in frames:
        pairs += p.push(f)
    pairs += p.flush()
    return pairs, p.stats


def _interleave(rgb_ms, th_ms):
    frames = [_f("rgb", i, t) for i, t in enumerate(rgb_ms)] + [_f("thermal", i, t) for i, t in enumerate(th_ms)]
    return sorted(frames, key=lambda f: f.t_ns)


def test_30fps_rgb_with_8_7hz_thermal_pairs_every_thermal_frame_with_nearest():
    rgb = [i * 1000 / 30 for i in range(90)]
    th = [i * 1000 / 8.7 + 3 for i in range(26)]
    pairs, stats = _run(_interleave(rgb, th))
    assert len(pairs) == 26 and stats.unpaired_thermal == 0
    for p in pairs:
        nearest = min(rgb, key=lambda t: abs(t - p.thermal.t_ns / MS))
        assert p.rgb.t_ns == int(nearest * MS)
        assert abs(p.dt_ns) <= 20 * MS
    assert stats.rgb_unused == 90 - 26


def test_thermal_without_rgb_in_tolerance_is_counted_not_paired():
    rgb = [0, 33, 66, 300, 333]
    th = [10, 150, 320]  # 150 has no RGB within 20 ms
    pairs, stats = _run(_interleave(rgb, th))
    assert [p.thermal.index for p in pairs] == [0, 2]
    assert stats.unpaired_thermal == 1


@pytest.mark.parametrize("order", ["thermal_first", "rgb_first"])
def test_arrival_order_between_cameras_does_not_change_result(order):
    rgb = [i * 33.3 for i in range(30)]
    th = [i * 115.0 + 5 for i in range(8)]
    frames_r = [_f("rgb", i, t) for i, t in enumerate(rgb)]
    frames_t = [_f("thermal", i, t) for i, t in enumerate(th)]
    frames = frames_t + frames_r if order == "thermal_first" else frames_r + frames_t
    pairs, _ = _run(frames)
    ref, _ = _run(_interleave(rgb, th))
    assert [(p.rgb.index, p.thermal.index) for p in pairs] == [(p.rgb.index, p.thermal.index) for p in ref]


def test_timestamp_going_backwards_is_dropped_and_counted():
    frames = [_f("rgb", 0, 0), _f("thermal", 0, 1), _f("rgb", 1, 33), _f("thermal", 1, -50), _f("rgb", 2, 66)]
    pairs, stats = _run(frames)
    assert len(pairs) == 1 and stats.out_of_order == 1


def test_config_bounds_are_enforced():
    with pytest.raises(ValueError, match="tolerance_ms"):
        PairingConfig(tolerance_ms=0)
    with pytest.raises(ValueError, match="extra|unknown|tolerance_mss"):
        PairingConfig(tolerance_mss=3)


def test_thermal_frame_pairs_without_waiting_when_no_later_rgb_can_be_nearer():
    p = Pairer(PairingConfig())
    for i in range(6):
        assert p.push(_f("rgb", i, i * 33.3)) == []
    # newest RGB at 166.5 ms; thermal at 170 ms: the next RGB (~199.8) cannot be nearer
    pairs = p.push(_f("thermal", 0, 170))
    assert len(pairs) == 1 and pairs[0].rgb.index == 5
    # thermal at 190 ms is nearer to the RGB frame still to come: it must wait for it
    assert p.push(_f("thermal", 1, 190)) == []
    pairs = p.push(_f("rgb", 6, 199.8))
    assert len(pairs) == 1 and pairs[0].rgb.index == 6


class _ListSource:
    def __init__(self, frames):
        self._frames = list(frames)

    def read(self):
        return self._frames.pop(0) if self._frames else None


def test_paired_merges_sources_in_capture_time_and_pairs_like_the_hand_loop():
    """paired(sources) = merge by capture time (RGB first on a tie) -> Pairer.push ... flush."""
    rgb = [_f("rgb", i, i * 1000 / 30) for i in range(60)]
    th = [_f("thermal", i, i * 1000 / 8.7 + 3) for i in range(17)] + [_f("thermal", 17, 2000)]  # last: same t as...
    rgb.append(_f("rgb", 60, 2000))  # ...this RGB frame: the RGB one is merged first
    merged = list(merged_frames([_ListSource(rgb), _ListSource(th)]))
    assert [f.t_ns for f in merged] == sorted(f.t_ns for f in merged)
    assert [(f.camera, f.index) for f in merged[-2:]] == [("rgb", 60), ("thermal", 17)]
    expected, expected_stats = _run(merged)
    pairer = Pairer(PairingConfig())
    got = list(paired([_ListSource(rgb), _ListSource(th)], pairer=pairer))
    assert [(p.rgb.index, p.thermal.index) for p in got] == [(p.rgb.index, p.thermal.index) for p in expected]
    assert got[-1].thermal.index == 17 and got[-1].rgb.index == 60  # the flushed pair is there
    assert pairer.stats == expected_stats
    assert [(p.rgb.index, p.thermal.index) for p in paired([_ListSource(rgb), _ListSource(th)], PairingConfig())] \
        == [(p.rgb.index, p.thermal.index) for p in expected]



# Every thermal frame not paired is counted with its reason, and the first of each reason logged.
UNPAIRED_CASES = {
    "thermal clock goes back 3 s for 10 frames": (
        [("rgb", t) for t in range(0, 10000, 33)]
        + [("thermal", t) for t in range(5, 5000, 100)]
        + [("thermal", t) for t in range(2005, 3000, 100)]  # 10 rows, 3 s back
        + [("thermal", t) for t in range(5005, 9000, 100)],
        {("thermal", "out_of_order"): 10}),
    "duplicate thermal time": (
        [("rgb", t) for t in range(0, 1000, 33)] + [("thermal", 105), ("thermal", 105), ("thermal", 205)],
        {("thermal", "duplicate_time"): 1}),
    "no RGB within tolerance": (
        [("rgb", t) for t in (0, 33, 66, 300, 333)] + [("thermal", 10), ("thermal", 150), ("thermal", 320)],
        {("thermal", "no_partner"): 1}),
    "rgb clock goes back": (
        [("rgb", t) for t in (0, 33, 66, 20, 99, 132)] + [("thermal", 40), ("thermal", 120)],
        {("rgb", "out_of_order"): 1}),
}


@pytest.mark.parametrize("arrivals, expected", UNPAIRED_CASES.values(), ids=UNPAIRED_CASES.keys())
def test_every_unpaired_frame_is_counted_with_its_reason(arrivals, expected, caplog):
    import logging

    rgb = [_f("rgb", i, t) for i, t in enumerate(t for cam, t in arrivals if cam == "rgb")]
    th = [_f("thermal", i, t) for i, t in enumerate(t for cam, t in arrivals if cam == "thermal")]
    merged, i, j = [], 0, 0
    while i < len(rgb) or j < len(th):  # interleave by time, keeping each camera's order
        if j >= len(th) or (i < len(rgb) and rgb[i].t_ns <= th[j].t_ns):
            merged.append(rgb[i])
            i += 1
        else:
            merged.append(th[j])
            j += 1
    with caplog.at_level(logging.WARNING, logger="edge.io.pairing"):
        pairs, stats = _run(merged)
    assert {k: v for k, v in stats.unpaired.items() if v} == expected
    assert len(pairs) + stats.thermal_unpaired() == len(th)
    # logged once per reason, however many frames
    assert len([r for r in caplog.records if "not paired" in r.getMessage()]) == len(expected)
    for (cam, reason), n in expected.items():
        if cam == "thermal":
            assert f"{n} {reason.replace('_', ' ')}" in stats.describe_unpaired()
        assert stats.unpaired_by_camera()[cam][reason] == n
