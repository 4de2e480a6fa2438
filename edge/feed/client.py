"""Subscriber client library: every alert exactly once, across gaps, restarts and reconnects.

``Listener(ctx, endpoints, ...).run(stop_event, on_message)`` (used by ``thermal-edge listen``
and the demo) does what zguide ch. 5 prescribes for a reliable PUB/SUB feed:

1. subscribe first (SUB to every endpoint: gateways directly, or a proxy);
2. then catch up from each gateway's catch-up ROUTER (configured, or learned from the
   ``catchup`` field of its messages), starting after the last position in the local store;
3. detect gaps: per (publisher, kind) ``seq`` must follow on; a new ``epoch`` (publisher
   restart) or a heartbeat's ``last`` beyond what we hold also means "ask the journal";
4. de-duplicate by ``msg_id`` against the local store (SQLite), so live and caught-up copies,
   copies through two paths, and copies after a restart are delivered once;
5. tell silent from dead by heartbeats, and keep going: ZeroMQ reconnects SUB sockets; a
   catch-up request without an answer is retried on a fresh DEALER socket;
6. say so when an endpoint stays silent: one SUB socket per endpoint, so "no heartbeat from
   tcp://... for 5 s (gateway down, wrong endpoint, or CURVE key not accepted)" names the
   endpoint (edge/feed/liveness.py holds the timers). A refused CURVE key gets no error from
   ZeroMQ, only silence, so this line is how a misconfigured control room learns.

Where a publisher's history starts (``start``) for a (publisher, kind) the store holds no
position for: ``"all"`` (library default) catches up everything the gateway retains; ``"now"``
(``listen`` default) starts at the gateway's position in its first heartbeat (or just before its
first live message): what the journal held before is history and is not delivered; ``since_utc``
(with ``"all"``) delivers from the journal only messages measured at or after that time. Live
messages are always delivered. Messages delivered from a journal have ``Message.caught_up``.

Delivery order: ``on_message`` is called before the message is recorded, so a crash between the
two can repeat one message on restart (same ``msg_id``), but never lose one.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import zmq

from edge.feed.catchup import parse_position
from edge.feed.liveness import Notice, SilenceWatch
from edge.feed.messages import JOURNALED_KINDS, Message, MessageError, decode
from edge.feed.security import ClientKeys, make_client
from edge.feed.store import Position, Store

log = logging.getLogger(__name__)

# What each event line is, printed with it: one person's alert is one event (one event_id) whose
# lines are its first decision, better readings, and the final one when the person has left.
EVENT_TYPE_TEXT = {"new": "new: first reading", "update": "update: better reading",
                   "end": "end: person left, final reading"}


def _status_items(value, prefix: str = "") -> list[str]:
    """Every leaf of a status object as ``dotted.key=value``, nested objects included (which
    camera is offline is the point of a degraded status). Strings with spaces, ``=`` or control
    characters are JSON-quoted, so the line stays one line and splits back unambiguously."""
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _status_items(v, f"{prefix}{k}.")]
    if isinstance(value, str) and (not value or any(c.isspace() or c in '="' or not c.isprintable() for c in value)):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (list, tuple)):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    return [f"{prefix.rstrip('.')}={text}"]


def format_alert_line(body: dict) -> str:
    """One readable line for an alert/screening message, e.g.

    ``2026-11-26T20:41:07.123Z ALERT station gate-3 track 7: core 38.4 ±0.25 °C (skin 35.9 °C) >= 37.5 °C
    (absolute), mask no [new: first reading] id gate-3/1764150000000/alert/1``

    The uncertainty is the core estimate's (``uncertainty_c``), so it sits next to core; ``id``
    is the ``msg_id`` (`listen --images` names a message's image files after it, '/' -> '_').
    """
    def temp(v) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    if body.get("kind") not in JOURNALED_KINDS:
        head = f"{body.get('time_utc', '?')} {str(body.get('kind', '?')).upper()} station {body.get('station_id', '?')}"
        status = body.get("status")
        items = _status_items(status) if isinstance(status, dict) else []
        return f"{head}: {' '.join(items)}" if items else head
    v = body.get("verdict", {})
    label = "ALERT" if body["kind"] == "alert" else v.get("status", "?").upper()
    unc = body.get("uncertainty_c")
    core = f"core {temp(body.get('core_temp_c'))}" + (f" ±{unc:.2f}" if unc is not None else "") + " °C"
    skin = "skin n/a" if body.get("skin_temp_c") is None else f"skin {temp(body.get('skin_temp_c'))} °C"
    if v.get("status") == "indeterminate":
        verdict = f"indeterminate ({v.get('reason', '')})"
    else:
        op = ">=" if v.get("status") == "elevated" else "<"
        verdict = f"{op} {temp(body.get('threshold_c'))} °C ({v.get('method', '?')})"
    kind = body.get("type", "?")
    msg_id = f" id {body['msg_id']}" if body.get("msg_id") else ""
    return (f"{body.get('time_utc', '?')} {label} station {body.get('station_id', '?')} "
            f"track {body.get('track_id', '?')}: {core} ({skin}) {verdict}, "
            f"mask {body.get('mask', 'unknown')} [{EVENT_TYPE_TEXT.get(kind, kind)}]{msg_id}")


def split_key(spec: str) -> tuple[str, Path | None]:
    """'tcp://host:5560=keys/gw.key' -> ('tcp://host:5560', Path('keys/gw.key')); no '=' -> (spec, None)."""
    endpoint, sep, key = spec.partition("=")
    return endpoint, (Path(key) if sep else None)


@dataclass
class _Stream:
    """What we hold of one (publisher, kind): everything up to ``pos`` has been delivered."""

    pos: Position
    seen: Position = (0, 0)  # newest position we know exists (live message or heartbeat)
    request: int | None = None  # catch-up request in flight
    floor: Position | None = None  # start="now": the journal up to here is history (set once)


@dataclass
class _Request:
    """A catch-up request in flight; ``last``: position of the newest message it has brought."""

    endpoint: str
    kind: str
    publisher_id: str | None  # None: start-up request to a configured endpoint
    deadline: float = 0.0
    last: Position | None = None


@dataclass
class _Peer:
    """Liveness of one publisher, from any message it sends (heartbeats at least)."""

    last_heard: float
    interval_s: float = 1.0
    alive: bool = True
    next_poll: float = 0.0  # while silent: when to poll its catch-up channel next


@dataclass
class Stats:
    received: int = 0  # live messages decoded
    heartbeats: int = 0  # of which heartbeats
    delivered: int = 0  # passed to on_message
    duplicates: int = 0
    caught_up: int = 0  # delivered through catch-up
    history_skipped: int = 0  # journal messages before the start ("now" / since_utc), not delivered
    catchup_requests: int = 0
    gaps: int = 0
    lost: int = 0  # messages known missing that no journal could supply
    bad: Counter = field(default_factory=Counter)  # by MessageError reason


class Listener:
    """Reliable subscriber for one or more feed endpoints.

    endpoints: PUB or proxy endpoints, each optionally 'EP=SERVER_PUBLIC_KEY_FILE'.
    catchup: catch-up endpoints to ask at start-up (optionally with '=KEY'); more are learned
        from messages. kinds: journaled kinds to deliver ('alert', 'screening'); add 'status'
        to get status messages too (live only). store: the local Store (":memory:" if None).
    keys: this client's CURVE keys (secret file, default server public key) or None.
    request_timeout_s: a catch-up request without progress for this long is retried.
    rcv_hwm / rcv_buf: SUB queue in messages / kernel receive buffer in bytes (0 = OS default).
    on_notice: called with each liveness Notice (an endpoint silent, or back), which is also
        logged as a warning; ``listen --json`` prints them.
    on_heard: called with the body of every valid message heard from a publisher, heartbeats and
        status included (the console's stations table: online / silent / degraded).
    start: "all" or "now", for publishers without a stored position (module docstring).
    since_utc: with start="all", deliver from journals only messages with ``time_utc`` >= it.
    """

    def __init__(self, ctx: zmq.Context, endpoints: list[str], *, catchup: list[str] | tuple[str, ...] = (),
                 kinds: tuple[str, ...] = ("alert",), store: Store | None = None,
                 keys: ClientKeys | None = None, request_timeout_s: float = 2.0, rcv_hwm: int = 10000,
                 rcv_buf: int = 0, poll_ms: int = 50,
                 on_notice: Callable[[Notice], object] | None = None,
                 on_heard: Callable[[dict], object] | None = None, start: str = "all",
                 since_utc: datetime | None = None) -> None:
        if not endpoints:
            raise ValueError("Listener needs at least one endpoint")
        if start not in ("all", "now") or (since_utc is not None and start != "all"):
            raise ValueError(f"start={start!r}, since_utc={since_utc!r}: start is 'all' or 'now'; since needs 'all'")
        self.start = start
        self.since_utc = since_utc
        self.ctx = ctx
        self.endpoints = [split_key(e) for e in endpoints]
        self.catchup_keys = dict(split_key(e) for e in catchup)
        self.kinds = tuple(kinds)
        self.store = store or Store()
        self.keys = keys
        self.request_timeout_s = request_timeout_s
        self.rcv_hwm = rcv_hwm
        self.rcv_buf = rcv_buf
        self.poll_ms = poll_ms
        self.stats = Stats()
        self.slow_down_s = 0.0  # tests: simulate a slow consumer
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._peers: dict[str, _Peer] = {}
        self._catchup_of: dict[str, str] = {}  # publisher_id -> catch-up endpoint
        self._bad_endpoints: set[str] = set()  # advertised endpoints we cannot connect to
        self._dealers: dict[str, zmq.Socket] = {}
        self._requests: dict[int, _Request] = {}
        self._req_ids = itertools.count(1)
        self._on_message: Callable[[Message], object] = lambda m: None
        self.on_notice = on_notice
        self.on_heard = on_heard
        self._watches: dict[str, SilenceWatch] = {}  # per feed endpoint

    # --- sockets ------------------------------------------------------------------------------

    def _open_subs(self) -> dict[str, zmq.Socket]:
        """One SUB socket per endpoint: silence is then known per endpoint."""
        subs: dict[str, zmq.Socket] = {}
        for endpoint, key in self.endpoints:
            if endpoint in subs:
                continue
            sub = subs[endpoint] = self.ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.rcvhwm = self.rcv_hwm
            if self.rcv_buf > 0:
                sub.rcvbuf = self.rcv_buf
            sub.reconnect_ivl = 100
            sub.reconnect_ivl_max = 2000
            for kind in (*self.kinds, "heartbeat"):
                sub.setsockopt(zmq.SUBSCRIBE, f"{kind}.".encode())
            try:
                make_client(sub, self.keys, key)
                sub.connect(endpoint)
            except zmq.ZMQError as e:
                for s in subs.values():
                    s.close(linger=0)
                raise ValueError(f"cannot connect to {endpoint!r}: {e}") from None
        return subs

    def _dealer(self, endpoint: str, fresh: bool = False) -> zmq.Socket | None:
        sock = self._dealers.get(endpoint)
        if sock is not None and fresh:
            self._poller.unregister(sock)
            sock.close(linger=0)
            sock = None
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.rcvhwm = 0  # replies come in bounded batches
            sock.reconnect_ivl = 100
            make_client(sock, self.keys, self.catchup_keys.get(endpoint))
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as e:  # e.g. a garbled 'catchup' field: never fatal
                sock.close(linger=0)
                self._bad(MessageError("catchup_endpoint", f"cannot connect to {endpoint!r}: {e}"), "catch-up")
                return None
            self._dealers[endpoint] = sock
            self._poller.register(sock, zmq.POLLIN)
        return sock

    # --- main loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, on_message: Callable[[Message], object]) -> Stats:
        """Receive until ``stop`` is set, calling ``on_message`` once per new message. Returns stats."""
        self._on_message = on_message
        self._poller = zmq.Poller()
        subs = self._open_subs()
        now = time.monotonic()
        for endpoint, sub in subs.items():
            self._poller.register(sub, zmq.POLLIN)
            self._watches[endpoint] = SilenceWatch(endpoint, now)
        try:
            for endpoint in self.catchup_keys:  # subscribed first; now catch up
                for kind in self._journaled_kinds():
                    self._send_request(endpoint, kind, None)
            while not stop.is_set():
                ready = dict(self._poller.poll(self.poll_ms))
                for endpoint, sub in subs.items():
                    if not ready.get(sub):
                        continue
                    for _ in range(1000):  # drain, but come back to check timers
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_live(frames, endpoint)
                        if self.slow_down_s:
                            time.sleep(self.slow_down_s)
                for endpoint, sock in list(self._dealers.items()):
                    if ready.get(sock):
                        while True:
                            try:
                                frames = sock.recv_multipart(zmq.NOBLOCK)
                            except zmq.Again:
                                break
                            self._on_reply(endpoint, frames)
                self._timers()
        finally:
            for sub in subs.values():
                sub.close(linger=0)
            for sock in self._dealers.values():
                sock.close(linger=0)
            self._dealers.clear()
        return self.stats

    def _journaled_kinds(self) -> list[str]:
        return [k for k in self.kinds if k in JOURNALED_KINDS]

    def _bad(self, e: MessageError, where: str) -> None:
        self.stats.bad[e.reason] += 1
        if self.stats.bad[e.reason] == 1:
            log.warning("%s: dropped a malformed message (%s); further ones of this kind are only counted",
                        where, e)

    # --- live messages ------------------------------------------------------------------------

    def _notice(self, notice: Notice | None) -> None:
        if notice is None:
            return
        log.warning("%s", notice.message)
        if self.on_notice is not None:
            self.on_notice(notice)

    def _on_live(self, frames: list[bytes], endpoint: str | None = None) -> None:
        watch = self._watches.get(endpoint) if endpoint else None
        if watch is not None:  # anything that arrives, even malformed, proves the path is up
            self._notice(watch.heard(time.monotonic()))
        try:
            msg = decode(frames)
        except MessageError as e:
            self._bad(e, "feed")
            return
        self.stats.received += 1
        body = msg.body
        if watch is not None and msg.kind == "heartbeat":
            watch.heard(time.monotonic(), body["interval_s"])
        pub = body["publisher_id"]
        self._heard(pub, body)
        if body.get("catchup") and pub not in self._catchup_of and body["catchup"] not in self._bad_endpoints:
            self._catchup_of[pub] = body["catchup"]
        if msg.kind == "heartbeat":
            self.stats.heartbeats += 1
            for kind in self._journaled_kinds():
                last = body["last"].get(kind, 0)
                s = self._stream(pub, kind)
                self._set_floor(pub, kind, s, (body["epoch"], last))
                if last > 0:
                    self._note_exists(pub, kind, (body["epoch"], last))
            return
        if msg.kind == "status":
            if "status" in self.kinds:
                self._deliver(msg)
            return
        if msg.kind not in self.kinds:
            return
        self._deliver(msg)
        self._note_exists(pub, msg.kind, msg.position)

    def _heard(self, pub: str, body: dict) -> None:
        if self.on_heard is not None:
            self.on_heard(body)
        peer = self._peers.get(pub)
        now = time.monotonic()
        if peer is None:
            self._peers[pub] = _Peer(now, body.get("interval_s", 1.0))
            return
        peer.last_heard = now
        if body["kind"] == "heartbeat":
            peer.interval_s = body["interval_s"]
        if not peer.alive:
            peer.alive = True
            log.warning("publisher %s (station %s) is back", pub, body["station_id"])

    def _stream(self, pub: str, kind: str) -> _Stream:
        s = self._streams.get((pub, kind))
        if s is None:
            stored = self.store.position(pub, kind)
            s = self._streams[(pub, kind)] = _Stream(stored or (0, 0), floor=stored)  # stored: resume there
        return s

    def _set_floor(self, pub: str, kind: str, s: _Stream, pos: Position) -> None:
        """start="now": the first contact with (pub, kind) fixes where its history ends."""
        if self.start != "now" or s.floor is not None:
            return
        s.floor = pos
        if s.pos < pos:
            self._set_pos(pub, kind, s, pos)

    def _note_exists(self, pub: str, kind: str, position: Position) -> None:
        """A message at ``position`` exists; make sure we end up holding everything up to it."""
        s = self._stream(pub, kind)
        s.seen = max(s.seen, position)
        if s.pos < s.seen:  # else held already: _deliver advanced over every message it added
            self._advance(pub, kind, s)
        if s.pos >= s.seen or s.request is not None:
            return
        endpoint = self._catchup_of.get(pub)
        if endpoint is None:  # nothing to ask: accept the loss, say so
            if s.pos != (0, 0):
                missing = position[1] - s.pos[1] - 1 if position[0] == s.pos[0] else None
                self.stats.lost += missing or 0
                log.warning("%s %s: gap before %s and no catch-up endpoint known; %s message(s) lost",
                            pub, kind, position, "some" if missing is None else missing)
            self._set_pos(pub, kind, s, s.seen)
            return
        self.stats.gaps += 1
        log.info("%s %s: holding %s, %s exists: catching up from %s", pub, kind, s.pos, s.seen, endpoint)
        self._send_request(endpoint, kind, pub)

    def _advance(self, pub: str, kind: str, s: _Stream) -> None:
        """Move ``pos`` over every following seq we already hold (same epoch)."""
        epoch, seq = s.pos
        while self.store.has_position(pub, kind, epoch, seq + 1):
            seq += 1
        if (epoch, seq) != s.pos:
            self._set_pos(pub, kind, s, (epoch, seq))

    def _set_pos(self, pub: str, kind: str, s: _Stream, pos: Position) -> None:
        s.pos = pos
        self.store.set_position(pub, kind, pos)

    def _deliver(self, msg: Message) -> bool:
        if self.store.has(msg.msg_id):
            self.stats.duplicates += 1
            return False
        self._on_message(msg)
        if msg.kind in JOURNALED_KINDS:
            self.store.add(msg)
            s = self._stream(msg.publisher_id, msg.kind)
            if self.start == "now" and s.floor is None and not msg.caught_up:  # first contact: this live message
                self._set_floor(msg.publisher_id, msg.kind, s, (msg.position[0], msg.position[1] - 1))
            elif s.pos[0] == 0 and s.request is None and msg.publisher_id not in self._catchup_of:
                s.pos = (msg.position[0], msg.position[1] - 1)  # no journal to ask: start here
            self._advance(msg.publisher_id, msg.kind, s)
        self.stats.delivered += 1
        return True

    # --- catch-up -----------------------------------------------------------------------------

    def _send_request(self, endpoint: str, kind: str, pub: str | None, after: Position | None = None,
                      fresh: bool = False) -> None:
        if pub is None:
            positions = self.store.positions(kind)
        else:
            s = self._stream(pub, kind)
            positions = {pub: list(after or s.pos)}
        dealer = self._dealer(endpoint, fresh)
        if dealer is None:
            self._bad_endpoints.add(endpoint)
            self._catchup_of = {p: e for p, e in self._catchup_of.items() if e != endpoint}
            return
        req = next(self._req_ids)
        self._requests[req] = _Request(endpoint, kind, pub, time.monotonic() + self.request_timeout_s)
        if pub is not None:
            self._stream(pub, kind).request = req
        self.stats.catchup_requests += 1
        body = {"req": req, "kind": kind, "positions": positions}
        dealer.send_multipart([b"CATCHUP", json.dumps(body).encode()])

    def _on_reply(self, endpoint: str, frames: list[bytes]) -> None:
        try:
            tag = frames[0]
            reply = None if tag == b"MSG" else json.loads(frames[1])  # END/ERR: a JSON object
            req = int(frames[1]) if reply is None else reply["req"]
            if not isinstance(req, int):
                raise TypeError(req)
        except (IndexError, ValueError, KeyError, TypeError):
            self._bad(MessageError("reply", f"unreadable catch-up reply from {endpoint}"), "catch-up")
            return
        request = self._requests.get(req)
        if request is None or request.endpoint != endpoint:
            return  # a reply to a request we gave up on
        request.deadline = time.monotonic() + self.request_timeout_s
        if tag == b"MSG":
            try:
                msg = decode(frames[2:])
            except MessageError as e:
                self._bad(e, f"catch-up {endpoint}")
                return
            request.last = msg.position
            if self._is_history(msg):
                self.stats.history_skipped += 1
                return
            msg.caught_up = True
            if self._deliver(msg):
                self.stats.caught_up += 1
            return
        del self._requests[req]
        assert reply is not None  # END/ERR: the JSON object parsed above
        if tag == b"ERR":
            log.warning("catch-up %s refused a request: %s", endpoint, reply.get("error"))
            return
        try:
            pub, last, more = reply["publisher_id"], parse_position(reply["last"]), bool(reply.get("more"))
            if tag != b"END" or not isinstance(pub, str):
                raise ValueError(tag)
        except (ValueError, KeyError, TypeError):
            self._bad(MessageError("reply", f"unreadable catch-up reply from {endpoint}"), "catch-up")
            return
        self._catchup_of[pub] = endpoint  # it answered: prefer it to an advertised one
        s = self._stream(pub, request.kind)
        if not more:  # a whole reply before any live contact: all of it was history
            self._set_floor(pub, request.kind, s, last)
        if s.request in (None, req):
            s.request = None
        if reply.get("truncated"):
            log.warning("catch-up %s: %s %s messages after %s were deleted by the gateway's retention; lost",
                        endpoint, pub, request.kind, s.pos)
        log.info("catch-up %s: %d %s message(s) of %s up to %s%s", endpoint, reply.get("count", 0), request.kind,
                 pub, last, " (more follow)" if more else "")
        if last > s.pos:
            self._set_pos(pub, request.kind, s, last)
        s.seen = max(s.seen, s.pos)
        if more:
            self._send_request(endpoint, request.kind, pub, after=last)
        else:
            self._advance(pub, request.kind, s)
            if s.seen > s.pos:
                self._note_exists(pub, request.kind, s.seen)

    def _is_history(self, msg: Message) -> bool:
        """A journal message from before where this listener starts (``start``/``since_utc``)."""
        if self.start == "now":  # before the first contact, everything the journal holds is history
            floor = self._stream(msg.publisher_id, msg.kind).floor
            return floor is None or msg.position <= floor
        if self.since_utc is not None:
            try:
                t = datetime.fromisoformat(msg.body["time_utc"].replace("Z", "+00:00"))
            except ValueError:
                return False
            return t < self.since_utc
        return False

    def _timers(self) -> None:
        now = time.monotonic()
        for watch in self._watches.values():
            self._notice(watch.check(now))
        for req, request in list(self._requests.items()):
            if now > request.deadline:
                del self._requests[req]
                # The gateway may have restarted: a fresh socket drops requests queued to the old one.
                after = request.last
                if request.publisher_id is not None:
                    s = self._stream(request.publisher_id, request.kind)
                    s.request = None
                    after = max(s.pos, after or (0, 0))
                self._send_request(request.endpoint, request.kind, request.publisher_id,
                                   after=after if request.publisher_id else None, fresh=True)
        for pub, peer in self._peers.items():
            if peer.alive and now - peer.last_heard > 3 * peer.interval_s:
                peer.alive = False
                peer.next_poll = now
                log.warning("publisher %s: silent for %.1f s (3 heartbeats missed): gateway or link down",
                            pub, now - peer.last_heard)
            if not peer.alive and now >= peer.next_poll and pub in self._catchup_of:
                # The feed path (e.g. a proxy) may be down while the gateway is up: ask its
                # journal directly, so alerts keep arriving during the outage.
                peer.next_poll = now + max(1.0, 2 * peer.interval_s)
                for kind in self._journaled_kinds():
                    if self._stream(pub, kind).request is None:
                        self._send_request(self._catchup_of[pub], kind, pub)
