"""The console's pages and actions. Every page needs a login (viewer); every state change needs
the operator role and the session's CSRF token. Database errors (locked, full, gone) answer 503
with a one-line message saying the change was not saved; nothing stored is touched."""
from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from edge.web import auth
from edge.web.console import plots, queries
from edge.web.console.live import ChangeCursor
from edge.web.console.store import OUTCOMES, SITES, ActionError, parse_close_form

log = logging.getLogger(__name__)

IMAGE_NAMES = {"rgb": "rgb_jpeg", "thermal": "thermal_jpeg"}
SSE_POLL_S = 1.0  # a stream re-reads the changes table at least this often (other console instances)
SSE_KEEPALIVE_S = 15.0
SSE_COALESCE_S = 0.02  # after a wake-up, let the rest of a burst land before reading
CSV_COLUMNS = ["event_id", "kind", "station_id", "time_utc", "verdict", "reason", "method", "core_temp_c",
               "skin_temp_c", "uncertainty_c", "threshold_c", "mask", "state", "taken_by", "outcome",
               "secondary_c", "secondary_site", "closed_by", "closed_utc", "note"]
# field calibration export: the columns `thermal-edge calibrate clinical` reads (edge/eval/clinical.py)
# first, then context columns it ignores
CALIBRATION_COLUMNS = ["SubjectID", "canthiMax1", "T_atm", "aveOralM", "site", "station_id", "time_utc",
                       "outcome", "core_temp_c_estimated", "threshold_c"]


