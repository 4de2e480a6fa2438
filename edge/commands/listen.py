"""`thermal-edge listen ENDPOINT [ENDPOINT...]`: print every alert of one or more feeds, once.

Subscribes first, then catches up from each gateway's journal, de-duplicates, reconnects, and
keeps a local store (``--store``) so a restarted control room resumes where it was.

Where it starts: a gateway this listener has no stored position for is followed from "now" --
its position in the first heartbeat -- so the journal it retains (30 days by default) is not
printed as if it were new; ``--since TIME`` also prints the journal's messages measured since
TIME, ``--from-start`` everything retained. With ``--store`` a known gateway resumes where the
store stopped. A line that comes from a journal, not live, ends with "(caught up)" (``--json``:
``"caught_up": true``); its time is the original measurement time.

Silence is reported: an endpoint that sends nothing for 5 s (edge/feed/liveness.py) gets one
warning line on stderr -- "no heartbeat from tcp://... for 5 s (gateway down, wrong endpoint, or
CURVE key not accepted)" -- repeated every 30 s while it lasts, and one line when it is back;
with ``--json`` the same notices are also printed on stdout as ``{"kind": "listener", ...}``
objects (docs/messages.md, "Listener notices").
"""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import zmq

from edge.commands._common import add_client_key_args, client_keys, install_stop_signals
from edge.errors import UserError
from edge.feed.client import Listener, Store, format_alert_line
from edge.feed.messages import JOURNALED_KINDS, Message
from edge.feed.security import KeyFileError


def parse_since(text: str) -> datetime:
    """--since: ISO 8601 date or date-time; no zone means UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since {text!r}: not an ISO 8601 time (e.g. 2026-11-26T08:00 or 2026-11-26)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def register(sub) -> None:
    p = sub.add_parser("listen", help="print alerts from one or more feeds, each exactly once",
                       description=__doc__.splitlines()[0])
    p.add_argument("endpoints", nargs="+", metavar="ENDPOINT",
                   help="feed endpoint (gateway or proxy), optionally ENDPOINT=SERVER_KEY_FILE")
    p.add_argument("--catchup", action="append", default=[], metavar="ENDPOINT",
                   help="gateway catch-up endpoint to ask at start-up (repeatable; others are learned "
                        "from messages), optionally ENDPOINT=SERVER_KEY_FILE")
    p.add_argument("--json", action="store_true",
                   help="print raw JSON bodies, one per line, and liveness notices as {\"kind\": \"listener\"} lines")
    p.add_argument("--store", type=Path, metavar="FILE",
                   help="local SQLite store of received messages and positions (resume after restart)")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="save image frames that come with alerts (stations with include_images) as "
                        "DIR/<msg_id>.<name>.jpg; they are never printed")
    p.add_argument("--keep-days", type=float, default=90.0,
                   help="forget stored messages older than this at start-up (positions are kept; default 90)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--since", metavar="TIME",
                       help="also print journaled messages measured at or after TIME (ISO 8601, UTC if no "
                            "zone, e.g. 2026-11-26T08:00 or 2026-11-26); default: from now")
    start.add_argument("--from-start", action="store_true",
                       help="also print everything the gateways' journals retain; default: from now")
    p.add_argument("--kinds", default="alert", help="comma list of alert,screening,status (default: alert)")
    add_client_key_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log gaps, catch-ups and liveness to stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    allowed = (*JOURNALED_KINDS, "status")
    if not kinds or any(k not in allowed for k in kinds):
        raise UserError(f"--kinds={args.kinds!r}; allowed: {','.join(allowed)}")
    keys = client_keys(args)
    since = parse_since(args.since) if args.since else None
    try:
        store = Store(args.store) if args.store else Store()
        store.prune(args.keep_days)
    except sqlite3.Error as e:
        raise UserError(f"{args.store}: cannot open the listener store: {e}") from None

    if args.images is not None:
        args.images.mkdir(parents=True, exist_ok=True)

    def show(msg: Message) -> None:
        # Images never reach stdout: only the JSON body (which names them) is printed.
        if args.images is not None:
            for name, data in msg.images.items():
                (args.images / f"{msg.msg_id.replace('/', '_')}.{name.removesuffix('_jpeg')}.jpg").write_bytes(data)
        if args.json:
            line = json.dumps({**msg.body, "caught_up": True} if msg.caught_up else msg.body, separators=(",", ":"))
        else:
            line = format_alert_line(msg.body) + (" (caught up)" if msg.caught_up else "")
        print(line, flush=True)

    def notice(n) -> None:  # the warning is logged to stderr by the listener; --json also gets a line
        if args.json:
            print(json.dumps(n.body(), separators=(",", ":")), flush=True)

    stop = threading.Event()
    install_stop_signals(stop)
    ctx = zmq.Context()
    try:
        listener = Listener(ctx, args.endpoints, catchup=args.catchup, kinds=kinds, store=store, keys=keys,
                            on_notice=notice, start="all" if (since or args.from_start) else "now",
                            since_utc=since)
        try:
            stats = listener.run(stop, show)
        except (ValueError, KeyFileError) as e:
            raise UserError(str(e)) from None
    finally:
        store.close()
        ctx.term()
    bad = sum(stats.bad.values())
    print(f"listen: {stats.delivered} delivered ({stats.caught_up} via catch-up), {stats.duplicates} duplicates "
          f"dropped, {stats.gaps} gaps, {stats.lost} lost, {bad} malformed"
          + (f", {stats.history_skipped} older journal messages not shown (--since/--from-start show them)"
             if stats.history_skipped else ""), file=sys.stderr)
    return 0
