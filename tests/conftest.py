"""Shared fixtures. Tests that need ../shared/data skip with a visible reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.paths import REPO_ROOT

SHARED_DATA = Path(os.environ.get("THERMAL_EDGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (third-party evaluation data), or skip the test saying why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party data not found at {SHARED_DATA} (set THERMAL_EDGE_SHARED_DATA); "
                    "the core suite does not need it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut_bgr():
    """The public-domain astronaut portrait (512x512 BGR uint8), fetched at set-up."""
    import cv2

    from edge.assets import ASTRONAUT, require

    img = cv2.imread(str(require(ASTRONAUT.target)), cv2.IMREAD_COLOR)
    assert img is not None
    return img


@pytest.fixture(scope="session")
def centerface_path() -> Path:
    from edge.assets import CENTERFACE_MODEL, require

    return require(CENTERFACE_MODEL)
