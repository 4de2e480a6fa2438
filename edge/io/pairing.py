"""Pairing: match each thermal frame with the RGB frame nearest in time.

Frames arrive from two cameras in capture order per camera, interleaved arbitrarily. A thermal
frame can be paired once we have seen an RGB frame at or after its time (or know no better one
can come). RGB frames that no thermal frame claims are dropped without detection -- detection
only runs on paired frames, which is most of the pipeline's saving at 30 fps vs 8.7 Hz.

A thermal frame that is not paired is never silent: it is counted with its reason (
``UNPAIRED_REASONS``) in ``PairingStats.unpaired`` -- read by the replay summary, the status
message and the Prometheus metrics -- and the first frame of each reason is logged.
"""
from __future__ import annotations

import heapq
import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import Field

from edge.configbase import StrictModel
from edge.types import Frame, FramePair

log = logging.getLogger(__name__)

# Why a frame was not paired. RGB frames no thermal frame chose are normal (RGB runs faster)
# and counted apart (rgb_unused); these reasons apply to thermal frames, and the first two to
# RGB frames too.
UNPAIRED_REASONS = {
    "out_of_order": "its time went back before the previous frame of its camera",
    "duplicate_time": "its time equals the previous frame's of its camera",
    "no_partner": "no RGB frame within the pairing tolerance",
}


class PairingConfig(StrictModel):
    tolerance_ms: float = Field(20.0, gt=0, le=200, description="Max |t_rgb - t_thermal| for a pair, ms")
    max_buffer: int = Field(64, ge=2, le=4096, description="RGB frames held while waiting for thermal")


@dataclass
class PairingStats:
    pairs: int = 0
    unpaired_thermal: int = 0  # thermal frames with no RGB frame within tolerance
    rgb_unused: int = 0  # RGB frames no thermal frame chose (normal: RGB runs faster)
    out_of_order: int = 0  # frames whose t_ns went backwards within their camera; dropped
    duplicate_time: int = 0  # frames whose t_ns equals the previous one of their camera; dropped
    unpaired: Counter[tuple[str, str]] = field(default_factory=Counter)  # (camera, reason in UNPAIRED_REASONS) -> frames

    def unpaired_by_camera(self) -> dict[str, dict[str, int]]:
        """{camera: {reason: frames}} for the status message (every reason listed, zeros too)."""
        return {cam: {r: int(self.unpaired[(cam, r)]) for r in UNPAIRED_REASONS
                      if cam == "thermal" or r != "no_partner"}
                for cam in ("thermal", "rgb")}

    def thermal_unpaired(self) -> int:
        """Thermal frames not paired, whatever the reason."""
        return sum(n for (cam, _), n in self.unpaired.items() if cam == "thermal")

    def describe_unpaired(self) -> str:
        """'3 thermal unpaired: 2 out of order, 1 no partner' -- one phrase for summaries."""
        parts = [f"{n} {r.replace('_', ' ')}" for r in UNPAIRED_REASONS if (n := self.unpaired[("thermal", r)])]
        rgb = [f"{n} rgb {r.replace('_', ' ')}" for r in UNPAIRED_REASONS if (n := self.unpaired[("rgb", r)])]
        head = f"{self.thermal_unpaired()} thermal unpaired"
        return head + (f": {', '.join(parts + rgb)}" if parts or rgb else "")


