"""Where the repository's folders are: the one definition every module reads.

``REPO_ROOT`` is the checkout (or the source tree of an editable install); modules at any depth
import it from here instead of counting ``.parent`` steps, which break when a module moves.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CALIBRATION_DIR = REPO_ROOT / "calibration"
STREAMS_DIR = REPO_ROOT / "sample_streams"
MODELS_DIR = REPO_ROOT / "models"
