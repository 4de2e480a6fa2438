"""Feed benchmarks on loopback: ``python -m edge.bench.feed [--runs 5]``.

- publish+journal: alerts/s through Publisher with the synced journal (one fsync per alert),
  received by a Listener (the gateway's ceiling for decided alerts);
- publish, no journal: alerts/s through Publisher -> PUB/SUB -> Listener (decode, dedupe, store);
- catch-up: seconds for a fresh Listener to fetch 1000 journaled alerts it missed.

Reports the median and range over ``--runs`` runs (the machines are noisy). Writes the journal
to a temporary folder on the same disk as ``--dir`` (default: the system temp folder).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import zmq

from edge.feed.client import Listener
from edge.feed.publishing import FeedConfig, open_feed, utc_iso
from edge.types import ScreeningEvent, Verdict


def _event(i: int) -> ScreeningEvent:
    return ScreeningEvent("alert", "new", i, i, Verdict("elevated", method="absolute", threshold_c=37.5,
                                                        core_temp_c=38.1, skin_temp_c=35.6, uncertainty_c=0.2),
                          (10.0, 20.0, 60.0, 80.0), (2.0, 3.0, 9.0, 11.0), 0.9, "no", 0.8, 7)


def _wait(pred, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish")
        time.sleep(0.001)


def _feed(ctx, folder: Path, journal: bool):
    cfg = FeedConfig(endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*",
                     journal_path=str(folder / "journal.sqlite") if journal else None, heartbeat_s=0.5)
    return open_feed(ctx, cfg, "bench")


class _Listening:
    """A Listener on ``feed`` in a thread, collecting what it delivers."""

    def __init__(self, ctx, feed, catchup: bool) -> None:
        self.got: list = []
        self.stop = threading.Event()
        self.listener = Listener(ctx, [feed.endpoint], catchup=[feed.catchup_endpoint] if catchup else [])
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop, self.got.append), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def live_rate(folder: Path, n: int, journal: bool) -> float:
    """Alerts/s from the first publish to the last delivery at the Listener."""
    ctx = zmq.Context()
    feed = _feed(ctx, folder, journal)
    sub = _Listening(ctx, feed, catchup=journal)
    _wait(lambda: sub.listener.stats.received > 0)  # subscribed (a heartbeat arrived)
    t0 = time.perf_counter()
    for i in range(n):
        feed.publisher.publish_event(_event(i), utc_iso())
    _wait(lambda: len(sub.got) >= n)
    elapsed = time.perf_counter() - t0
    sub.close()
    feed.close()
    ctx.term()
    return n / elapsed


def catchup_seconds(folder: Path, n: int) -> float:
    """Time for a fresh Listener to receive ``n`` alerts published before it started."""
    ctx = zmq.Context()
    feed = _feed(ctx, folder, True)
    for i in range(n):
        feed.publisher.publish_event(_event(i), utc_iso())
    t0 = time.perf_counter()
    sub = _Listening(ctx, feed, catchup=True)
    _wait(lambda: len(sub.got) >= n)
    elapsed = time.perf_counter() - t0
    sub.close()
    feed.close()
    ctx.term()
    return elapsed


def _summary(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):.3g} {unit} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--alerts", type=int, default=2000, help="alerts per throughput run")
    p.add_argument("--catchup", type=int, default=1000, help="alerts to catch up")
    p.add_argument("--dir", type=Path, default=None, help="folder for the temporary journals")
    args = p.parse_args(argv)
    results: dict[str, list[float]] = {"publish+journal": [], "publish, no journal": [], "catch-up": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            results["publish+journal"].append(live_rate(Path(d) / "a", args.alerts, True))
            results["publish, no journal"].append(live_rate(Path(d) / "b", args.alerts, False))
            results["catch-up"].append(catchup_seconds(Path(d) / "c", args.catchup))
    print(f"feed on loopback, {args.runs} runs:")
    print(f"  publish+journal (fsync each) -> listener: {_summary(results['publish+journal'], 'alerts/s')}")
    print(f"  publish, no journal -> listener:          {_summary(results['publish, no journal'], 'alerts/s')}")
    print(f"  catch-up of {args.catchup} alerts:               {_summary(results['catch-up'], 's')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