class Pairer:
    """Streaming nearest-neighbour pairing on one clock.

    push(frame) -> the pairs that became final; flush() at end of stream -> the rest.
    """

    def __init__(self, cfg: PairingConfig | None = None):
        self.cfg = cfg or PairingConfig()
        self._tol_ns = int(self.cfg.tolerance_ms * 1e6)
        self._rgb: deque[Frame] = deque()
        self._thermal: deque[Frame] = deque()
        self._last_t = {"rgb": -(1 << 62), "thermal": -(1 << 62)}
        self._rgb_intervals: deque[int] = deque(maxlen=16)
        self.stats = PairingStats()

    def _drop(self, frame: Frame, reason: str) -> None:
        """Count a frame that will not be paired; log the first of each (camera, reason)."""
        self.stats.unpaired[(frame.camera, reason)] += 1
        if self.stats.unpaired[(frame.camera, reason)] == 1:
            log.warning("pairing: %s frame %d at t=%.3f s not paired: %s (%s); further ones are counted "
                        "(status pairing.unpaired, metric thermal_edge_unpaired_frames)", frame.camera, frame.index,
                        frame.t_ns / 1e9, reason.replace("_", " "), UNPAIRED_REASONS[reason])

    def push(self, frame: Frame) -> list[FramePair]:
        if frame.t_ns <= self._last_t[frame.camera]:
            # a clock that jumps backwards would pair the wrong frames, and a repeated time
            # (a frame delivered twice, a stuck clock) would be measured twice: drop and count
            if frame.t_ns < self._last_t[frame.camera]:
                self.stats.out_of_order += 1
                self._drop(frame, "out_of_order")
            else:
                self.stats.duplicate_time += 1
                self._drop(frame, "duplicate_time")
            return []
        if frame.camera == "rgb" and self._last_t["rgb"] > -(1 << 62):
            self._rgb_intervals.append(frame.t_ns - self._last_t["rgb"])
        self._last_t[frame.camera] = frame.t_ns
        (self._rgb if frame.camera == "rgb" else self._thermal).append(frame)
        while len(self._rgb) > self.cfg.max_buffer:
            self._rgb.popleft()
            self.stats.rgb_unused += 1
        return self._resolve(final=False)

    def flush(self) -> list[FramePair]:
        return self._resolve(final=True)

    def _rgb_settles(self, t_ns: int) -> bool:
        last = self._last_t["rgb"]
        if last >= t_ns:
            return True
        if len(self._rgb_intervals) < 4:
            return False
        period = sorted(self._rgb_intervals)[len(self._rgb_intervals) // 2]
        return t_ns - last <= period // 2

    def _resolve(self, final: bool) -> list[FramePair]:
        out: list[FramePair] = []
        while self._thermal:
            th = self._thermal[0]
            # Undecided until no later RGB frame can be nearer: one at/after th has arrived, or
            # the newest is within half an RGB period before th (the next one, a period later,
            # is farther). Waiting less here is capture-to-alert latency saved. A stalled RGB
            # camera must not hold thermal frames forever, though.
            if not final and not self._rgb_settles(th.t_ns) and len(self._thermal) <= self.cfg.max_buffer:
                break
            self._thermal.popleft()
            # drop RGB frames that are too old for this (and so for any later) thermal frame
            while self._rgb and self._rgb[0].t_ns < th.t_ns - self._tol_ns:
                self._rgb.popleft()
                self.stats.rgb_unused += 1
            best = None
            for i, rgb in enumerate(self._rgb):
                d = abs(rgb.t_ns - th.t_ns)
                if d <= self._tol_ns and (best is None or d < best[0]):
                    best = (d, i)
                if rgb.t_ns > th.t_ns + self._tol_ns:
                    break
            if best is None:
                self.stats.unpaired_thermal += 1
                self._drop(th, "no_partner")
                continue
            for _ in range(best[1]):
                self._rgb.popleft()
                self.stats.rgb_unused += 1
            out.append(FramePair(self._rgb.popleft(), th))
            self.stats.pairs += 1
        if final:
            self.stats.rgb_unused += len(self._rgb)
            self._rgb.clear()
        return out


class _Readable(Protocol):
    """Anything with ``read() -> Frame | None`` (None = end): a FrameSource, a recording camera."""

    def read(self) -> Frame | None: ...


def merged_frames(sources: Sequence[_Readable]) -> Iterator[Frame]:
    """Frames of several recorded cameras in capture-time order (replay never drops); on equal
    times the earlier source in ``sources`` comes first."""
    heap: list[tuple[int, int, Frame]] = []
    for k, src in enumerate(sources):
        f = src.read()
        if f is not None:
            heap.append((f.t_ns, k, f))
    heapq.heapify(heap)
    while heap:
        _, k, f = heapq.heappop(heap)
        yield f
        nxt = sources[k].read()
        if nxt is not None:
            heapq.heappush(heap, (nxt.t_ns, k, nxt))


def pair_frames(frames: Iterable[Frame], pairer: Pairer) -> Iterator[FramePair]:
    """Every pair ``pairer`` makes of ``frames`` (in arrival order), then the flushed rest."""
    for frame in frames:
        yield from pairer.push(frame)
    yield from pairer.flush()


def paired(sources: Sequence[_Readable], cfg: PairingConfig | None = None, *,
           pairer: Pairer | None = None) -> Iterator[FramePair]:
    """The pairs of recorded cameras ([rgb, thermal] sources, read to the end) merged in capture
    time, as replay, calibration and the bench see them. Pass ``pairer`` to read its ``stats``
    afterwards (or to time it); otherwise one is made from ``cfg``. The caller closes the sources."""
    return pair_frames(merged_frames(sources), pairer if pairer is not None else Pairer(cfg))
