"""The station's ``[web]`` section: the shared server settings (edge.web.server.WebConfig: bind,
TLS, users file, sessions) plus what the live view and kiosk need. Off by default."""
from __future__ import annotations

from pydantic import Field

from edge.web.config import WebConfig


class StationWebConfig(WebConfig):
    """Live view (/), visitor guidance (/kiosk) and alignment check (/align), served by `run`."""

    enabled: bool = Field(False, description="Serve the station's web pages (off by default)")
    max_fps: float = Field(10.0, ge=1.0, le=10.0, description="Frames per second per view at most, frames/s")
    jpeg_quality: int = Field(80, ge=40, le=95, description="JPEG quality of the view frames, 40..95")
    kiosk_show_temperature: bool = Field(
        False, description="Show the person's core temperature on /kiosk next to 'proceed' / 'see staff' "
                           "(off: visitors never see a temperature)")
