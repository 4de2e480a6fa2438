"""ChangeCursor: which change ids a page's event stream sends, across out-of-order commits."""
from __future__ import annotations

import pytest

from edge.web.console.live import ChangeCursor


@pytest.mark.parametrize("after, batches, sent, low", [
    (0, [([1, 2, 3], 0.0)], [[1, 2, 3]], 3),
    (5, [([3, 6, 7], 0.0)], [[6, 7]], 7),  # ids at or below the resume point are never resent
    # id 2 commits after 3 (PostgreSQL, two writers): sent when it appears, low waits for it
    (0, [([1, 3], 0.0), ([2], 1.0)], [[1, 3], [2]], 3),
    (0, [([1, 3], 0.0), ([], 1.0)], [[1, 3], []], 1),
    # a hole that never fills (rolled-back id) is given up after hole_wait_s
    (0, [([1, 3], 0.0), ([], 6.0)], [[1, 3], []], 3),
    (0, [([1, 2], 0.0), ([1, 2, 3], 0.5)], [[1, 2], [3]], 3),  # re-read ids are not resent
])
def test_cursor(after, batches, sent, low):
    c = ChangeCursor(after, hole_wait_s=5.0)
    out = [c.accept(ids, now=t) for ids, t in batches]
    assert out == sent and c.last_id == low


def test_holes_are_rechecked():
    c = ChangeCursor(0)
    c.accept([1, 4], now=0.0)
    assert sorted(c.holes) == [2, 3]
    assert c.accept([3], now=1.0) == [3] and sorted(c.holes) == [2]
