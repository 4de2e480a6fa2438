"""Calibration targets seen by both cameras: the point pairs ``fit_registration`` fits from.

A library function (``thermal-edge calibrate registration`` and the lab battery both call it),
fed with paired frames by the caller, so it needs no recording or command module.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edge.errors import UserError
from edge.thermal.registration import find_target, grid_pitch_px, match_order
from edge.types import FramePair


def collect_target_points(pairs: Iterable[FramePair], kind: str = "chessboard", size: tuple[int, int] = (7, 5),
                          square_m: float | None = None, rgb_focal_px: float = 500.0, *, where: str = "recording"
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int]:
    """Find the target in both images of every paired frame of a calibration recording.

    pairs: the recording's paired frames (e.g. edge.io.recording.recording_pairs(path));
    where: what they come from, named in the error when no frame shows the target.
    Returns (rgb_xy (M,2), thermal_xy (M,2), distance_m (M,) or None, n_pairs, n_views). The
    distance of a view is rgb_focal_px * square_m / (grid pitch in RGB px), assuming the board
    faces the cameras; without ``square_m`` every view counts as at the reference distance.
    """
    rgb_all, th_all, dist_all = [], [], []
    n_pairs = n_views = 0
    for pair in pairs:
        n_pairs += 1
        r = find_target(pair.rgb.image, kind, size)
        if r is None:
            continue
        t = find_target(pair.thermal.image, kind, size, upscale=4)
        if t is None:
            continue
        h, w = pair.thermal.image.shape
        t = match_order(r, pair.rgb.image.shape[1::-1], t, (w, h))
        n_views += 1
        rgb_all.append(r)
        th_all.append(t)
        if square_m:
            dist_all.append(np.full(len(r), rgb_focal_px * square_m / grid_pitch_px(r, size)))
    if not n_views:
        raise UserError(f"{where}: the {kind} target ({size[0]}x{size[1]}) was not found in both images of any of "
                        f"{n_pairs} paired frames")
    dist = np.concatenate(dist_all) if dist_all else None
    return np.concatenate(rgb_all), np.concatenate(th_all), dist, n_pairs, n_views
