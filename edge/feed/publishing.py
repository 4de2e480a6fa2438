"""Publishing stage: screening events -> journal -> ZeroMQ PUB feed (contract: docs/messages.md).

``Publisher`` builds each message body, writes journaled kinds (alert, screening) to the
journal *before* sending (synced), then sends ``[topic, JSON, *JPEG images]``. On start,
``open_feed`` closes the events a killed previous run left open (``close_open_events``: an
``end`` with ``end_reason: "gateway_restart"``), so no event stays open forever. It is handed
its socket and journal; ``open_feed`` is the one place that opens sockets, binds them, starts
the CURVE authenticator and the catch-up/heartbeat thread from a ``FeedConfig``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq
from pydantic import Field, field_validator, model_validator

from edge.configbase import StrictModel, resolve_path
from edge.feed.catchup import CatchupServer
from edge.feed.journal import Journal, JournalError
from edge.feed.messages import (
    JOURNALED_KINDS,
    KINDS,
    SCHEMA_VERSION,
    EventBody,
    VerdictBody,
    build_body,
    check_id,
    clean_float,
    dump_body,
    encode_body,
    make_topic,
    msg_id,
)
from edge.feed.security import (
    ServerKeys,
    curve_pair,
    is_local_endpoint,
    make_server,
    start_authenticator,
)
from edge.thermal.colour import false_colour
from edge.types import ScreeningEvent
from edge.utc import utc_iso  # also for callers that stamp events (tests, bench)

log = logging.getLogger(__name__)

# False-colour thermal crops use one fixed scale so colours mean the same temperature everywhere
# (narrower than the preview's edge.annotate.THERMAL_RANGE_C: skin contrast in a face crop).
THERMAL_JPEG_RANGE_C = (30.0, 40.0)
THERMAL_JPEG_MIN_HEIGHT_PX = 96
JPEG_QUALITY = 85


class FeedConfig(StrictModel):
    """The station's alert feed: where it binds, its journal, heartbeats, images and CURVE keys."""

    endpoint: str = Field("tcp://127.0.0.1:5560", min_length=6,
                          description="ZeroMQ endpoint the PUB socket binds (alerts, screening, status, heartbeats)")
    catchup_endpoint: str | None = Field("tcp://127.0.0.1:5561",
                                         description="endpoint the catch-up ROUTER binds; null disables catch-up")
    catchup_advertise: str | None = Field(
        None, description="catch-up endpoint written into messages for subscribers to connect to "
                          "(default: catchup_endpoint; set it when binding to * or 0.0.0.0)")
    publisher_id: str | None = Field(None, description="stable publisher id (default: the station id)")
    journal_path: str | None = Field("var/feed-journal.sqlite",
                                     description="SQLite journal file (WAL, synced); null disables journal and catch-up")
    journal_max_age_days: float = Field(30.0, ge=0.01, le=3650.0, description="retention by age, days")
    journal_max_mb: float = Field(512.0, ge=1.0, le=1_000_000.0, description="retention by stored size, MB")
    heartbeat_s: float = Field(1.0, ge=0.05, le=60.0, description="heartbeat interval, seconds")
    include_images: bool = Field(
        False, description="send a JPEG face snapshot and a false-colour thermal crop with alert/screening "
                           "messages. Off by default: faces are personal data; enable per station deliberately")
    server_secret_key: str | None = Field(
        None, description="CURVE server certificate (.key_secret, from `thermal-edge keygen`); "
                          "required to bind beyond loopback")
    authorized_clients_dir: str | None = Field(
        None, description="folder of client public keys (*.key) allowed to subscribe and catch up")
    snd_hwm: int = Field(10000, ge=0, le=10_000_000,
                         description="PUB high-water mark per subscriber, messages (0 = unlimited); past it "
                                     "messages to that subscriber are dropped and it catches up")

    @field_validator("journal_path", "server_secret_key", "authorized_clients_dir")
    @classmethod
    def _resolve(cls, v: str | None, info: Any) -> str | None:
        # set in a config file: relative to its folder, like every other path in it (the default
        # journal path is not validated, so it stays relative to the working directory)
        return None if v is None else str(resolve_path(v, info))

    @model_validator(mode="after")
    def _check_security(self) -> FeedConfig:
        if not curve_pair(("feed.server_secret_key", self.server_secret_key),
                          ("feed.authorized_clients_dir", self.authorized_clients_dir),
                          "both the server key and the allowlist"):
            for name in ("endpoint", "catchup_endpoint"):
                ep = getattr(self, name)
                if ep is not None and not is_local_endpoint(ep):
                    raise ValueError(
                        f"feed.{name}={ep} is not loopback and feed.server_secret_key is not set: "
                        "unencrypted feeds bind only to 127.0.0.1 (create keys with `thermal-edge keygen`)")
        if self.publisher_id is not None:
            check_id("feed.publisher_id", self.publisher_id)
        return self

    @property
    def server_keys(self) -> ServerKeys | None:
        if self.server_secret_key is None or self.authorized_clients_dir is None:  # both or neither
            return None
        return ServerKeys(Path(self.server_secret_key), Path(self.authorized_clients_dir))