def utc(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime(fmt)


def temp(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _db(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn database and action errors into a clear answer (JSON or page) and a log line."""
    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ActionError as e:
            log.warning("%s %s by %s: %s", request.method, request.url.path, request.session.get("user"), e)
            return _answer(request, str(e), e.status)
        except SQLAlchemyError as e:
            first = str(e).splitlines()[0][:200]
            log.error("%s %s: database error: %s", request.method, request.url.path, first)
            what = "your change was NOT saved" if request.method == "POST" else "cannot read"
            return _answer(request, f"database unavailable ({first}): {what}; try again in a moment", 503)
    for attr in ("csrf_protected",):
        if getattr(endpoint, attr, False):
            setattr(wrapper, attr, True)
    return wrapper


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or "x-csrf-token" in request.headers


def _answer(request: Request, message: str, status: int, back: str | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message} if status >= 400 else {"ok": True, "message": message}, status)
    if status >= 400:
        return request.app.state.templates.TemplateResponse(request, "error.html",
                                                            {"status": status, "detail": message}, status_code=status)
    return RedirectResponse(back or "/", 303)


def _ctx(request: Request, **extra: Any) -> dict[str, Any]:
    cfg = request.app.state.console_cfg
    return {"title": cfg.console.title, "rules": cfg.console, "utc": utc, "temp": temp, "outcomes": OUTCOMES,
            "sites": SITES, "now": time.time(), **extra}


def _read(request: Request, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    store = request.app.state.store

    def run() -> Any:
        with store.read() as c:
            return fn(c, *args)
    return run_in_threadpool(run)


def render(request: Request, name: str, **ctx: Any) -> str:
    return request.app.state.templates.get_template(name).render({**_ctx(request, **ctx), "request": request})


# --- pages --------------------------------------------------------------------------------------

@_db
async def queue_page(request: Request) -> Response:
    auth.require(request, "viewer")
    cfg = request.app.state.console_cfg

    def load(c: Any) -> tuple[Any, int, Any]:
        sel = request.query_params.get("alert")
        return queries.queue(c, cfg.console.queue_size), queries.last_change_id(c), \
            (queries.alert(c, sel) if sel else None)
    alerts, last_id, selected = await _read(request, load)
    audit = await _read(request, queries.audit_for, selected["event_id"]) if selected else []
    return request.app.state.templates.TemplateResponse(request, "queue.html", _ctx(
        request, alerts=alerts, last_change_id=last_id, selected=selected, audit=audit, page="queue"))


@_db
async def alert_page(request: Request) -> Response:
    auth.require(request, "viewer")
    eid = request.path_params["event_id"]
    a = await _read(request, queries.alert, eid)
    if a is None:
        raise HTTPException(404, f"alert {eid!r} not found (unknown id)")
    audit = await _read(request, queries.audit_for, eid)
    if request.query_params.get("fragment"):
        return HTMLResponse(render(request, "_detail.html", a=a, audit=audit))
    return RedirectResponse(f"/?alert={eid}", 303)


@_db
async def alert_image(request: Request) -> Response:
    auth.require(request, "viewer")
    name = IMAGE_NAMES.get(request.path_params["name"])
    if name is None:
        raise HTTPException(404, "unknown image name (rgb or thermal)")
    data = await _read(request, queries.image, request.path_params["event_id"], name)
    if data is None:
        raise HTTPException(404, "no such image (the station sent none, or retention deleted it)")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@_db
async def queue_api(request: Request) -> Response:
    """The queue as the store has it, for the page to reconcile after a reconnect."""
    auth.require(request, "viewer")
    cfg = request.app.state.console_cfg

    def load(c: Any) -> tuple[Any, int]:
        return queries.queue(c, cfg.console.queue_size), queries.last_change_id(c)
    alerts, last_id = await _read(request, load)
    return JSONResponse({"last_change_id": last_id, "alerts": [
        {"event_id": a["event_id"], "version": a["version"], "html": render(request, "_card.html", a=a)}
        for a in alerts]})


async def events(request: Request) -> Response:
    """Server-sent events: 'alert' (card HTML), 'station' and 'reload', each with the id to
    resume after. Resumes from Last-Event-ID (EventSource reconnects) or ?after=."""
    auth.require(request, "viewer")
    store, notifier = request.app.state.store, request.app.state.notifier
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = max(0, int(raw))
    except ValueError:
        after = 0

    def read_batch(cursor: ChangeCursor) -> tuple[list[tuple[int, str, str]], dict[str, Any], bool]:
        with store.read() as c:
            if cursor.low < queries.first_change_id(c) - 1:
                return [], {}, True  # the page is older than what we keep: it must reload
            rows = queries.changes_after(c, cursor.low) + queries.changes_in(c, list(cursor.holes))
            keys = sorted({k for _, topic, k in rows if topic == "alert"})
            return rows, queries.alerts_by_id(c, keys), False

    async def stream():
        cursor = ChangeCursor(after)
        yield "retry: 1000\n\n"
        last_sent = time.monotonic()
        while not await request.is_disconnected():
            try:
                rows, alerts, too_old = await run_in_threadpool(read_batch, cursor)
            except SQLAlchemyError as e:
                log.error("event stream: database error: %s", str(e).splitlines()[0][:200])
                yield f"event: dberror\ndata: {json.dumps(str(e).splitlines()[0][:200])}\n\n"
                await asyncio.sleep(2.0)
                continue
            if too_old:
                yield "event: reload\ndata: {}\n\n"
                return
            fresh = set(cursor.accept([i for i, _, _ in rows]))
            out, done = [], set()
            for i, topic, key in sorted(rows):
                if i not in fresh or (topic, key) in done:
                    continue
                done.add((topic, key))
                if topic == "alert" and key in alerts:
                    a = alerts[key]
                    data = {"event_id": key, "version": a["version"], "state": a["state"],
                            "time_unix_s": a["time_unix_s"], "html": render(request, "_card.html", a=a)}
                    out.append(f"id: {cursor.last_id}\nevent: alert\ndata: {json.dumps(data)}\n\n")
                elif topic == "station":
                    out.append(f"id: {cursor.last_id}\nevent: station\ndata: {json.dumps({'station_id': key})}\n\n")
            if out:
                yield "".join(out)
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > SSE_KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            if await notifier.wait(SSE_POLL_S):
                await asyncio.sleep(SSE_COALESCE_S)  # a burst: read it as one batch, not one read per alert

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- actions ------------------------------------------------------------------------------------

async def _form(request: Request) -> dict[str, Any]:
    try:
        form = await request.form()
    except Exception as e:
        raise ActionError(f"malformed form post: {e}") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _action(fn: Callable[[Any, str, auth.User, dict[str, Any]], Any], message: str):
    @_db
    @auth.csrf_protected
    async def endpoint(request: Request) -> Response:
        user = auth.require(request, "operator")
        eid = request.path_params["event_id"]
        form = await _form(request)
        await run_in_threadpool(fn, request.app.state.store, eid, user, form)
        request.app.state.notifier.notify_threadsafe()
        log.info("%s: %s %s", user.name, message, eid)
        return _answer(request, message, 200, back=f"/?alert={eid}")
    return endpoint


take = _action(lambda s, eid, user, form: s.take(eid, user.name), "acknowledged")
release = _action(lambda s, eid, user, form: s.release(eid, user.name, force=user.can("admin")), "released")
close = _action(lambda s, eid, user, form: s.close(eid, user.name, parse_close_form(form)), "closed")
note = _action(lambda s, eid, user, form: s.add_note(eid, user.name, str(form.get("note", ""))), "note added")


# --- stations, history, statistics --------------------------------------------------------------

@_db
async def stations_page(request: Request) -> Response:
    auth.require(request, "viewer")
    cfg = request.app.state.console_cfg
    rows = await _read(request, queries.stations, time.time(), cfg.console.silent_red_after_s)
    outcomes = {o.station_id: o for o in await _read(request, queries.outcomes_per_station, None)}
    ingest = request.app.state.ingest
    diag = ingest.diagnostics() if ingest is not None else {"subscriber": "not running"}
    ctx = _ctx(request, stations=rows, outcomes=outcomes, label=queries.station_label, diag=diag, page="stations")
    if request.query_params.get("fragment"):
        return HTMLResponse(request.app.state.templates.get_template("_stations.html").render({**ctx, "request": request}))
    return request.app.state.templates.TemplateResponse(request, "stations.html", ctx)


def _filter(request: Request) -> queries.HistoryFilter:
    q = request.query_params

    def when(name: str) -> float | None:
        v = (q.get(name) or "").strip()
        if not v:
            return None
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            raise ActionError(f"{name}: {v[:30]!r} is not a date/time (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)") from None
        return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()

    verdict = q.get("verdict") or None
    if verdict not in (None, "elevated", "normal", "indeterminate"):
        raise ActionError(f"verdict: {verdict[:20]!r}; choose elevated, normal or indeterminate")
    outcome = q.get("outcome") or None
    if outcome not in (None, "open", *OUTCOMES):
        raise ActionError(f"outcome: {outcome[:20]!r} is not an outcome")
    return queries.HistoryFilter(station=q.get("station") or None, from_unix_s=when("from"), to_unix_s=when("to"),
                                 verdict=verdict, outcome=outcome)


@_db
async def history_page(request: Request) -> Response:
    auth.require(request, "viewer")
    f = _filter(request)
    rows = await _read(request, queries.history, f)
    station_ids = await _read(request, queries.station_ids)
    return request.app.state.templates.TemplateResponse(request, "history.html", _ctx(
        request, rows=rows, f=f, q=request.query_params, station_ids=station_ids, page="history",
        csv_url="/history.csv" + (f"?{request.url.query}" if request.url.query else "")))


def _csv(rows: list[list[Any]], header: list[str], filename: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


@_db
async def history_csv(request: Request) -> Response:
    auth.require(request, "viewer")
    rows = await _read(request, queries.history, _filter(request))
    out = [[r["event_id"], r["kind"], r["station_id"], r["first_time_utc"], r["status"], r["reason"], r["method"],
            _num(r["core_temp_c"]), _num(r["skin_temp_c"]), _num(r["uncertainty_c"]), _num(r["threshold_c"]),
            r["mask"], r.get("state") or "", r.get("taken_by") or "", OUTCOMES.get(r.get("outcome") or "", ""),
            _num(r.get("secondary_c")), r.get("secondary_site") or "", r.get("closed_by") or "",
            utc(r.get("closed_unix_s"), "%Y-%m-%dT%H:%M:%SZ"), r.get("note") or ""] for r in rows]
    return _csv(out, CSV_COLUMNS, "thermal-edge-history.csv")


@_db
async def calibration_csv(request: Request) -> Response:
    """Closed alerts with a secondary reading, in the columns `thermal-edge calibrate clinical`
    reads: SubjectID, canthiMax1 (measured skin), T_atm (empty: not measured by the station, the
    model's reference ambient is used), aveOralM (the secondary reading); site filter, default oral."""
    auth.require(request, "viewer")
    site = request.query_params.get("site", "oral")
    if site not in (*SITES, "all"):
        raise ActionError(f"site: {site[:20]!r}; choose {', '.join(SITES)} or all")
    rows = await _read(request, queries.calibration_rows, None if site == "all" else site)
    out = [[r["event_id"], _num(r["skin_temp_c"]), "", _num(r["secondary_c"]), r["secondary_site"], r["station_id"],
            r["first_time_utc"], OUTCOMES.get(r["outcome"], r["outcome"]), _num(r["core_temp_c"]),
            _num(r["threshold_c"])] for r in rows]
    return _csv(out, CALIBRATION_COLUMNS, f"thermal-edge-field-calibration-{site}.csv")


@_db
async def stats_page(request: Request) -> Response:
    auth.require(request, "viewer")
    now = time.time()
    hours = 24
    since = (now // 3600 - hours + 1) * 3600

    def load(c: Any) -> dict[str, Any]:
        return {"per_hour": queries.screened_per_hour(c, since, hours), "mix": queries.verdict_mix(c, since),
                "reasons": queries.reasons_per_station(c, since), "outcomes": queries.outcomes_per_station(c, since),
                "outcomes_all": queries.outcomes_per_station(c, None)}
    d = await _read(request, load)
    labels = [utc(since + i * 3600, "%H") for i in range(hours)]
    o = d["outcomes"]
    charts = {
        "per_hour": plots.bars(labels, d["per_hour"], title="people screened per hour (UTC, last 24 h)", label_every=2),
        "mix": plots.bars(list(d["mix"]), list(d["mix"].values()), title="verdict mix (last 24 h)", width=320,
                          colours=[plots.COLOURS[k] for k in d["mix"]]),
        "reasons": plots.grouped(d["reasons"], title="indeterminate reasons per station (last 24 h)"),
        "alerts": plots.grouped({s.station_id: {"confirmed": s.confirmed, "not confirmed": s.not_confirmed,
                                                "other outcome": s.closed - s.confirmed - s.not_confirmed,
                                                "open": s.alerts - s.closed} for s in o},
                                title="alerts per station by outcome (last 24 h)"),
        "confirm": plots.bars([s.station_id for s in o], [round(100 * (s.ppv or 0)) for s in o],
                              width=max(320, 110 * len(o) + 50),
                              title="confirmation rate (PPV) per station, % (last 24 h)", value_fmt="{:g}"),
    }
    return request.app.state.templates.TemplateResponse(request, "stats.html", _ctx(
        request, charts=charts, outcomes_all=d["outcomes_all"], page="stats"))


async def healthz(request: Request) -> Response:
    """For monitoring (no login, no personal data): subscriber running and database readable."""
    ingest = request.app.state.ingest
    try:
        await _read(request, queries.last_change_id)
        db = "ok"
    except SQLAlchemyError as e:
        db = str(e).splitlines()[0][:200]
    ok = db == "ok" and (ingest is None or ingest.alive)
    return JSONResponse({"ok": ok, "database": db, "subscriber": bool(ingest and ingest.alive)}, 200 if ok else 503)


def console_routes() -> list[Route]:
    return [
        Route("/", queue_page), Route("/api/queue", queue_api), Route("/events", events),
        Route("/alerts/{event_id}", alert_page),
        Route("/alerts/{event_id}/image/{name}", alert_image),
        Route("/alerts/{event_id}/take", take, methods=["POST"]),
        Route("/alerts/{event_id}/release", release, methods=["POST"]),
        Route("/alerts/{event_id}/close", close, methods=["POST"]),
        Route("/alerts/{event_id}/note", note, methods=["POST"]),
        Route("/stations", stations_page), Route("/history", history_page), Route("/history.csv", history_csv),
        Route("/stats", stats_page), Route("/export/calibration.csv", calibration_csv), Route("/healthz", healthz),
    ]
