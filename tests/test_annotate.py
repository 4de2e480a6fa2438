"""Annotated preview: faces, canthus points, temperatures, verdicts and gate reasons drawn side
by side in RGB and false-colour thermal, written as a real mp4 that OpenCV reads back."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.annotate import COLORS, THERMAL_RANGE_C, Annotator, false_colour
from edge.cli import main
from edge.paths import REPO_ROOT as REPO
from edge.types import Detections, Frame, FramePair, ScreeningEvent, Verdict

SAMPLE = REPO / "sample_streams" / "walkthrough"


def scene():
    rgb = np.full((240, 320, 3), 90, np.uint8)
    raw = np.full((120, 160), 29815, np.uint16)  # 25 degC in centikelvin
    pair = FramePair(Frame("rgb", 0, 1_000_000, rgb), Frame("thermal", 0, 0, raw))
    dets = Detections(
        box_xyxy=[[100, 60, 160, 140], [220, 60, 270, 130]], score=[0.9, 0.8],
        landmarks_xy=np.tile(np.array([[115, 90], [145, 90], [130, 105], [118, 122], [142, 122]], np.float32), (2, 1, 1)),
        data={
            "track_id": np.array([7, 8]),
            "box_xyxy_thermal": np.array([[50, 30, 80, 70], [110, 30, 135, 65]], np.float32),
            "canthus_xy_thermal": np.array([[[60, 45], [70, 45]], [[np.nan, np.nan], [np.nan, np.nan]]], np.float32),
            "core_temp_c": np.array([38.6, np.nan], np.float32),
            "skin_temp_c": np.array([36.1, np.nan], np.float32),
            "gate": np.array(["", "glasses"], object),
            "mask": np.array(["no", "unknown"], object),
        })
    ev = ScreeningEvent("alert", "new", 7, 0, Verdict("elevated", method="absolute", threshold_c=37.5, core_temp_c=38.6),
                        (100, 60, 160, 140), (50, 30, 80, 70), 0.9)
    return pair, SimpleNamespace(detections=dets, events=[ev], blackbody=SimpleNamespace(state="ok"))


def test_faces_verdicts_and_canthi_are_drawn(tmp_path):
    pair, res = scene()
    ann = Annotator(tmp_path / "p.mp4", fps=9)
    img = ann.render(pair, res)
    # RGB 320 wide + thermal scaled x2 to 320 + the colour bar; the legend line below
    assert img.shape[1] > 640 and img.shape[0] > 240
    red = np.array(COLORS["elevated"])
    # the elevated person's box edge is drawn in the elevated colour, in RGB ...
    assert (np.abs(img[60, 100:160].astype(int) - red).sum(axis=1) < 30).mean() > 0.5
    # ... and its mapped box in thermal (x2 scale, offset by the RGB width)
    assert (np.abs(img[60, 320 + 100:320 + 160].astype(int) - red).sum(axis=1) < 30).mean() > 0.5
    # canthus crosses are white on the (dark, 25 degC) thermal background at (60,45)*2 and (70,45)*2
    for x, y in ((60, 45), (70, 45)):
        assert img[2 * y, 320 + 2 * x].min() > 200
    # the gated face (no verdict yet) is drawn in the neutral colour, not as a result
    neutral = np.array(COLORS[None])
    assert (np.abs(img[60, 220:270].astype(int) - neutral).sum(axis=1) < 30).mean() > 0.5


def test_false_colour_spans_room_to_fever():
    c = np.array([[20.0, 25.0, 32.5, 40.0, np.nan]], np.float32)
    img = false_colour(c, THERMAL_RANGE_C)
    assert img.shape == (1, 5, 3) and img.dtype == np.uint8
    assert (img[0, 0] == img[0, 1]).all()  # below the range clamps to its bottom
    assert (img[0, 4] == img[0, 1]).all()  # NaN (no reading) shows as the bottom, never as warm
    assert img[0, 3].sum() > img[0, 2].sum() > img[0, 1].sum()  # hotter is brighter
    # fixed scale, not stretched per image: 32.5 degC alone has the colour it has beside 20..40
    assert (false_colour(np.full((1, 1), 32.5, np.float32), THERMAL_RANGE_C)[0, 0] == img[0, 2]).all()


def test_video_is_written_and_readable(tmp_path):
    pair, res = scene()
    ann = Annotator(tmp_path / "p.mp4", fps=9)
    for _ in range(5):
        ann.write(pair, res)
    ann.close()
    cap = cv2.VideoCapture(str(tmp_path / "p.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == ann._size[0] > 640
    assert ann.codec in ("H.264 in MP4", "MPEG-4 Part 2 in MP4")
    assert (ann.codec_note == "") == (ann.codec == "H.264 in MP4")  # says so when browsers will not play it


def test_webm_preview_is_vp8_and_browser_playable(tmp_path, capfd):
    """.webm is VP8 (every browser plays it), written without OpenCV's tag warning on stderr."""
    pair, res = scene()
    ann = Annotator(tmp_path / "p.webm", fps=9)
    for _ in range(3):
        ann.write(pair, res)
    ann.close()
    assert ann.codec == "VP8 in WebM" and ann.codec_note == ""
    assert capfd.readouterr().err == ""
    cap = cv2.VideoCapture(str(tmp_path / "p.webm"))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().upper() in ("VP80", "VP8\0")
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3
    with pytest.raises(Exception, match="unknown video type '.gif'"):
        Annotator(tmp_path / "p.gif")


def test_labels_scale_with_the_frame_and_colour_bar_and_legend_are_drawn(tmp_path):
    from edge.annotate import LEGEND, colour_bar, label_scale

    assert label_scale(240) == 0.45 and label_scale(960) == pytest.approx(1.2)
    pair, res = scene()
    big = FramePair(Frame("rgb", 0, 1_000_000, cv2.resize(pair.rgb.image, (1280, 960))), pair.thermal)
    small_img = Annotator(tmp_path / "a.webm").render(pair, res)
    big_img = Annotator(tmp_path / "b.webm").render(big, res)

    def ink_rows(img, x0, x1):  # rows of the header text: the label height
        rows = np.nonzero((img[: img.shape[0] // 8, x0:x1] > 200).any(axis=(1, 2)))[0]
        return rows.max() - rows.min()

    assert ink_rows(big_img, 0, 1280) > 3 * ink_rows(small_img, 0, 320)  # 4x the frame, ~4x the text
    bar = colour_bar(240, THERMAL_RANGE_C, 0.45)
    col = bar[:, 4 + max(8, bar.shape[1] // 4) // 2]
    lit = col[col.sum(axis=1) > 0]
    assert lit[0].sum() > lit[-1].sum()  # hot (bright) at the top, cold at the bottom
    assert (small_img[:240, 640:] == bar).all()  # the bar is beside the thermal panel
    assert "aggregate" in LEGEND and (small_img[240:] > 150).any()  # the legend line is under the frame


@pytest.mark.slow
def test_replay_annotate_command(tmp_path, centerface_path, capsys):
    if not (SAMPLE / "stream.json").is_file():
        pytest.skip(f"{SAMPLE} not rendered (make setup renders it)")
    out = tmp_path / "preview.mp4"
    assert main(["replay", str(SAMPLE), "--annotate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ALERT station sample-gate-1" in text and "preview" in text
    assert "MP4)" in text and ("note: " in text) == ("MPEG-4 Part 2" in text)
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == int(text.split("pairs ")[1].split()[0])  # one video frame per processed pair
