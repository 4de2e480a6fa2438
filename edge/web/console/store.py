"""The console store: what the feed brings (idempotent ingest) and what operators do (take, close,
note), each change with its audit entry and a ``changes`` row in the same transaction.

``ConsoleStore`` also implements the Store interface of ``edge.feed.client.Listener`` (has,
has_position, add, position, set_position, positions) on the same database, so the console's dedupe and
resume positions live next to the alerts they protect: a restarted console asks each gateway's
journal for exactly what it does not hold.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from edge.errors import UserError
from edge.feed.messages import Message
from edge.web.console import schema as t

log = logging.getLogger(__name__)

Position = tuple[int, int]
OUTCOMES = {  # value -> label; one source for the form, the CSV and the statistics
    "confirmed": "confirmed elevated",
    "not_confirmed": "not confirmed",
    "not_found": "person not found",
    "left": "left before secondary screening",
}
NEEDS_READING = ("confirmed", "not_confirmed")  # outcomes that rest on a secondary measurement
SITES = ("oral", "tympanic", "temporal")
SECONDARY_RANGE_C = (30.0, 45.0)  # a clinical thermometer reading outside this is a typo
MAX_NOTE_CHARS = 2000


class ActionError(UserError):
    """An operator action that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def unix_s(time_utc: str) -> float:
    """ISO 8601 UTC ('...Z') -> unix seconds."""
    return datetime.fromisoformat(time_utc.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class CloseForm:
    outcome: str
    secondary_c: float | None
    site: str | None
    note: str


def parse_close_form(form: dict[str, Any]) -> CloseForm:
    """Validate the close form (outcome, secondary reading, site, note); ActionError naming the field."""
    outcome = str(form.get("outcome") or "").strip()
    if outcome not in OUTCOMES:
        raise ActionError(f"outcome: choose one of {', '.join(OUTCOMES.values())}")
    raw = str(form.get("secondary_c") or "").strip().replace(",", ".")
    secondary = None
    if raw:
        try:
            secondary = float(raw)
        except ValueError:
            raise ActionError(f"secondary reading: {raw[:20]!r} is not a number in °C") from None
        lo, hi = SECONDARY_RANGE_C
        if not math.isfinite(secondary) or not lo <= secondary <= hi:
            raise ActionError(f"secondary reading: {raw[:20]} °C is outside {lo:g}-{hi:g} °C (a typo?)")
    site = str(form.get("site") or "").strip() or None
    if site is not None and site not in SITES:
        raise ActionError(f"site: choose one of {', '.join(SITES)}")
    if outcome in NEEDS_READING and (secondary is None or site is None):
        raise ActionError(f"outcome '{OUTCOMES[outcome]}' needs the secondary reading (°C) and its site")
    if secondary is not None and site is None:
        raise ActionError("site: say where the secondary reading was taken (oral, tympanic, temporal)")
    note = str(form.get("note") or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ActionError(f"note: {len(note)} characters; at most {MAX_NOTE_CHARS}")
    return CloseForm(outcome, round(secondary, 2) if secondary is not None else None, site, note)


def _event_values(body: dict[str, Any]) -> dict[str, Any]:
    v = body["verdict"]
    return {
        "last_time_utc": body["time_utc"], "last_type": body["type"], "last_seq": body["seq"],
        "status": v["status"], "reason": v.get("reason", ""), "method": v["method"],
        "core_temp_c": body.get("core_temp_c"), "skin_temp_c": body.get("skin_temp_c"),
        "uncertainty_c": body.get("uncertainty_c"), "threshold_c": body.get("threshold_c"),
        "mask": body["mask"], "mask_conf": body["mask_conf"], "score": body["score"], "n_frames": body["n_frames"],
    }


# The ingest path runs per feed message: statements are built once, values go in as parameters
# (building .values(...) per call cost more than the SQL itself).
_m, _p = t.feed_messages.c, t.feed_positions.c
HAS_MSG = sa.select(1).where(_m.msg_id == sa.bindparam("b_msg"))
HAS_POS = sa.select(1).where(_m.publisher_id == sa.bindparam("b_pub"), _m.kind == sa.bindparam("b_kind"),
                             _m.epoch == sa.bindparam("b_epoch"), _m.seq == sa.bindparam("b_seq"))
SET_POS = sa.update(t.feed_positions).where(_p.publisher_id == sa.bindparam("b_pub"), _p.kind == sa.bindparam("b_kind"))
_BY_EVENT = {tab.name: tab.c.event_id == sa.bindparam("b_eid") for tab in (t.alerts, t.screenings)}
LAST_SEQ = {tab.name: sa.select(tab.c.last_seq).where(_BY_EVENT[tab.name]) for tab in (t.alerts, t.screenings)}
BUMP = {t.alerts.name: sa.update(t.alerts).where(_BY_EVENT["alerts"]).values(
            n_messages=t.alerts.c.n_messages + 1, version=t.alerts.c.version + 1),
        t.screenings.name: sa.update(t.screenings).where(_BY_EVENT["screenings"]).values(
            n_messages=t.screenings.c.n_messages + 1)}
STATION = sa.update(t.stations).where(t.stations.c.station_id == sa.bindparam("b_sid"))
POSITION_FLUSH_S = 0.5
RECENT_IDS = 20_000  # msg ids this process stored lately: has()/add() answer from memory


class ConsoleStore:
    """All reads and writes of the console. ``engine``: from ``schema.make_engine`` (passed in)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.reader = engine.execution_options(**{t.READ_ONLY: True})
        self._recent: dict[str, None] = {}  # insertion-ordered set of msg ids stored by this process
        self._positions: dict[tuple[str, str], Position] = {}  # Listener positions, newest
        self._dirty: set[tuple[str, str]] = set()  # of which not yet written
        self._flushed_at = time.monotonic()

    def _remember(self, msg_id: str) -> None:
        self._recent[msg_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.pop(next(iter(self._recent)))

    def read(self) -> Any:
        return self.reader.connect()

    def write(self) -> Any:
        return self.engine.begin()

    # --- Listener Store interface ---------------------------------------------------------------

    def has(self, msg_id: str) -> bool:
        if msg_id in self._recent:
            return True
        with self.read() as c:  # stored before this process started, or by another console instance
            return c.execute(HAS_MSG, {"b_msg": msg_id}).first() is not None

    def has_position(self, publisher_id: str, kind: str, epoch: int, seq: int) -> bool:
        with self.read() as c:
            return c.execute(HAS_POS, {"b_pub": publisher_id, "b_kind": kind, "b_epoch": epoch,
                                       "b_seq": seq}).first() is not None

    def add(self, msg: Message) -> None:
        if msg.msg_id not in self._recent:
            self.ingest(msg)  # idempotent: a message ingested by on_message is already there

    def position(self, publisher_id: str, kind: str) -> Position | None:
        if (publisher_id, kind) in self._positions:
            return self._positions[(publisher_id, kind)]
        with self.read() as c:
            row = c.execute(sa.select(_p.epoch, _p.seq).where(_p.publisher_id == publisher_id, _p.kind == kind)).first()
        return (row[0], row[1]) if row else None

    def set_position(self, publisher_id: str, kind: str, pos: Position) -> None:
        """Kept in memory and written with the next stored message, or within POSITION_FLUSH_S.
        Safe to lose in a crash: a restarted console resumes from an older position, and the
        messages caught up again are dropped as duplicates by ``has``."""
        self._positions[(publisher_id, kind)] = pos
        self._dirty.add((publisher_id, kind))
        if time.monotonic() - self._flushed_at > POSITION_FLUSH_S:
            with self.write() as c:
                self._flush_positions(c)

    def _flush_positions(self, c: Any) -> None:
        for pub, kind in sorted(self._dirty):
            epoch, seq = self._positions[(pub, kind)]
            if c.execute(SET_POS, {"b_pub": pub, "b_kind": kind, "epoch": epoch, "seq": seq}).rowcount == 0:
                c.execute(t.feed_positions.insert(), {"publisher_id": pub, "kind": kind, "epoch": epoch, "seq": seq})
        self._dirty.clear()
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        """Write pending positions (the ingest calls it when it stops)."""
        if self._dirty:
            with self.write() as c:
                self._flush_positions(c)

    def positions(self, kind: str) -> dict[str, list[int]]:
        with self.read() as c:
            out = {r.publisher_id: [r.epoch, r.seq]
                   for r in c.execute(sa.select(_p.publisher_id, _p.epoch, _p.seq).where(_p.kind == kind))}
        out.update({pub: list(pos) for (pub, k), pos in self._positions.items() if k == kind})
        return out

    # --- ingest -------------------------------------------------------------------------------

    def ingest(self, msg: Message, now: float | None = None) -> bool:
        """Store one feed message (alert, screening or status); False if already held. One
        transaction: the message, the alert/screening row, images, audit and change entries."""
        now = time.time() if now is None else now
        body = msg.body
        try:
            with self.write() as c:
                if msg.kind == "status":
                    self._status(c, body, now)
                    return True
                if c.execute(HAS_MSG, {"b_msg": msg.msg_id}).first() is not None:
                    return False
                c.execute(t.feed_messages.insert(), {
                    "msg_id": msg.msg_id, "publisher_id": body["publisher_id"], "kind": msg.kind,
                    "epoch": body["epoch"], "seq": body["seq"], "station_id": body["station_id"],
                    "event_id": body.get("event_id"), "time_utc": body["time_utc"], "received_unix_s": now,
                    "body": json.dumps(body)})
                self._event(c, msg, now)
                if self._dirty and time.monotonic() - self._flushed_at > POSITION_FLUSH_S:
                    self._flush_positions(c)
            self._remember(msg.msg_id)
            return True
        except IntegrityError:  # another console instance stored it first (shared PostgreSQL)
            return False

    def _event(self, c: Any, msg: Message, now: float) -> None:
        body = msg.body
        table = t.alerts if msg.kind == "alert" else t.screenings
        values = _event_values(body)
        last_seq = c.execute(LAST_SEQ[table.name], {"b_eid": body["event_id"]}).scalar()
        if last_seq is None:
            c.execute(table.insert(), {
                "event_id": body["event_id"], "station_id": body["station_id"], "publisher_id": body["publisher_id"],
                "person_key": f"{body['publisher_id']}-{body['epoch']}-{body['track_id']}",
                "track_id": body["track_id"], "first_time_utc": body["time_utc"],
                "time_unix_s": unix_s(body["time_utc"]), "received_unix_s": now, "n_messages": 1, **values,
                **({"images": "", "images_deleted": False, "state": "open", "version": 1}
                   if msg.kind == "alert" else {})})
        else:  # catch-up may bring an older message after a newer one: count it, keep the newer values
            c.execute(BUMP[table.name], {"b_eid": body["event_id"], **(values if body["seq"] > last_seq else {})})
        if msg.kind != "alert":
            return
        if msg.images:
            for name, data in msg.images.items():
                c.execute(sa.delete(t.images).where(t.images.c.event_id == body["event_id"], t.images.c.name == name))
                c.execute(sa.insert(t.images).values(event_id=body["event_id"], name=name, data=data,
                                                     received_unix_s=now))
            have = c.execute(sa.select(t.images.c.name).where(t.images.c.event_id == body["event_id"])).scalars()
            c.execute(sa.update(t.alerts).where(t.alerts.c.event_id == body["event_id"])
                      .values(images=",".join(sorted(have))))
        core = body.get("core_temp_c")
        self._audit(c, body["event_id"], now, f"station {body['station_id']}", f"received {body['type']}",
                    f"core {'n/a' if core is None else f'{core:.1f}'} °C, message {body['msg_id']}")

    def _touch_station(self, c: Any, body: dict[str, Any], now: float, *,
                       status: str | None = None, heard: float | None = None, heartbeat_s: float | None = None) -> None:
        values: dict[str, Any] = {"publisher_id": body["publisher_id"]}
        if status is not None:
            values.update(status=status, status_unix_s=now)
        if heard is not None:
            values["heard_unix_s"] = heard
        if heartbeat_s is not None:
            values["heartbeat_s"] = heartbeat_s
        if c.execute(STATION, {"b_sid": body["station_id"], **values}).rowcount == 0:
            c.execute(t.stations.insert(), {"station_id": body["station_id"], **values})
        if status is not None:  # (the stations page polls; an alert is announced as an alert change)
            self._change(c, now, "station", body["station_id"])

    def _status(self, c: Any, body: dict[str, Any], now: float) -> None:
        self._touch_station(c, body, now, status=json.dumps(body["status"]), heard=now,
                            heartbeat_s=None)

    def heard(self, body: dict[str, Any], now: float | None = None) -> None:
        """A message (heartbeat or other) from a gateway: it is alive."""
        now = time.time() if now is None else now
        with self.write() as c:
            self._touch_station(c, body, now, heard=now, heartbeat_s=body.get("interval_s"))

    def _audit(self, c: Any, event_id: str, now: float, actor: str, action: str, detail: str) -> None:
        c.execute(t.audit.insert(), {"event_id": event_id, "at_unix_s": now, "actor": actor, "action": action,
                                     "detail": detail})
        self._change(c, now, "alert", event_id)

    def _change(self, c: Any, now: float, topic: str, key: str) -> None:
        c.execute(t.changes.insert(), {"at_unix_s": now, "topic": topic, "key": key})

    # --- operator actions ---------------------------------------------------------------------

    def _alert_for_update(self, c: Any, event_id: str) -> Any:
        q = sa.select(t.alerts).where(t.alerts.c.event_id == event_id)
        if c.dialect.name == "postgresql":
            q = q.with_for_update()
        row = c.execute(q).first()
        if row is None:
            raise ActionError(f"alert {event_id!r} not found (unknown id, or deleted)", 404)
        return row

    def take(self, event_id: str, user: str, now: float | None = None) -> dict[str, Any]:
        """Acknowledge: ``user`` takes the alert. Refused if someone else has it or it is closed."""
        now = time.time() if now is None else now
        with self.write() as c:
            a = self._alert_for_update(c, event_id)
            if a.state == "closed":
                raise ActionError(f"alert already closed by {a.closed_by} ({OUTCOMES.get(a.outcome, a.outcome)})", 409)
            if a.taken_by == user:
                return {"state": a.state, "taken_by": user, "version": a.version}
            if a.taken_by is not None:
                raise ActionError(f"already acknowledged by {a.taken_by} at {_hm(a.taken_unix_s)}", 409)
            c.execute(sa.update(t.alerts).where(t.alerts.c.event_id == event_id).values(
                state="taken", taken_by=user, taken_unix_s=now, version=t.alerts.c.version + 1))
            self._audit(c, event_id, now, user, "acknowledged", "took the alert for secondary screening")
            return {"state": "taken", "taken_by": user, "version": a.version + 1}

    def release(self, event_id: str, user: str, now: float | None = None, *, force: bool = False) -> None:
        """Give a taken alert back to the queue: the operator who took it, or (``force``, the admin
        role) anyone's, e.g. when that operator has left their post."""
        now = time.time() if now is None else now
        with self.write() as c:
            a = self._alert_for_update(c, event_id)
            if a.state != "taken" or (a.taken_by != user and not force):
                raise ActionError("only the operator who acknowledged an open alert (or an admin) can release it", 409)
            c.execute(sa.update(t.alerts).where(t.alerts.c.event_id == event_id).values(
                state="open", taken_by=None, taken_unix_s=None, version=t.alerts.c.version + 1))
            detail = "gave the alert back to the queue" + (f" (taken by {a.taken_by})" if a.taken_by != user else "")
            self._audit(c, event_id, now, user, "released", detail)

    def close(self, event_id: str, user: str, form: CloseForm, now: float | None = None) -> None:
        """Record the secondary reading and outcome and close the alert (taking it if nobody has)."""
        now = time.time() if now is None else now
        with self.write() as c:
            a = self._alert_for_update(c, event_id)
            if a.state == "closed":
                raise ActionError(f"alert already closed by {a.closed_by} ({OUTCOMES.get(a.outcome, a.outcome)})", 409)
            if a.taken_by not in (None, user):
                raise ActionError(f"acknowledged by {a.taken_by}: only they can close it", 409)
            if a.taken_by is None:
                self._audit(c, event_id, now, user, "acknowledged", "took the alert for secondary screening")
            c.execute(sa.update(t.alerts).where(t.alerts.c.event_id == event_id).values(
                state="closed", taken_by=user, taken_unix_s=a.taken_unix_s or now, secondary_c=form.secondary_c,
                secondary_site=form.site, outcome=form.outcome, note=form.note or None, closed_by=user,
                closed_unix_s=now, version=t.alerts.c.version + 1))
            reading = f"{form.secondary_c:.1f} °C {form.site}" if form.secondary_c is not None else "no reading"
            self._audit(c, event_id, now, user, "closed",
                        f"{OUTCOMES[form.outcome]}; secondary {reading}" + (f"; note: {form.note}" if form.note else ""))

    def add_note(self, event_id: str, user: str, note: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        note = note.strip()
        if not note:
            raise ActionError("note: empty")
        if len(note) > MAX_NOTE_CHARS:
            raise ActionError(f"note: {len(note)} characters; at most {MAX_NOTE_CHARS}")
        with self.write() as c:
            self._alert_for_update(c, event_id)
            c.execute(sa.update(t.alerts).where(t.alerts.c.event_id == event_id)
                      .values(version=t.alerts.c.version + 1))
            self._audit(c, event_id, now, user, "note", note)

    # --- retention ----------------------------------------------------------------------------

    def prune_images(self, max_age_days: float, now: float | None = None) -> int:
        """Delete images received more than ``max_age_days`` ago (the alerts stay, marked)."""
        now = time.time() if now is None else now
        cutoff = now - max_age_days * 86400.0
        with self.write() as c:
            ids = list(c.execute(sa.select(t.images.c.event_id).where(t.images.c.received_unix_s < cutoff)
                                 .distinct()).scalars())
            if not ids:
                return 0
            n = c.execute(sa.delete(t.images).where(t.images.c.received_unix_s < cutoff)).rowcount
            for chunk in _chunks(ids, 500):
                c.execute(sa.update(t.alerts).where(t.alerts.c.event_id.in_(chunk))
                          .values(images="", images_deleted=True, version=t.alerts.c.version + 1))
                for eid in chunk:
                    self._audit(c, eid, now, "console", "images deleted",
                                f"retention: images older than {max_age_days:g} days")
        log.info("retention: deleted %d image(s) of %d alert(s)", n, len(ids))
        return n

    def prune_changes(self, max_age_s: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.write() as c:
            return c.execute(sa.delete(t.changes).where(t.changes.c.at_unix_s < now - max_age_s)).rowcount


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _hm(unix: float | None) -> str:
    return "?" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S UTC")
