"""Base for every configuration section (Frigate-style): unknown keys are errors, every field
carries a description with its unit and bounds. Stage modules define their own section model;
edge/config.py composes them into the station config."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
