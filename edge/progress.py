"""Progress bars for the commands that run longer than a few seconds (calibrate registration,
eval, eval-faces, import, simulate): tqdm on stderr, shown when stderr is a terminal, or as
`thermal-edge --progress on|off` says. Never on stdout, which carries results and may be piped.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")
MODES = ("auto", "on", "off")
_mode = "auto"  # set by the CLI (--progress); 'auto' = only when stderr is a terminal


def set_mode(mode: str) -> None:
    global _mode
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}; allowed: {MODES}")
    _mode = mode


def enabled() -> bool:
    if _mode != "auto":
        return _mode == "on"
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """``iterable`` with a progress bar on stderr when enabled(), else ``iterable`` itself."""
    if not enabled():
        return iterable
    from tqdm import tqdm

    bar: Any = tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True, mininterval=0.5)
    return bar


def callback(desc: str, unit: str = "it") -> Any:
    """A ``progress(done, total)`` callback drawing one bar (closed when done == total), for code
    that reports its own progress (edge.eval.faces); a no-op when not enabled()."""
    if not enabled():
        return lambda done, total: None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                                      dynamic_ncols=True, mininterval=0.5)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
