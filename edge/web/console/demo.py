"""`thermal-edge console demo` (``make console``): the console on the bundled sample streams.

Each sample stream plays one gateway (``demo-gate-1`` ...): a real feed (``open_feed``: PUB,
journal, catch-up, heartbeats, images on) on a loopback port, the full pipeline replaying the
recording into it, and a status message every 2 s. The console subscribes to all of them exactly
as it would to real gateways. A demo operator login is created and printed.
"""
from __future__ import annotations

import logging
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

import zmq

from edge.errors import UserError
from edge.paths import REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_STREAMS = ("walkthrough", "febrile", "population", "masked_queue", "glasses")
DEMO_USER = "demo"
LOOP_PAUSE_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoGateway:
    """One simulated gateway: a feed on fixed loopback ports replaying one recording."""

    def __init__(self, ctx: zmq.Context, station_id: str, stream: Path, journal: Path) -> None:
        self.ctx, self.station_id, self.stream, self.journal = ctx, station_id, stream, journal
        self.port, self.catchup_port = _free_port(), _free_port()
        self.last_status: dict[str, Any] = {"state": "starting", "cameras": {}, "blackbody": {"state": "unknown"}}

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def catchup_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.catchup_port}"

    def open(self) -> Any:
        from edge.feed.publishing import FeedConfig, open_feed

        cfg = FeedConfig(endpoint=self.endpoint, catchup_endpoint=self.catchup_endpoint, journal_path=str(self.journal),
                         include_images=True, heartbeat_s=1.0)
        return open_feed(self.ctx, cfg, self.station_id)

    def replay_once(self, feed: Any) -> None:
        """Replay the recording through the pipeline into ``feed`` (a fresh pipeline: new tracks)."""
        from edge.feed.publishing import utc_iso
        from edge.pipeline import replay

        self.last_status = {"state": "ok", "source": f"replay of {self.stream.name}",
                            "cameras": {"rgb": {"state": "online"}, "thermal": {"state": "online"}},
                            "blackbody": {"state": "ok"}}
        feed.publisher.publish_status(self.last_status, utc_iso())
        result = replay(self.stream, publisher=_LivePublisher(feed.publisher))
        bb = result.frames[-1].blackbody_state if result.frames else "unknown"
        self.last_status = {**self.last_status, "paired_fps": round(result.pairs_per_s, 1),
                            "blackbody": {"state": str(getattr(bb, "value", bb))},
                            "pairing": {"pairs": result.pairs}}
        feed.publisher.publish_status(self.last_status, utc_iso())


class _LivePublisher:
    """The feed's Publisher, stamping events with the time they are published instead of the
    recording's capture time, so the demo looks live (today's statistics, stale highlight)."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher

    def publish_event(self, event: Any, time_utc: str) -> dict[str, Any]:
        from edge.feed.publishing import utc_iso

        return self._publisher.publish_event(event, utc_iso())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._publisher, name)


def _status_loop(gateways: list[DemoGateway], feeds: dict[str, Any], stop: threading.Event) -> None:
    from edge.feed.publishing import utc_iso

    while not stop.wait(2.0):
        for g in gateways:
            feed = feeds.get(g.station_id)
            if feed is not None:
                try:
                    feed.publisher.publish_status(g.last_status, utc_iso())
                except Exception:  # a feed being reopened between replays
                    pass


def _replays(gateways: list[DemoGateway], feeds: dict[str, Any], stop: threading.Event, loop: bool) -> None:
    rounds = 0
    while not stop.is_set():
        for g in gateways:
            if stop.is_set():
                break
            old = feeds.pop(g.station_id, None)
            if old is not None:
                old.close()  # a new run of the pipeline is a new publisher epoch: track ids restart
            try:
                feeds[g.station_id] = feed = g.open()
                g.replay_once(feed)
            except Exception as e:  # the console keeps running; say why this gateway stopped
                log.error("demo gateway %s (%s): %s", g.station_id, g.stream, e)
        rounds += 1
        if not loop:
            break
        stop.wait(LOOP_PAUSE_S)
    stop.wait()
    for station in list(feeds):  # closed by the thread that opened them (SQLite journals are per thread)
        feeds.pop(station).close()


def _demo_password(folder: Path) -> str:
    f = folder / "demo-login.txt"
    if f.is_file():
        return f.read_text().split()[1]
    password = secrets.token_urlsafe(9)
    return password


def run_demo(folder: Path, port: int, streams: list[str] | None, *, loop: bool = False) -> int:
    from edge.web.auth import Users
    from edge.web.console.app import run_console
    from edge.web.console.config import validate_console

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in streams or DEFAULT_STREAMS:
        p = Path(s) if Path(s).is_dir() else REPO_ROOT / "sample_streams" / s
        if not (p / "stream.json").is_file():
            raise UserError(f"{s}: not a recording (no stream.json); run `make setup` to render the sample streams")
        paths.append(p)
    ctx = zmq.Context()
    gateways = [DemoGateway(ctx, f"demo-gate-{i + 1}", p, folder / f"journal-gate-{i + 1}.sqlite")
                for i, p in enumerate(paths)]
    cfg = validate_console({
        "web": {"host": "127.0.0.1", "port": port, "users_file": str(folder / "users.txt"),
                "session_secret_file": str(folder / "session.secret")},
        "feed": {"endpoints": [g.endpoint for g in gateways], "catchup": [g.catchup_endpoint for g in gateways]},
        "store": {"sqlite_path": str(folder / "console.sqlite")},
        "console": {"title": "demo control room", "stale_after_s": 60},
    })
    password = _demo_password(folder)
    Users(cfg.web.users_file).set(DEMO_USER, "operator", password)
    (folder / "demo-login.txt").write_text(f"{DEMO_USER} {password}\n")
    print(f"console demo: {len(gateways)} simulated gateways replaying {', '.join(p.name for p in paths)}", flush=True)
    print(f"console demo: open {cfg.web.url} and log in as  {DEMO_USER} / {password}  (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    feeds: dict[str, Any] = {}
    threads = [threading.Thread(target=_replays, args=(gateways, feeds, stop, loop), daemon=True, name="demo-replays"),
               threading.Thread(target=_status_loop, args=(gateways, feeds, stop), daemon=True, name="demo-status")]
    for t in threads:
        t.start()
    try:
        run_console(cfg)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        ctx.term()
    return 0
