"""Fan-in/fan-out proxy: many gateways -> one place -> many control-room clients (XSUB/XPUB).

The XSUB side connects to each gateway's PUB endpoint (as a CURVE client, each gateway with its
own server key if needed); the XPUB side binds for subscribers (as a CURVE server with its own
allowlist). Subscriptions flow upstream so gateways filter at the source.

Unlike ``zmq.proxy`` this loop looks at every message: anything that does not decode as a feed
message is counted, logged once per reason and not forwarded, so one broken or hostile gateway
cannot feed garbage to every control room. Catch-up does not go through the proxy: messages
carry their gateway's catch-up endpoint and clients ask the gateway directly.

Each upstream has its own XSUB socket and the proxy itself subscribes to heartbeats, so an
upstream that stays silent (gateway down, wrong endpoint, the proxy's key refused) is logged
as "no heartbeat from upstream tcp://... for 5 s (...)", repeated while it lasts, and its return
too (timers: edge/feed/liveness.py). Clients the XPUB side refuses are logged by the ZAP handler.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from edge.feed.liveness import SilenceWatch
from edge.feed.messages import MessageError, decode
from edge.feed.security import (
    ClientKeys,
    ServerKeys,
    is_local_endpoint,
    make_client,
    make_server,
)

log = logging.getLogger(__name__)

HEARTBEAT_TOPIC = b"heartbeat."  # the proxy's own subscription: it watches every upstream


@dataclass
class ProxyStats:
    forwarded: int = 0
    subscriptions: int = 0
    silent_reports: int = 0  # "no heartbeat from upstream ..." lines logged
    bad: Counter = field(default_factory=Counter)


def check_bind(bind: str, server_keys: ServerKeys | None) -> None:
    """Refuse an unencrypted bind beyond loopback (one-line ValueError naming the option)."""
    if server_keys is None and not is_local_endpoint(bind):
        raise ValueError(f"proxy --bind {bind} is not loopback and no --server-secret-key is set: "
                         "unencrypted feeds bind only to 127.0.0.1")


class Proxy:
    """Forward feed messages from ``upstreams`` (gateway PUB endpoints, 'EP' or 'EP=KEYFILE') to
    subscribers of ``bind``. Sockets are opened in ``run`` (the thread that uses them)."""

    def __init__(self, ctx: zmq.Context, upstreams: list[tuple[str, Path | None]], bind: str, *,
                 server_keys: ServerKeys | None = None, client_keys: ClientKeys | None = None,
                 hwm: int = 10000) -> None:
        check_bind(bind, server_keys)
        if not upstreams:
            raise ValueError("proxy needs at least one --upstream gateway endpoint")
        self.ctx = ctx
        self.upstreams = upstreams
        self.bind = bind
        self.server_keys = server_keys
        self.client_keys = client_keys
        self.hwm = hwm
        self.stats = ProxyStats()
        self.bound = threading.Event()
        self.last_endpoint: str | None = None
        self.watches: dict[str, SilenceWatch] = {}

    def run(self, stop: threading.Event) -> ProxyStats:
        xpub = self.ctx.socket(zmq.XPUB)
        xsubs: dict[str, zmq.Socket] = {}  # one per upstream: silence is known per upstream
        try:
            xpub.sndhwm = self.hwm
            make_server(xpub, self.server_keys)
            try:
                xpub.bind(self.bind)
            except zmq.ZMQError as e:
                raise ValueError(f"proxy: cannot bind {self.bind!r}: {e}") from None
            self.last_endpoint = xpub.last_endpoint.decode()
            now = time.monotonic()
            for endpoint, key in self.upstreams:
                if endpoint in xsubs:
                    continue
                xsub = xsubs[endpoint] = self.ctx.socket(zmq.XSUB)
                xsub.rcvhwm = self.hwm
                xsub.reconnect_ivl = 100
                xsub.reconnect_ivl_max = 2000
                make_client(xsub, self.client_keys, key)
                try:
                    xsub.connect(endpoint)
                except zmq.ZMQError as e:
                    raise ValueError(f"proxy: cannot connect to upstream {endpoint!r}: {e}") from None
                xsub.send(b"\x01" + HEARTBEAT_TOPIC)  # XSUB re-sends it after every reconnect
                self.watches[endpoint] = SilenceWatch(endpoint, now, what="upstream ")
            self.bound.set()
            poller = zmq.Poller()
            for xsub in xsubs.values():
                poller.register(xsub, zmq.POLLIN)
            poller.register(xpub, zmq.POLLIN)
            while not stop.is_set():
                ready = dict(poller.poll(100))
                for endpoint, xsub in xsubs.items():
                    if ready.get(xsub):
                        self._forward(xsub, xpub, self.watches[endpoint])
                if ready.get(xpub):
                    self._subscriptions(xpub, list(xsubs.values()))
                now = time.monotonic()
                for watch in self.watches.values():
                    notice = watch.check(now)
                    if notice is not None:
                        self.stats.silent_reports += 1
                        log.warning("proxy: %s", notice.message)
        finally:
            for xsub in xsubs.values():
                xsub.close(linger=0)
            xpub.close(linger=0)
        return self.stats

    def _forward(self, xsub: zmq.Socket, xpub: zmq.Socket, watch: SilenceWatch | None = None) -> None:
        for _ in range(1000):
            try:
                frames = xsub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if watch is not None:
                notice = watch.heard(time.monotonic())
                if notice is not None:
                    log.warning("proxy: %s", notice.message)
            try:
                msg = decode(frames)
            except MessageError as e:
                self.stats.bad[e.reason] += 1
                if self.stats.bad[e.reason] == 1:
                    log.warning("proxy: dropped a malformed message (%s); further ones are only counted", e)
                continue
            if watch is not None and msg.kind == "heartbeat":  # a slow heartbeat is not silence
                watch.heard(time.monotonic(), msg.body["interval_s"])
            xpub.send_multipart(frames)
            self.stats.forwarded += 1

    def _subscriptions(self, xpub: zmq.Socket, xsubs: list[zmq.Socket]) -> None:
        while True:
            try:
                frames = xpub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
                if frames[0] != b"\x00" + HEARTBEAT_TOPIC:  # the proxy's own stays
                    for xsub in xsubs:
                        xsub.send(frames[0])
                self.stats.subscriptions += 1
            else:
                self.stats.bad["subscription"] += 1
