"""Console benchmark: ``thermal-edge bench --console [--runs 3]`` (or ``python -m edge.bench.console``).

Per run: a console process (``thermal-edge console``, SQLite store in a fresh temp folder) subscribes
to 5 simulated gateways (real feeds: PUB + synced journal + catch-up, loopback); headless Chromium
is logged in with the live queue open; each gateway publishes a burst of 40 alerts from its own
thread (200 in all, as fast as the journal's fsync allows). Measured:

- ingest rate: 200 / (time the last alert was stored - time the first was published), alerts/s;
- publish-to-page latency: for each alert, the moment its card appeared in the page
  (``performance.timeOrigin + performance.now()``, recorded by the page's own script) minus the
  moment the gateway published it (same machine clock); p50 and p99 over the 200.

Reports each run and the median over runs. Targets (issue 13): >= 200 alerts/s, p99 <= 1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from edge.errors import UserError
from edge.feed.publishing import FeedConfig, open_feed, utc_iso
from edge.paths import REPO_ROOT
from edge.types import ScreeningEvent, Verdict

GATEWAYS = 5
ALERTS_PER_GATEWAY = 40
TARGET_ALERTS_PER_S = 200.0
TARGET_P99_S = 1.0
CHROMIUM = os.environ.get("THERMAL_EDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _event(track: int) -> ScreeningEvent:
    v = Verdict("elevated", method="absolute", threshold_c=37.5, core_temp_c=38.1 + 0.01 * (track % 50),
                skin_temp_c=35.6, uncertainty_c=0.2)
    return ScreeningEvent("alert", "new", track, track, v, (10.0, 20.0, 60.0, 80.0), (2.0, 3.0, 9.0, 11.0),
                          0.9, "no", 0.8, 7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"console bench: timed out waiting for {what}")
        time.sleep(0.02)


class _Gateway(threading.Thread):
    """One simulated gateway: opens its feed in its own thread (the journal is per thread),
    waits for ``go``, publishes a burst, records publish times, keeps heartbeating until ``done``."""

    def __init__(self, ctx: zmq.Context, i: int, folder: Path, go: threading.Event, done: threading.Event) -> None:
        super().__init__(daemon=True, name=f"gateway-{i}")
        self.ctx, self.station = ctx, f"bench-gate-{i}"
        self.port, self.catchup_port = _free_port(), _free_port()
        self.journal = folder / f"journal-{i}.sqlite"
        self.go, self.done = go, done
        self.ready = threading.Event()
        self.published: dict[str, float] = {}  # event id -> unix s just before sending
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            cfg = FeedConfig(endpoint=f"tcp://127.0.0.1:{self.port}",
                             catchup_endpoint=f"tcp://127.0.0.1:{self.catchup_port}",
                             journal_path=str(self.journal), heartbeat_s=0.5)
            with open_feed(self.ctx, cfg, self.station) as feed:
                self.ready.set()
                self.go.wait()
                for track in range(1, ALERTS_PER_GATEWAY + 1):
                    t = time.time()
                    body = feed.publisher.publish_event(_event(track), utc_iso(t))
                    self.published[body["event_id"]] = t
                self.done.wait()
        except BaseException as e:  # reported by the main thread
            self.error = e
            self.ready.set()


def run_once(chromium: Any, folder: Path) -> dict[str, float]:
    from edge.web.auth import Users

    ctx = zmq.Context()
    go, done = threading.Event(), threading.Event()
    gateways = [_Gateway(ctx, i + 1, folder, go, done) for i in range(GATEWAYS)]
    for g in gateways:
        g.start()
    for g in gateways:
        g.ready.wait(30)
        if g.error:
            raise g.error
    port = _free_port()
    eps = [f"tcp://127.0.0.1:{g.port}" for g in gateways]
    cats = [f"tcp://127.0.0.1:{g.catchup_port}" for g in gateways]
    cfg = folder / "console.toml"
    cfg.write_text(f'[web]\nport = {port}\nusers_file = "users.txt"\nsession_secret_file = "secret"\n'
                   f'[feed]\nendpoints = {json.dumps(eps)}\ncatchup = {json.dumps(cats)}\n'
                   f'[store]\nsqlite_path = "console.sqlite"\n[console]\nqueue_size = 1000\n')
    Users(folder / "users.txt").set("bench", "viewer", "bench password")
    log = open(folder / "console.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "console", "--config", str(cfg)], cwd=REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=log, stderr=subprocess.STDOUT)
    context = None
    try:
        base = f"http://127.0.0.1:{port}"
        context = chromium.new_context()
        page = context.new_page()
        for _ in range(300):
            try:
                page.goto(base + "/login")
                break
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError(f"console exited: {(folder / 'console.log').read_text()[-500:]}") from None
                time.sleep(0.1)
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", "bench password")
        page.click("button[type=submit]")
        page.wait_for_selector("#live.ok", timeout=30_000)
        time.sleep(2.0)  # every gateway heard (heartbeats): the burst is live, not caught up
        go.set()
        total = GATEWAYS * ALERTS_PER_GATEWAY
        # polled from here: the page's CSP (script-src 'self') forbids wait_for_function's eval
        _wait(lambda: page.evaluate("() => Object.keys(window.TE_SEEN).length") >= total, 120, "every card")
        seen: dict[str, float] = page.evaluate("window.TE_SEEN")
        done.set()
    finally:
        if context is not None:
            context.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        done.set()
        for g in gateways:
            g.join(10)
        ctx.term()
    import sqlite3

    published = {k: v for g in gateways for k, v in g.published.items()}
    with sqlite3.connect(folder / "console.sqlite") as db:
        last_stored = db.execute("SELECT max(received_unix_s) FROM alerts").fetchone()[0]
        n = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
    if n != len(published):
        raise RuntimeError(f"console stored {n} of {len(published)} alerts")
    lat = np.array([seen[k] / 1000.0 - t for k, t in published.items()])
    t_pub = sorted(published.values())
    return {"alerts": float(n), "ingest_alerts_per_s": n / (last_stored - t_pub[0]),
            "publish_alerts_per_s": n / max(t_pub[-1] - t_pub[0], 1e-6),
            "latency_p50_s": float(np.percentile(lat, 50)), "latency_p99_s": float(np.percentile(lat, 99)),
            "latency_max_s": float(lat.max())}


def run(runs: int = 3, json_out: Path | None = None) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        raise UserError(f"console bench needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(runs):
                with tempfile.TemporaryDirectory(prefix="te-console-bench-") as d:
                    r = run_once(browser, Path(d))
                results.append(r)
                print(f"run {i + 1}: {r['ingest_alerts_per_s']:.0f} alerts/s ingested, publish-to-page "
                      f"p50 {1000 * r['latency_p50_s']:.0f} ms, p99 {1000 * r['latency_p99_s']:.0f} ms "
                      f"(max {1000 * r['latency_max_s']:.0f} ms); the 5 gateways published at "
                      f"{r['publish_alerts_per_s']:.0f} alerts/s", flush=True)
        finally:
            browser.close()
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    summary = {"runs": results, "median": med, "gateways": GATEWAYS, "alerts_per_gateway": ALERTS_PER_GATEWAY,
               "targets": {"ingest_alerts_per_s": TARGET_ALERTS_PER_S, "latency_p99_s": TARGET_P99_S},
               "met": med["ingest_alerts_per_s"] >= TARGET_ALERTS_PER_S and med["latency_p99_s"] <= TARGET_P99_S}
    print(f"median of {runs}: {med['ingest_alerts_per_s']:.0f} alerts/s ingested (target >= {TARGET_ALERTS_PER_S:.0f}), "
          f"publish-to-page p50 {1000 * med['latency_p50_s']:.0f} ms, p99 {1000 * med['latency_p99_s']:.0f} ms "
          f"(target <= {1000 * TARGET_P99_S:.0f} ms): {'met' if summary['met'] else 'NOT met'}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    run(args.runs, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
