"""Silence what C libraries (OpenCV, FFmpeg) print straight to file descriptor 2 around one
call whose outcome we report ourselves in one line: a codec probe, opening a damaged video."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what OpenCV and FFmpeg print straight to file descriptor 2 while a writer is
    opened (a tag warning for WebM, a failed hardware H.264 probe): the result is reported in
    one line instead. Only around the open, so nothing of ours is lost."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
