"""The station's pages on the shared web layer (edge.web.server / edge.web.auth): same login and
roles as the console (every page and stream needs at least ``viewer``).

    /                 live view: <img> of /stream/live.mjpg
    /kiosk            visitor guidance, full screen, large text (server-sent events)
    /align            alignment check: <img> of /stream/align.mjpg (read-only page)
    /stream/{view}.mjpg   multipart/x-mixed-replace JPEG frames, Cache-Control: no-store
    /guidance         the current guidance as JSON; /guidance/events: the same as SSE
    /view/stats       viewers per view, frames rendered and dropped (JSON)

``WebServer`` runs uvicorn in a thread next to the station loop (started by `thermal-edge run`
when ``[web] enabled = true``); binding beyond loopback without TLS is refused by
edge.web.server.check_bind before anything starts.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from edge.errors import UserError
from edge.web import auth
from edge.web.server import build_app, check_bind, make_templates
from edge.web.station.config import StationWebConfig
from edge.web.station.hub import VIEWS, StationHub

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "station"
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}
BOUNDARY = "frame"


def _hub(request: Request) -> StationHub:
    return request.app.state.hub


async def live_page(request: Request) -> Response:
    auth.require(request)
    return _page(request, "live.html", "live")


async def align_page(request: Request) -> Response:
    auth.require(request)
    return _page(request, "align.html", "align",
                 reference_distance_m=_hub(request).registration.reference_distance_m)


async def kiosk_page(request: Request) -> Response:
    auth.require(request)
    return _page(request, "kiosk.html", "kiosk", paused_text=request.app.state.paused_text)


def _page(request: Request, name: str, active: str, **extra: Any) -> Response:
    app_state = request.app.state
    return app_state.templates.TemplateResponse(request, name, {"active": active, "station_id": app_state.station_id,
                                                                **extra})


async def stream(request: Request) -> Response:
    """MJPEG: one part per rendered frame; the view renders only while a stream is open."""
    auth.require(request)
    view = request.path_params["view"]
    if view not in VIEWS:
        raise HTTPException(404, f"no view {view!r} (views: {', '.join(VIEWS)})")
    hub = _hub(request)

    async def parts() -> AsyncIterator[bytes]:
        with hub.viewer(view):  # leaves (and rendering stops) when the client goes: the task is cancelled
            seq = 0
            while not hub.closed:
                frame = await anyio.to_thread.run_sync(hub.next_frame, view, seq, 1.0, abandon_on_cancel=True)
                if frame is None:
                    if await request.is_disconnected():
                        return
                    continue
                seq = frame.seq
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
                       .encode() + frame.jpeg + b"\r\n")

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=NO_STORE)


def _guidance_json(request: Request, seq: int, g: Any, temp_c: float | None) -> dict[str, Any]:
    if g is None:  # no pair processed yet
        return {"seq": seq, "message_key": "paused", "text": request.app.state.paused_text, "reason": "starting",
                "track_id": -1, "people": 0}
    out = {"seq": seq, **g.body()}
    if request.app.state.web.kiosk_show_temperature and temp_c is not None:
        out["temp_c"] = round(float(temp_c), 1)
    return out


async def guidance(request: Request) -> Response:
    auth.require(request)
    seq, g, temp = _hub(request).next_guidance(1 << 62, 0.0)
    return JSONResponse(_guidance_json(request, seq, g, temp), headers=NO_STORE)


async def guidance_events(request: Request) -> Response:
    """Server-sent events: the guidance message each time it changes (and every 15 s)."""
    auth.require(request)
    hub = _hub(request)

    async def events() -> AsyncIterator[bytes]:
        seq = -1
        while not hub.closed:
            new_seq, g, temp = await anyio.to_thread.run_sync(hub.next_guidance, seq, 15.0, abandon_on_cancel=True)
            if await request.is_disconnected():
                return
            seq = new_seq
            yield f"data: {json.dumps(_guidance_json(request, seq, g, temp))}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream", headers=NO_STORE)


async def view_stats(request: Request) -> Response:
    """Open streams per view, frames drawn, view frames dropped (replaced before drawing)."""
    auth.require(request)
    hub = _hub(request)
    return JSONResponse({"viewers": hub.viewers(), "rendered": dict(hub.rendered), "dropped": hub.dropped,
                         "render_errors": hub.render_errors}, headers=NO_STORE)


def station_routes() -> list[BaseRoute]:
    return [
        Route("/", live_page), Route("/kiosk", kiosk_page), Route("/align", align_page),
        Route("/stream/{view}.mjpg", stream), Route("/guidance", guidance), Route("/guidance/events", guidance_events),
        Route("/view/stats", view_stats),
    ]


def build_station_app(cfg: StationWebConfig, hub: StationHub, station_id: str, paused_text: str) -> Starlette:
    """paused_text: the guidance 'paused' message, shown by the kiosk while the station is unreachable."""
    return build_app(cfg, station_routes(), make_templates(TEMPLATES),
                     state={"hub": hub, "station_id": station_id, "paused_text": paused_text})


class WebServer:
    """uvicorn in a daemon thread, serving ``app`` until ``close()``."""

    def __init__(self, app: Starlette, cfg: StationWebConfig):
        import uvicorn

        check_bind(cfg)
        self.cfg = cfg
        self.server = uvicorn.Server(uvicorn.Config(
            app, host=cfg.host, port=cfg.port, ssl_certfile=cfg.tls_cert, ssl_keyfile=cfg.tls_key,
            log_level="warning", access_log=False, proxy_headers=False, server_header=False,
            timeout_graceful_shutdown=1, lifespan="off"))
        self._thread = threading.Thread(target=self.server.run, name="web-server", daemon=True)

    def start(self, timeout_s: float = 10.0) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"web: cannot serve on {self.cfg.host}:{self.cfg.port} (port in use?)")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(5.0)


def start_station_web(cfg: Any) -> tuple[StationHub, WebServer]:
    """The live view's hub and its web server (edge.web.station), started; refuses a bind beyond
    loopback without TLS (UserError) before anything listens."""
    from edge.thermal.calibration import load_calibration

    w = cfg.web
    hub = StationHub(load_calibration(cfg.calibration.path).registration, thermal_units=cfg.sources.thermal.units,
                     max_fps=w.max_fps, jpeg_quality=w.jpeg_quality, station_id=cfg.station.id).start()
    try:
        server = WebServer(build_station_app(w, hub, cfg.station.id, cfg.guidance.text("paused")), w).start()
    except OSError as e:
        hub.close()
        raise UserError(f"web.port={w.port}: {e}") from None
    except BaseException:
        hub.close()
        raise
    return hub, server
