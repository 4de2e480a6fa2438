"""Bench of the station's web pages: CPU per live-view viewer and visitor-guidance timing.

``web_viewer_cpu``: a recording-backed live station runs in this process; its CPU (all threads:
capture, pipeline, render, server) is read over ``phase_s`` with [web] off, then with [web] on
and no viewer, with one viewer (curl streaming /stream/live.mjpg in its own process, so the
client's CPU is not counted), and after the viewer left. ``web_viewer_cpu_pct`` = viewer - no
viewer, percent of one core; ``web_no_viewer_cpu_pct`` = no viewer - web off (guidance per
pair, idle server: ~0); ``web_after_viewer_cpu_pct`` = after - before (rendering stopped: ~0).

``guidance_timing``: the same station on a one-person-at-a-time scenario (looping): for every
appearance of a face after >= 0.5 s without one (capture time of that pair, station monotonic
clock), the time until a person-directed guidance message (server-sent event read by a
client in this process) arrives. p50/p99 over all appearances.

    python -m edge.bench.web --runs 3            (figures as JSON on stdout)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.bench import procstat as ps
from edge.paths import REPO_ROOT

USER, PASSWORD = "bench", "bench station view"


def _config(tmp: Path, stream: Path, port: int, web: bool = True) -> Any:
    from edge.config import validate_data
    from edge.web.auth import Users

    Users(tmp / "users.txt").set(USER, "viewer", PASSWORD)
    cam = {"kind": "recording", "path": str(stream), "loop": True}
    return validate_data({
        "station": {"id": "bench-web"}, "calibration": {"path": str(REPO_ROOT / "calibration" / "sample-gate-1.toml")},
        "sources": {"mode": "live", "rgb": cam, "thermal": cam},
        "health": {"metrics_port": 0, "log_format": "text", "log_level": "warning"},
        "web": {"enabled": web, "port": port, "users_file": str(tmp / "users.txt"),
                "session_secret_file": str(tmp / "secret")},
    })


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def station_with_web(stream: Path, on_pair: Any = None) -> Iterator[tuple[Any, Any, str, str]]:
    """(station, hub, base url, session cookie) of a live recording-backed station serving its pages."""
    import httpx

    from edge.station import Station
    from edge.web.station.app import start_station_web

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        cfg = _config(Path(tmp), stream, port)
        hub, server = start_station_web(cfg)
        station = Station(cfg, web_hub=hub, on_pair=on_pair)
        thread = threading.Thread(target=station.run, name="bench-station", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=10) as c:
                found = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
                if found is None:
                    raise RuntimeError(f"{url}/login has no CSRF field")
                token = found.group(1)
                c.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token, "next": "/"})
                cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
            yield station, hub, url, cookie
        finally:
            station.request_stop("bench done")
            thread.join(30)
            hub.close()
            server.close()


def _cpu_pct(seconds: float) -> float:
    c0, t0 = ps.cpu_s(), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (ps.cpu_s() - c0) / (time.monotonic() - t0)


def station_without_web_cpu(stream: Path, phase_s: float, warmup_s: float) -> float:
    """CPU % of one core of the same live station with [web] off (no hub, no guidance)."""
    from edge.station import Station

    with tempfile.TemporaryDirectory() as tmp:
        station = Station(_config(Path(tmp), stream, _free_port(), web=False))
        thread = threading.Thread(target=station.run, name="bench-station", daemon=True)
        thread.start()
        try:
            time.sleep(warmup_s)
            return _cpu_pct(phase_s)
        finally:
            station.request_stop("bench done")
            thread.join(30)


def web_viewer_cpu(stream: Path, phase_s: float = 10.0, warmup_s: float = 6.0) -> dict[str, Any]:
    """One run: CPU % of one core with [web] off, on with no viewer, one viewer, and after it
    left; the frames the viewer got."""
    off = station_without_web_cpu(stream, phase_s, warmup_s)
    with station_with_web(stream) as (_station, hub, url, cookie):
        time.sleep(warmup_s)
        idle = _cpu_pct(phase_s)
        curl = subprocess.Popen(["curl", "-s", "-N", "-H", f"Cookie: {cookie}", url + "/stream/live.mjpg"],
                                stdout=subprocess.PIPE)
        frames = [0]

        out = curl.stdout
        assert out is not None  # stdout=PIPE

        def count() -> None:
            for chunk in iter(lambda: out.read(65536), b""):
                frames[0] += chunk.count(b"--frame\r\n")

        reader = threading.Thread(target=count, daemon=True)
        reader.start()
        time.sleep(2.0)  # the stream is up and rendering
        f0, r0 = frames[0], hub.rendered["live"]
        t0 = time.monotonic()
        viewing = _cpu_pct(phase_s)
        fps = (frames[0] - f0) / (time.monotonic() - t0)
        rendered = hub.rendered["live"] - r0
        curl.terminate()
        curl.wait(5)
        time.sleep(2.0)  # the server notices the disconnect
        after = _cpu_pct(phase_s)
        viewers_after = hub.viewers()["live"]
    return {"cpu_pct_web_off": round(off, 2), "web_no_viewer_cpu_pct": round(idle - off, 2),
            "cpu_pct_no_viewer": round(idle, 2), "cpu_pct_one_viewer": round(viewing, 2),
            "cpu_pct_after_viewer": round(after, 2), "web_viewer_cpu_pct": round(viewing - idle, 2),
            "web_after_viewer_cpu_pct": round(after - idle, 2), "view_fps": round(fps, 2),
            "frames_rendered": rendered, "viewers_after": viewers_after}


def guidance_timing(stream: Path, seconds: float = 60.0) -> dict[str, Any]:
    """Person appears (capture time of the first pair with a face after >= 0.5 s without) ->
    first person-directed guidance message received, ms."""
    import httpx

    faces: list[tuple[int, int]] = []  # (t_ns, faces) per pair

    def on_pair(pair: Any, res: Any) -> None:
        faces.append((pair.t_ns, len(res.detections)))

    shown: list[tuple[int, str, int]] = []  # (received monotonic ns, key, track)
    with station_with_web(stream, on_pair) as (_station, _hub, url, cookie):
        stop = threading.Event()

        def listen() -> None:
            with contextlib.suppress(httpx.HTTPError), httpx.Client(
                    base_url=url, timeout=None, headers={"Cookie": cookie}) as c, c.stream("GET", "/guidance/events") as r:
                for line in r.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("data:"):
                        g = json.loads(line[5:])
                        shown.append((time.monotonic_ns(), g["message_key"], g.get("track_id", -1)))

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(seconds)
        stop.set()
    lat = []
    for a in _appearances(faces)[1:]:  # the first may have started before the listener
        nxt = next((rx for rx, key, tid in shown if rx >= a and tid >= 0 and key not in ("idle", "paused")), None)
        if nxt is not None:
            lat.append((nxt - a) / 1e6)
    return {"appearances": len(lat), "p50_ms": ps.rnd(ps.pct(lat, 50), 1), "p99_ms": ps.rnd(ps.pct(lat, 99), 1),
            "max_ms": ps.rnd(max(lat), 1) if lat else None, "samples_ms": [round(x, 1) for x in lat]}


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _appearances(faces: list[tuple[int, int]]) -> list[int]:
    """t_ns of each pair with a face after >= 0.5 s without one."""
    out, last = [], None
    for t_ns, n in faces:
        if n and (last is None or t_ns - last >= 500_000_000):
            out.append(t_ns)
        if n:
            last = t_ns
    return out


def guidance_timing_browser(stream: Path, seconds: float = 60.0) -> dict[str, Any]:
    """As guidance_timing, to the message *shown*: /kiosk open in headless Chromium, which logs
    the wall time of the paint after each message (window.guidanceShown); the appearance's
    capture time is taken to wall time on this machine's clocks (same machine)."""
    if not CHROMIUM.is_file():
        return {"skipped": f"{CHROMIUM} not installed"}
    from playwright.sync_api import sync_playwright

    faces: list[tuple[int, int]] = []
    mono_to_wall_ns = time.time_ns() - time.monotonic_ns()

    def on_pair(pair: Any, res: Any) -> None:
        faces.append((pair.t_ns, len(res.detections)))

    with station_with_web(stream, on_pair) as (_station, _hub, url, cookie), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context()
            name, _, value = cookie.partition("=")
            ctx.add_cookies([{"name": name, "value": value, "url": url}])
            page = ctx.new_page()
            page.goto(url + "/kiosk")
            shown: list[dict[str, Any]] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # the page keeps the last 200: collect as we go
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                shown += page.evaluate("() => window.guidanceShown.splice(0)")
        finally:
            browser.close()
    lat = []
    page_ready_ms = shown[0]["shown_unix_ms"] if shown else float("inf")
    for a in _appearances(faces):
        a_ms = (a + mono_to_wall_ns) / 1e6
        if a_ms < page_ready_ms:  # before the browser showed its first message
            continue
        nxt = next((e["shown_unix_ms"] for e in shown if e["shown_unix_ms"] >= a_ms and e["track"] >= 0
                    and e["key"] not in ("idle", "paused")), None)
        if nxt is not None:
            lat.append(nxt - a_ms)
    return {"appearances": len(lat), "p50_ms": ps.rnd(ps.pct(lat, 50), 1), "p99_ms": ps.rnd(ps.pct(lat, 99), 1),
            "max_ms": ps.rnd(max(lat), 1) if lat else None, "samples_ms": [round(x, 1) for x in lat]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--phase-s", type=float, default=10.0)
    p.add_argument("--stream", type=Path, default=REPO_ROOT / "sample_streams" / "walkthrough")
    p.add_argument("--guidance-stream", type=Path, default=REPO_ROOT / "sample_streams" / "febrile")
    p.add_argument("--guidance-s", type=float, default=60.0)
    p.add_argument("--browser", action="store_true",
                   help="guidance timing to the message shown in headless Chromium (/usr/bin/chromium)")
    args = p.parse_args(argv)
    runs = [web_viewer_cpu(args.stream, args.phase_s) for _ in range(args.runs)]
    out: dict[str, Any] = {"runs": runs}
    for key in ("web_viewer_cpu_pct", "web_after_viewer_cpu_pct", "web_no_viewer_cpu_pct", "cpu_pct_web_off",
                "cpu_pct_no_viewer", "cpu_pct_one_viewer", "view_fps"):
        out[key] = ps.rnd(ps.median([r[key] for r in runs]))
    timing = guidance_timing_browser if args.browser else guidance_timing
    out["guidance"] = timing(args.guidance_stream, args.guidance_s) if args.guidance_s > 0 else None
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
