"""Shared fixtures. Tests that need ../shared/data skip with a visible reason when it is absent.

Helpers (free_port, wait_until, the ZeroMQ SUB helper) are in tests/support.py."""
from __future__ import annotations

import gc
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


@pytest.fixture(scope="session")
def detector(centerface_path):
    """The real CenterFace detector (float model, one onnxruntime thread, default config)."""
    from edge.vision.detection import CenterFaceDetector, DetectorConfig, load_session

    return CenterFaceDetector(load_session(centerface_path, 1), DetectorConfig())


@pytest.fixture(autouse=True)
def _gc_freeze_stays_in_its_test():
    """build_pipeline (every replay) calls gc.freeze(): the objects alive then are never scanned
    by the cyclic collector again. Right for a station process; in a test session it would hide
    every later test's garbage from the collector and make results depend on test order. Undo it
    after each test (unfreeze only moves the frozen objects back to the oldest generation)."""
    yield
    gc.unfreeze()
