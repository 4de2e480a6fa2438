"""Read side of the console store: the queue, one alert with its audit trail, changes to follow,
stations with their liveness and screening figures, history search, and the per-station numbers
behind the statistics page. Pure functions of a connection and arguments (``now`` passed in)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edge.web.console import schema as t
from edge.web.console.store import NEEDS_READING

ACTIVE_STATES = ("ok", "starting")  # station states that are not 'degraded'


def queue(c: Any, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts, newest first (by measurement time)."""
    rows = c.execute(sa.select(t.alerts).order_by(t.alerts.c.time_unix_s.desc(), t.alerts.c.received_unix_s.desc(),
                                                  t.alerts.c.event_id.desc())
                     .limit(limit))
    return [dict(r._mapping) for r in rows]


def alert(c: Any, event_id: str) -> dict[str, Any] | None:
    row = c.execute(sa.select(t.alerts).where(t.alerts.c.event_id == event_id)).first()
    return dict(row._mapping) if row else None


def alerts_by_id(c: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = c.execute(sa.select(t.alerts).where(t.alerts.c.event_id.in_(ids)))
    return {r.event_id: dict(r._mapping) for r in rows}


def audit_for(c: Any, event_id: str) -> list[dict[str, Any]]:
    rows = c.execute(sa.select(t.audit).where(t.audit.c.event_id == event_id).order_by(t.audit.c.id))
    return [dict(r._mapping) for r in rows]


def image(c: Any, event_id: str, name: str) -> bytes | None:
    return c.execute(sa.select(t.images.c.data).where(t.images.c.event_id == event_id,
                                                      t.images.c.name == name)).scalar()


def changes_after(c: Any, after_id: int, limit: int = 500) -> list[tuple[int, str, str]]:
    rows = c.execute(sa.select(t.changes.c.id, t.changes.c.topic, t.changes.c.key)
                     .where(t.changes.c.id > after_id).order_by(t.changes.c.id).limit(limit))
    return [(r.id, r.topic, r.key) for r in rows]


def changes_in(c: Any, ids: list[int]) -> list[tuple[int, str, str]]:
    if not ids:
        return []
    rows = c.execute(sa.select(t.changes.c.id, t.changes.c.topic, t.changes.c.key).where(t.changes.c.id.in_(ids)))
    return [(r.id, r.topic, r.key) for r in rows]


def last_change_id(c: Any) -> int:
    return int(c.execute(sa.select(sa.func.max(t.changes.c.id))).scalar() or 0)


def first_change_id(c: Any) -> int:
    return int(c.execute(sa.select(sa.func.min(t.changes.c.id))).scalar() or 0)


# --- stations -------------------------------------------------------------------------------

@dataclass
class StationRow:
    station_id: str
    liveness: str  # online / silent / never
    state: str  # the station's own state (ok, degraded, starting, ended) or '?' without status
    silent_s: float | None
    red: bool
    cameras: list[tuple[str, str]]
    blackbody: str
    pairs_per_s: float | None
    last_alert_unix_s: float | None
    screened_today: int
    indeterminate_share: float | None
    top_reasons: list[tuple[str, int]]
    alerts_today: int
    version: str


@dataclass
class _Unheard:
    station_id: str
    heard_unix_s: float | None = None
    heartbeat_s: float | None = None
    status: str | None = None


def day_start(now: float) -> float:
    d = datetime.fromtimestamp(now, UTC)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def stations(c: Any, now: float, red_after_s: float) -> list[StationRow]:
    """One row per station known from any message, with liveness judged from heartbeats:
    silent when 3 heartbeat intervals passed without hearing from it, red after ``red_after_s``."""
    since = day_start(now)
    sc = t.screenings.c
    screened = {r.station_id: (r.n, r.indet) for r in c.execute(
        sa.select(sc.station_id, sa.func.count().label("n"),
                  sa.func.sum(sa.case((sc.status == "indeterminate", 1), else_=0)).label("indet"))
        .where(sc.time_unix_s >= since).group_by(sc.station_id))}
    reasons: dict[str, Counter] = {}
    for r in c.execute(sa.select(sc.station_id, sc.reason, sa.func.count().label("n"))
                       .where(sc.time_unix_s >= since, sc.status == "indeterminate")
                       .group_by(sc.station_id, sc.reason)):
        reasons.setdefault(r.station_id, Counter())[r.reason or "?"] += r.n
    ac = t.alerts.c
    alerts_today = dict(c.execute(sa.select(ac.station_id, sa.func.count()).where(ac.time_unix_s >= since)
                                  .group_by(ac.station_id)).all())
    last_alert = dict(c.execute(sa.select(ac.station_id, sa.func.max(ac.received_unix_s)).group_by(ac.station_id)).all())
    rows = list(c.execute(sa.select(t.stations)))
    known = {r.station_id for r in rows}
    # a station known only from alerts caught up from its journal (never heard live)
    rows += [_Unheard(sid) for sid in sorted(set(last_alert) - known)]
    out = []
    for s in sorted(rows, key=lambda r: r.station_id):
        status = json.loads(s.status) if s.status else {}
        silent_s = None if s.heard_unix_s is None else max(0.0, now - s.heard_unix_s)
        limit = 3 * (s.heartbeat_s or 1.0)
        liveness = "never" if silent_s is None else ("silent" if silent_s > limit else "online")
        cams = status.get("cameras") if isinstance(status.get("cameras"), dict) else {}
        bb = status.get("blackbody")
        bb_state = str(bb.get("state", "?")) if isinstance(bb, dict) else (str(bb) if bb else "?")
        n, indet = screened.get(s.station_id, (0, 0))
        fps = status.get("paired_fps")
        out.append(StationRow(
            station_id=s.station_id, liveness=liveness, state=str(status.get("state", "?")), silent_s=silent_s,
            red=silent_s is None or silent_s > red_after_s,
            cameras=[(str(k), str(v.get("state", "?")) if isinstance(v, dict) else "?") for k, v in cams.items()],
            blackbody=bb_state, pairs_per_s=float(fps) if isinstance(fps, (int, float)) else None,
            last_alert_unix_s=last_alert.get(s.station_id), screened_today=int(n or 0),
            indeterminate_share=(indet or 0) / n if n else None,
            top_reasons=reasons.get(s.station_id, Counter()).most_common(3),
            alerts_today=int(alerts_today.get(s.station_id, 0)), version=str(status.get("version", ""))))
    return out


def station_label(row: StationRow) -> str:
    """online / silent / degraded: what the operator reads first."""
    if row.liveness != "online":
        return "silent" if row.liveness == "silent" else "never heard"
    if row.state not in ACTIVE_STATES or row.blackbody not in ("ok", "?"):
        return "degraded" if row.state != "ended" else "ended"
    return "online"


# --- history --------------------------------------------------------------------------------

@dataclass
class HistoryFilter:
    station: str | None = None
    from_unix_s: float | None = None
    to_unix_s: float | None = None
    verdict: str | None = None  # elevated / normal / indeterminate
    outcome: str | None = None  # an OUTCOMES key, or 'open'
    limit: int = 1000


def history(c: Any, f: HistoryFilter) -> list[dict[str, Any]]:
    """People screened (screenings) and alerts, newest first; an alert stands for its person's
    screening. Each row: kind, event_id, station_id, time, verdict fields, alert state/outcome."""
    rows: list[dict[str, Any]] = []

    def where(table: sa.Table) -> list[Any]:
        w = []
        if f.station:
            w.append(table.c.station_id == f.station)
        if f.from_unix_s is not None:
            w.append(table.c.time_unix_s >= f.from_unix_s)
        if f.to_unix_s is not None:
            w.append(table.c.time_unix_s < f.to_unix_s)
        if f.verdict:
            w.append(table.c.status == f.verdict)
        return w

    aw = where(t.alerts)
    if f.outcome == "open":
        aw.append(t.alerts.c.state != "closed")
    elif f.outcome:
        aw.append(t.alerts.c.outcome == f.outcome)
    for r in c.execute(sa.select(t.alerts).where(*aw).order_by(t.alerts.c.time_unix_s.desc()).limit(f.limit)):
        rows.append({"kind": "alert", **r._mapping})
    if not f.outcome and f.verdict in (None, "", "normal", "indeterminate", "elevated"):
        sc = t.screenings.c
        alerted = sa.select(t.alerts.c.person_key)
        q = sa.select(t.screenings).where(*where(t.screenings), sc.person_key.not_in(alerted))
        for r in c.execute(q.order_by(sc.time_unix_s.desc()).limit(f.limit)):
            rows.append({"kind": "screening", **r._mapping})
    rows.sort(key=lambda r: (r["time_unix_s"], r["event_id"]), reverse=True)
    return rows[:f.limit]


def station_ids(c: Any) -> list[str]:
    q = sa.union(sa.select(t.stations.c.station_id), sa.select(t.alerts.c.station_id),
                 sa.select(t.screenings.c.station_id))
    return sorted(c.execute(q).scalars())


# --- statistics -----------------------------------------------------------------------------

def screened_per_hour(c: Any, since: float, hours: int) -> list[int]:
    """People screened per hour bucket from ``since`` (``hours`` buckets)."""
    counts = [0] * hours
    for (ts,) in c.execute(sa.select(t.screenings.c.time_unix_s).where(t.screenings.c.time_unix_s >= since)):
        i = int((ts - since) // 3600)
        if 0 <= i < hours:
            counts[i] += 1
    return counts


def verdict_mix(c: Any, since: float) -> dict[str, int]:
    sc = t.screenings.c
    mix = {"elevated": 0, "normal": 0, "indeterminate": 0}
    for status, n in c.execute(sa.select(sc.status, sa.func.count()).where(sc.time_unix_s >= since)
                               .group_by(sc.status)):
        mix[status] = int(n)
    return mix


def reasons_per_station(c: Any, since: float) -> dict[str, dict[str, int]]:
    sc = t.screenings.c
    out: dict[str, dict[str, int]] = {}
    for st, reason, n in c.execute(sa.select(sc.station_id, sc.reason, sa.func.count())
                                   .where(sc.time_unix_s >= since, sc.status == "indeterminate")
                                   .group_by(sc.station_id, sc.reason)):
        out.setdefault(st, {})[reason or "?"] = int(n)
    return out


@dataclass
class StationOutcomes:
    station_id: str
    alerts: int
    closed: int
    confirmed: int  # outcome confirmed elevated
    not_confirmed: int

    @property
    def ppv(self) -> float | None:
        """Share of alerts confirmed by a secondary reading among those with a reading-based outcome."""
        n = self.confirmed + self.not_confirmed
        return self.confirmed / n if n else None


def outcomes_per_station(c: Any, since: float | None = None) -> list[StationOutcomes]:
    ac = t.alerts.c
    q = sa.select(ac.station_id, sa.func.count().label("n"),
                  sa.func.sum(sa.case((ac.state == "closed", 1), else_=0)).label("closed"),
                  sa.func.sum(sa.case((ac.outcome == NEEDS_READING[0], 1), else_=0)).label("conf"),
                  sa.func.sum(sa.case((ac.outcome == NEEDS_READING[1], 1), else_=0)).label("notconf"))
    if since is not None:
        q = q.where(ac.time_unix_s >= since)
    return [StationOutcomes(r.station_id, int(r.n), int(r.closed or 0), int(r.conf or 0), int(r.notconf or 0))
            for r in c.execute(q.group_by(ac.station_id).order_by(ac.station_id))]


def calibration_rows(c: Any, site: str | None) -> list[dict[str, Any]]:
    """Closed alerts with a secondary reading and a measured skin temperature (oldest first)."""
    ac = t.alerts.c
    q = sa.select(t.alerts).where(ac.state == "closed", ac.secondary_c.is_not(None), ac.skin_temp_c.is_not(None))
    if site:
        q = q.where(ac.secondary_site == site)
    return [dict(r._mapping) for r in c.execute(q.order_by(ac.time_unix_s, ac.event_id))]
