"""`thermal-edge proxy`: forward many gateways' feeds to many control-room clients (XSUB/XPUB)."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import zmq

from edge.commands._common import add_client_key_args, client_keys, install_stop_signals
from edge.errors import UserError
from edge.feed.client import split_key
from edge.feed.proxy import Proxy
from edge.feed.security import KeyFileError, ServerKeys, curve_pair, start_authenticator


def register(sub) -> None:
    p = sub.add_parser("proxy", help="fan-in/fan-out proxy for gateway feeds (XSUB/XPUB, CURVE)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--upstream", action="append", required=True, metavar="ENDPOINT",
                   help="gateway PUB endpoint to read (repeatable), optionally ENDPOINT=SERVER_KEY_FILE")
    p.add_argument("--bind", default="tcp://127.0.0.1:5570", help="endpoint subscribers connect to")
    p.add_argument("--server-secret-key", type=Path, metavar="FILE",
                   help="this proxy's CURVE .key_secret (needed to bind beyond loopback)")
    p.add_argument("--authorized-clients", type=Path, metavar="DIR",
                   help="folder of subscriber public keys (*.key) allowed to connect")
    add_client_key_args(p)  # the proxy's identity towards the gateways
    p.add_argument("--hwm", type=int, default=10000, help="high-water mark per side, messages")
    p.set_defaults(func=run)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    try:
        encrypt = curve_pair(("--server-secret-key", args.server_secret_key),
                             ("--authorized-clients", args.authorized_clients), "a secret key and an allowlist")
    except ValueError as e:
        raise UserError(f"proxy: {e}") from None
    server_keys = None
    if encrypt:
        server_keys = ServerKeys(args.server_secret_key, args.authorized_clients)
        try:
            server_keys.check()
        except KeyFileError as e:
            raise UserError(str(e)) from None
    ctx = zmq.Context()
    auth = start_authenticator(ctx, server_keys.authorized_dir, "proxy") if server_keys else None
    stop = threading.Event()
    install_stop_signals(stop)
    try:
        try:
            proxy = Proxy(ctx, [split_key(u) for u in args.upstream], args.bind, server_keys=server_keys,
                          client_keys=client_keys(args), hwm=args.hwm)
        except ValueError as e:
            raise UserError(str(e)) from None
        if server_keys is None:
            logging.warning("proxy: no CURVE keys: unencrypted, loopback only")
        try:
            stats = proxy.run(stop)
        except ValueError as e:
            raise UserError(str(e)) from None
    finally:
        if auth is not None:
            auth.stop()
        ctx.term()
    print(f"proxy: {stats.forwarded} forwarded, {sum(stats.bad.values())} malformed dropped", file=sys.stderr)
    return 0
