"""Base for every configuration section (Frigate-style): unknown keys are errors, every field
carries a description with its unit and bounds. Stage modules define their own section model;
edge/config.py composes them into the station config."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def resolve_path(p: str | Path, info: Any) -> Path:
    """A path field's value, for a section's field validator (``info``: its ValidationInfo):
    relative paths are relative to the config file's folder (validation context 'base_dir',
    set by edge.config.load_config; the working directory when there is none)."""
    base = (info.context or {}).get("base_dir") if info is not None else None
    p = Path(p).expanduser()
    return p if p.is_absolute() or base is None else (Path(base) / p).resolve()
