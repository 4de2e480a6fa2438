"""Box geometry shared by tracking, evaluation and the real-data face scoring."""
from __future__ import annotations

import numpy as np


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(A,4) x (B,4) xyxy boxes -> (A,B) float64 intersection over union."""
    a = np.asarray(a_xyxy, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b_xyxy, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    area = lambda x: np.maximum(x[..., 2] - x[..., 0], 0) * np.maximum(x[..., 3] - x[..., 1], 0)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending score, each row and column at most once, score >= threshold."""
    if score.size == 0:
        return []
    order = np.argsort(-score, axis=None, kind="stable")
    rows_used, cols_used, pairs = set(), set(), []
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if score[r, c] < threshold:
            break
        if r not in rows_used and c not in cols_used:
            rows_used.add(r)
            cols_used.add(c)
            pairs.append((r, c))
    return pairs