def _box(box) -> list[float] | None:
    return None if box is None else [round(float(v), 1) for v in box]


def _json_safe(value: Any) -> Any:
    """Status dicts may hold numpy scalars or NaN: make them valid JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return clean_float(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def encode_rgb_jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot JPEG-encode an RGB snapshot of shape {bgr.shape}")
    return buf.tobytes()


def encode_thermal_jpeg(temp_c: np.ndarray) -> bytes:
    """(h,w) float32 degC -> false-colour JPEG (inferno over THERMAL_JPEG_RANGE_C, NaN black)."""
    img = false_colour(np.asarray(temp_c, np.float32), THERMAL_JPEG_RANGE_C)
    if 0 < img.shape[0] < THERMAL_JPEG_MIN_HEIGHT_PX:  # tiny 160x120 crops: enlarge, keep pixels sharp
        f = math.ceil(THERMAL_JPEG_MIN_HEIGHT_PX / img.shape[0])
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
    return encode_rgb_jpeg(img)


class Publisher:
    """Publishes screening events, status and heartbeats on a bound PUB socket.

    pub_socket: a bound zmq.PUB socket (the Publisher closes it). journal: where alert and
    screening messages are written before sending, or None (then nothing can be caught up).
    Thread-safe: the pipeline publishes while the feed thread sends heartbeats.
    """

    def __init__(self, pub_socket: zmq.Socket, station_id: str, journal: Journal | None, *,
                 publisher_id: str | None = None, include_images: bool = False,
                 catchup_endpoint: str | None = None, heartbeat_s: float = 1.0) -> None:
        self.socket = pub_socket
        self.station_id = check_id("station_id", station_id)
        self.publisher_id = check_id("publisher_id", publisher_id or station_id)
        self.journal = journal
        self.include_images = include_images
        self.catchup_endpoint = catchup_endpoint
        self.heartbeat_s = heartbeat_s
        self.epoch = journal.start_epoch(self.publisher_id) if journal else int(time.time() * 1000)
        self.seq = {kind: 0 for kind in KINDS}
        self.journal_errors = 0
        self._lock = threading.Lock()
        self._closed = False

    def _envelope(self, kind: str, time_utc: str) -> dict[str, Any]:
        seq = self.seq[kind] + 1  # taken by _send only once the message is valid: no holes
        return {"schema": SCHEMA_VERSION, "kind": kind, "publisher_id": self.publisher_id, "epoch": self.epoch,
                "seq": seq, "msg_id": msg_id(self.publisher_id, self.epoch, kind, seq),
                "station_id": self.station_id, "time_utc": time_utc, "catchup": self.catchup_endpoint}

    def _images(self, event: ScreeningEvent) -> dict[str, bytes]:
        images: dict[str, bytes] = {}
        if not self.include_images:
            return images
        try:
            if event.snapshot_rgb is not None and event.snapshot_rgb.size:
                images["rgb_jpeg"] = encode_rgb_jpeg(event.snapshot_rgb)
            if event.snapshot_thermal_c is not None and event.snapshot_thermal_c.size:
                images["thermal_jpeg"] = encode_thermal_jpeg(event.snapshot_thermal_c)
        except (ValueError, cv2.error) as e:  # a bad snapshot must not cost the alert
            log.warning("station %s track %d: snapshot not sent: %s", self.station_id, event.track_id, e)
        return images

    def publish_event(self, event: ScreeningEvent, time_utc: str) -> dict[str, Any]:
        """Journal (alert/screening, synced) then send one event; returns the JSON body sent."""
        if event.kind not in JOURNALED_KINDS:
            raise ValueError(f"ScreeningEvent.kind={event.kind!r}; allowed: {JOURNALED_KINDS}")
        v = event.verdict
        images = self._images(event)
        with self._lock:
            model = build_body(
                EventBody, **self._envelope(event.kind, time_utc),
                type=event.type,
                event_id=f"{self.publisher_id}-{self.epoch}-{event.kind}-{event.track_id}",
                track_id=int(event.track_id),
                t_ns=int(event.t_ns),
                verdict=VerdictBody(status=v.status, reason=v.reason, method=v.method),
                skin_temp_c=clean_float(v.skin_temp_c),
                core_temp_c=clean_float(v.core_temp_c),
                uncertainty_c=clean_float(v.uncertainty_c),
                threshold_c=clean_float(v.threshold_c),
                box_xyxy_rgb=_box(event.box_xyxy_rgb),
                box_xyxy_thermal=_box(event.box_xyxy_thermal),
                score=clean_float(min(max(float(event.score), 0.0), 1.0)),
                mask=event.mask if event.mask in ("yes", "no") else "unknown",
                mask_conf=clean_float(min(max(float(event.mask_conf), 0.0), 1.0)),
                n_frames=int(event.n_frames),
                images=list(images))
            body, data = dump_body(model)
            self._send(event.kind, body, list(images.values()), data)
        return body

    def close_open_events(self, time_utc: str) -> list[dict[str, Any]]:
        """Send an ``end`` (``end_reason: "gateway_restart"``) for every event an earlier epoch of
        this publisher left open in the journal (killed before its tracks ended). The end carries
        the event's last known fields and its ``event_id``; ``time_utc`` is when it is closed.
        Returns the bodies sent."""
        if self.journal is None:
            return []
        envelope = set(self._envelope("heartbeat", time_utc))
        sent = []
        for raw in self.journal.open_events(self.publisher_id, self.epoch):
            try:
                last = json.loads(raw)
            except ValueError:  # a damaged row must not stop the start-up
                continue
            kind = last.get("kind")
            if kind not in JOURNALED_KINDS:
                continue
            with self._lock:
                body = self._envelope(kind, time_utc)
                body.update({k: v for k, v in last.items() if k not in envelope})
                body.update(type="end", end_reason="gateway_restart", images=[])
                try:
                    self._send(kind, body, [])
                except ValueError as e:  # an old row that no longer meets the schema
                    log.warning("feed: cannot close open event %s: %s", last.get("event_id"), e)
                    continue
            sent.append(body)
        if sent:
            log.warning("feed: closed %d event(s) the previous run left open (end_reason gateway_restart): %s",
                        len(sent), ", ".join(b["event_id"] for b in sent[:10]) + (" ..." if len(sent) > 10 else ""))
        return sent

    def publish_status(self, status: dict[str, Any], time_utc: str) -> dict[str, Any]:
        """Send a status message (not journaled: the next one supersedes it)."""
        with self._lock:
            body = self._envelope("status", time_utc)
            body["status"] = _json_safe(status)
            self._send("status", body, [])
        return body

    def publish_guidance(self, guidance: dict[str, Any], time_utc: str) -> dict[str, Any]:
        """Send a guidance message (edge.guidance.Guidance.body(); not journaled: the next one
        supersedes it)."""
        with self._lock:
            body = self._envelope("guidance", time_utc)
            body.update(guidance)
            self._send("guidance", body, [])
        return body

    def heartbeat(self) -> dict[str, Any]:
        """Send a heartbeat carrying the last seq of each journaled kind."""
        with self._lock:
            body = self._envelope("heartbeat", utc_iso())
            body["interval_s"] = self.heartbeat_s
            body["last"] = {kind: self.seq[kind] for kind in JOURNALED_KINDS}  # sent so far
            self._send("heartbeat", body, [])
        return body

    def _send(self, kind: str, body: dict[str, Any], images: list[bytes], data: bytes | None = None) -> None:
        """data: the body's bytes when it was built as a model (dump_body); else encoded and
        checked here (encode_body)."""
        if self._closed:
            raise RuntimeError("Publisher is closed")
        if data is None:
            data = encode_body(body)  # ValueError if invalid
        frames = [make_topic(kind, self.station_id), data, *images]
        self.seq[kind] = body["seq"]
        if self.journal is not None and kind in JOURNALED_KINDS:
            try:
                self.journal.append(self.publisher_id, self.epoch, kind, body["seq"], frames)
            except JournalError as e:  # still send: a decided alert is never dropped
                self.journal_errors += 1
                log.error("%s (sending %s without a journal copy)", e, body["msg_id"])
        self.socket.send_multipart(frames, copy=len(images) == 0)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.socket.close(linger=500)  # give queued messages half a second to leave
            if self.journal is not None:
                self.journal.close()


@dataclass
class Feed:
    """A running feed: the Publisher, its catch-up/heartbeat server and the ZAP authenticator."""

    publisher: Publisher
    server: CatchupServer
    auth: Any = None

    @property
    def endpoint(self) -> str:
        """The PUB endpoint actually bound (resolves a ``tcp://127.0.0.1:*`` port)."""
        return self.publisher.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def catchup_endpoint(self) -> str | None:
        return self.publisher.catchup_endpoint

    def close(self) -> None:
        """Stop heartbeats and catch-up, then close the PUB socket (linger 0.5 s) and journal. Idempotent."""
        self.server.close()
        self.publisher.close()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_feed(ctx: zmq.Context, cfg: FeedConfig, station_id: str) -> Feed:
    """Bind the PUB and catch-up sockets described by ``cfg`` and start the feed thread.

    Without CURVE keys the config only allows loopback endpoints; this logs that the feed is
    unencrypted. The journal directory is created if needed. Raises ValueError (one line naming
    the key, file or endpoint) for unreadable keys, an unusable journal or an endpoint in use;
    whatever fails, nothing it opened stays open (the caller can ``ctx.term()`` and retry).
    """
    keys = cfg.server_keys
    with contextlib.ExitStack() as undo:  # on any error, release what was opened so far
        auth = None
        if keys is not None:
            keys.check()
            auth = start_authenticator(ctx, keys.authorized_dir)
            undo.callback(auth.stop)
        else:
            log.warning("feed: no CURVE keys configured (feed.server_secret_key): unencrypted, bound to loopback only")
        journal = None
        if cfg.journal_path is not None:
            try:
                journal = Journal(cfg.journal_path, max_age_days=cfg.journal_max_age_days,
                                  max_bytes=int(cfg.journal_max_mb * 2**20))
            except JournalError as e:
                raise ValueError(f"feed.journal_path: {e}") from None
            undo.callback(journal.close)
        pub = ctx.socket(zmq.PUB)
        undo.callback(pub.close, linger=0)
        router = ctx.socket(zmq.ROUTER)  # the feed thread's socket; bound only when catch-up is on
        undo.callback(router.close, linger=0)
        advertise = None
        try:
            pub.sndhwm = cfg.snd_hwm
            make_server(pub, keys)
            pub.bind(cfg.endpoint)
            if cfg.catchup_endpoint is not None and journal is not None:
                make_server(router, keys)
                router.bind(cfg.catchup_endpoint)
                advertise = cfg.catchup_advertise or router.last_endpoint.decode()
        except zmq.ZMQError as e:
            raise ValueError(f"feed: cannot bind {cfg.endpoint} / {cfg.catchup_endpoint}: {e}") from None
        publisher = Publisher(pub, station_id, journal, publisher_id=cfg.publisher_id,
                              include_images=cfg.include_images, catchup_endpoint=advertise,
                              heartbeat_s=cfg.heartbeat_s)
        publisher.close_open_events(utc_iso())  # journaled, so late subscribers catch them up
        server = CatchupServer(router, cfg.journal_path if advertise else None, publisher.publisher_id,
                               heartbeat=publisher.heartbeat, heartbeat_s=cfg.heartbeat_s).start()
        undo.pop_all()  # all open: the Feed owns them now
    return Feed(publisher, server, auth)
