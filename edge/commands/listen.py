"""`thermal-edge listen ENDPOINT [ENDPOINT...]`: print every alert of one or more feeds, once.

Subscribes first, then catches up from each gateway's journal, de-duplicates, reconnects, and
keeps a local store (``--store``) so a restarted control room resumes where it was.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
from pathlib import Path

import zmq

from edge.commands._common import add_client_key_args, client_keys, install_stop_signals
from edge.errors import UserError
from edge.feed.client import Listener, Store, format_alert_line
from edge.feed.messages import JOURNALED_KINDS, Message
from edge.feed.security import KeyFileError


def register(sub) -> None:
    p = sub.add_parser("listen", help="print alerts from one or more feeds, each exactly once",
                       description=__doc__.splitlines()[0])
    p.add_argument("endpoints", nargs="+", metavar="ENDPOINT",
                   help="feed endpoint (gateway or proxy), optionally ENDPOINT=SERVER_KEY_FILE")
    p.add_argument("--catchup", action="append", default=[], metavar="ENDPOINT",
                   help="gateway catch-up endpoint to ask at start-up (repeatable; others are learned "
                        "from messages), optionally ENDPOINT=SERVER_KEY_FILE")
    p.add_argument("--json", action="store_true", help="print raw JSON bodies, one per line")
    p.add_argument("--store", type=Path, metavar="FILE",
                   help="local SQLite store of received messages and positions (resume after restart)")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="save image frames that come with alerts (stations with include_images) as "
                        "DIR/<msg_id>.<name>.jpg; they are never printed")
    p.add_argument("--keep-days", type=float, default=90.0,
                   help="forget stored messages older than this at start-up (positions are kept; default 90)")
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
        line = json.dumps(msg.body, separators=(",", ":")) if args.json else format_alert_line(msg.body)
        print(line, flush=True)

    stop = threading.Event()
    install_stop_signals(stop)
    ctx = zmq.Context()
    try:
        listener = Listener(ctx, args.endpoints, catchup=args.catchup, kinds=kinds, store=store, keys=keys)
        try:
            stats = listener.run(stop, show)
        except (ValueError, KeyFileError) as e:
            raise UserError(str(e)) from None
    finally:
        store.close()
        ctx.term()
    bad = sum(stats.bad.values())
    print(f"listen: {stats.delivered} delivered ({stats.caught_up} via catch-up), {stats.duplicates} duplicates "
          f"dropped, {stats.gaps} gaps, {stats.lost} lost, {bad} malformed", file=sys.stderr)
    return 0
