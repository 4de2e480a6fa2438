"""FLIR Lepton 3.x telemetry as a PureThermal board delivers it in Y16 frames.

With telemetry enabled the Lepton appends (footer) or prepends (header) three telemetry lines
A, B, C of 80 16-bit words each. A PureThermal packs them into whole rows of the image width:
160 px wide (Lepton 3.x) -> 2 extra rows (A|B, then C|padding), a 160x122 frame; 80 px wide
(Lepton 2.x) -> 3 extra rows, 80x63. Words arrive in host (little-endian) order like the pixels.

Line A layout (Lepton Software IDD, "Telemetry Data Content"), word offsets:
  0      telemetry revision
  1-2    time counter, ms since boot (32 bit, least significant word first)
  3-4    status bits (32 bit, LSW first): bit 3 FFC desired, bits 4-5 FFC state
         (0 none, 1 imminent, 2 in progress, 3 complete), bit 12 AGC on, bit 15 shutter
         lockout, bit 20 over-temperature shutdown imminent
  20-21  frame counter (32 bit, LSW first)
  22     frame mean (counts)
  23/24  FPA temperature: counts / kelvin x 100
  25/26  housing temperature: counts / kelvin x 100
  29     FPA temperature at last FFC, kelvin x 100
  30-31  time counter at last FFC, ms (32 bit, LSW first)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.types import FFC_STATES

LINE_WORDS = 80
N_LINES = 3
# Plausible Lepton FPA temperatures (the module's operating range is -10..80 degC): a value
# outside means the rows are not telemetry (e.g. telemetry disabled, or a corrupt frame).
FPA_RANGE_K100 = (22315, 37315)


@dataclass(frozen=True)
class Telemetry:
    revision: int
    uptime_ms: int
    status_bits: int
    frame_counter: int
    frame_mean: int
    fpa_temp_c: float
    housing_temp_c: float
    fpa_temp_last_ffc_c: float
    last_ffc_ms: int

    @property
    def ffc_state(self) -> str:
        return FFC_STATES[(self.status_bits >> 4) & 0x3]

    @property
    def ffc_desired(self) -> bool:
        return bool(self.status_bits & (1 << 3))

    @property
    def ms_since_ffc(self) -> int:
        return max(0, self.uptime_ms - self.last_ffc_ms)


class TelemetryError(ValueError):
    """Rows that should hold telemetry do not."""


def telemetry_rows(width: int) -> int:
    """Extra image rows that carry the 3 x 80 telemetry words at this frame width."""
    return -(-N_LINES * LINE_WORDS // width)


def _u32(w: np.ndarray, i: int) -> int:
    return int(w[i]) | (int(w[i + 1]) << 16)


def parse_telemetry(rows: np.ndarray) -> Telemetry:
    """Parse telemetry rows ((k, width) uint16, host order) into a Telemetry record."""
    words = np.ascontiguousarray(rows, dtype=np.uint16).reshape(-1)
    if len(words) < LINE_WORDS:
        raise TelemetryError(f"telemetry needs {LINE_WORDS} words of line A, got {len(words)}")
    a = words[:LINE_WORDS]
    fpa = int(a[24])
    if not FPA_RANGE_K100[0] <= fpa <= FPA_RANGE_K100[1]:
        raise TelemetryError(f"telemetry FPA temperature {fpa / 100 - 273.15:.1f} degC is implausible "
                             "(telemetry disabled or placed at the other end of the frame?)")
    return Telemetry(
        revision=int(a[0]),
        uptime_ms=_u32(a, 1),
        status_bits=_u32(a, 3),
        frame_counter=_u32(a, 20),
        frame_mean=int(a[22]),
        fpa_temp_c=round(fpa / 100.0 - 273.15, 2),
        housing_temp_c=round(int(a[26]) / 100.0 - 273.15, 2),
        fpa_temp_last_ffc_c=round(int(a[29]) / 100.0 - 273.15, 2),
        last_ffc_ms=_u32(a, 30),
    )


def build_telemetry_words(*, frame_counter: int = 0, ffc_state: str = "none", fpa_temp_c: float = 30.0,
                          housing_temp_c: float = 28.0, uptime_ms: int = 0, last_ffc_ms: int = 0,
                          frame_mean: int = 0, revision: int = 0x0E, ffc_desired: bool = False) -> np.ndarray:
    """The 240 telemetry words (lines A, B, C) a Lepton would send -- the inverse of parse_telemetry,
    for tests that build PureThermal frames."""
    w = np.zeros(N_LINES * LINE_WORDS, np.uint16)
    status = (FFC_STATES.index(ffc_state) << 4) | (int(ffc_desired) << 3)
    for i, v in ((1, uptime_ms), (3, status), (20, frame_counter), (30, last_ffc_ms)):
        w[i], w[i + 1] = v & 0xFFFF, (v >> 16) & 0xFFFF
    w[0], w[22] = revision, frame_mean
    w[24] = round((fpa_temp_c + 273.15) * 100)
    w[26] = round((housing_temp_c + 273.15) * 100)
    w[29] = w[24]
    return w
