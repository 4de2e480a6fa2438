"""Table cells shared by every report: the eval report, `eval-faces`, the benchmark tables and
`bench sizes`. Its own small module so the modules whose sections the report includes can use
it without importing the report (that would be a cycle).
"""
from __future__ import annotations

from typing import Any


def fmt_num(v: Any, nd: int = 2, *, missing: str = "–", percent: str | None = None) -> str:
    """A table cell: floats to ``nd`` decimals, anything else as str(), None as ``missing``.

    percent: if given, floats are fractions shown as percent with this suffix ("%" or " %").
    The eval report, `eval-faces`, the benchmark tables and `bench sizes` all format with this.
    """
    if v is None:
        return missing
    if not isinstance(v, float):
        return str(v)
    return f"{v:.{nd}f}" if percent is None else f"{100 * v:.{nd}f}{percent}"
