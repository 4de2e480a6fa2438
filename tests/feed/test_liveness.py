"""Silence is a report too: a listener or proxy that hears nothing says so, per endpoint, within
seconds; servers log every refused CURVE key once (rate-limited). Real CURVE sockets on loopback."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time

import pytest
import zmq

from edge.feed import liveness
from edge.feed.liveness import SilenceWatch
from edge.feed.proxy import Proxy
from edge.feed.publishing import FeedConfig
from edge.feed.security import (
    ClientKeys,
    DenialLog,
    create_keys,
    key_fingerprint,
    load_public,
)
from edge.paths import REPO_ROOT
from tests.support import free_port, wait_until

from .helpers import ListenerThread, open_test_feed

SILENCE_TIMEOUT_S = liveness.NO_HEARTBEAT_S + 5.0  # "within a few seconds", with room for a busy machine


def test_timers_live_in_one_place():
    """The numbers the docs and the issue quote; every user reads them from edge.feed.liveness."""
    assert liveness.NO_HEARTBEAT_S == 5.0
    assert liveness.SILENCE_REPEAT_S == 30.0
    assert liveness.DENIAL_REPEAT_S == 60.0
    # the gateway's default heartbeat is well inside the silence limit
    default_hb = FeedConfig.model_fields["heartbeat_s"].default
    assert default_hb * liveness.HEARTBEATS_MISSED <= liveness.NO_HEARTBEAT_S
    w = SilenceWatch("ep", 0.0)
    assert (w.no_heartbeat_s, w.repeat_s) == (liveness.NO_HEARTBEAT_S, liveness.SILENCE_REPEAT_S)
    assert DenialLog().repeat_s == liveness.DENIAL_REPEAT_S


# (action, time s, heartbeat interval) -> expected event or None
SILENCE_CASES = {
    "never heard: reported after 5 s, then every 30 s": (
        [("check", 4.9, None, None), ("check", 5.1, None, "no_heartbeat"), ("check", 20.0, None, None),
         ("check", 35.2, None, "no_heartbeat"), ("heard", 40.0, 1.0, "heartbeat_back"), ("check", 44.0, None, None)]),
    "heard, then silent, then back": (
        [("heard", 1.0, 1.0, None), ("check", 5.9, None, None), ("check", 6.1, None, "no_heartbeat"),
         ("heard", 7.0, 1.0, "heartbeat_back"), ("heard", 8.0, 1.0, None), ("check", 13.5, None, "no_heartbeat")]),
    "slow heartbeats: 3 missed, not 5 s": (
        [("heard", 0.0, 10.0, None), ("check", 29.0, None, None), ("check", 30.5, None, "no_heartbeat")]),
}


@pytest.mark.parametrize("steps", SILENCE_CASES.values(), ids=SILENCE_CASES.keys())
def test_silence_watch(steps):
    w = SilenceWatch("tcp://x:1", 0.0)
    for action, t, interval, expected in steps:
        notice = w.heard(t, interval) if action == "heard" else w.check(t)
        assert (notice.event if notice else None) == expected, (action, t)
        if notice is not None and expected == "no_heartbeat":
            assert f"no heartbeat from tcp://x:1 for {t - w.last_heard_s:.0f} s (gateway down, wrong endpoint, " \
                   "or CURVE key not accepted" in notice.message


def test_denial_log_once_per_key_then_rate_limited():
    d = DenialLog(repeat_s=60.0)
    assert "refused CURVE client key aa from 10.0.0.1" in d.note("aa", "10.0.0.1", "Unknown key", 0.0)
    assert d.note("aa", "10.0.0.1", "Unknown key", 1.0) is None
    assert d.note("aa", "10.0.0.2", "Unknown key", 2.0) is None
    assert d.note("bb", "10.0.0.1", "Unknown key", 3.0) is not None  # another key: its own first line
    line = d.note("aa", "10.0.0.1", "Unknown key", 61.0)
    assert "3 more time(s)" in line and "10.0.0.1, 10.0.0.2" in line
    assert d.note("aa", "10.0.0.1", "Unknown key", 62.0) is None
    assert d.denials == 6


def test_key_fingerprint_same_from_raw_and_z85(tmp_path):
    create_keys(tmp_path, ["c"])
    z = load_public(tmp_path / "c.key")
    assert key_fingerprint(z) == key_fingerprint(zmq.utils.z85.decode(z)) == key_fingerprint(z.decode())
    assert len(key_fingerprint(z)) == 16


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    create_keys(d / "gateway", ["server"])
    create_keys(d / "room", ["client", "intruder"], authorize_into=None)
    (d / "gateway" / "authorized").mkdir()
    shutil.copy(d / "room" / "client.key", d / "gateway" / "authorized")
    create_keys(d / "proxy", ["server", "proxy-client"])  # proxy-client is never authorized at the gateway
    (d / "proxy" / "authorized").mkdir()
    shutil.copy(d / "room" / "client.key", d / "proxy" / "authorized")
    return d


def _listener(endpoint: str, keys: ClientKeys | None):
    ctx = zmq.Context()
    notices = []
    lt = ListenerThread(ctx, [endpoint], keys=keys, on_notice=notices.append)
    return ctx, lt, notices


@pytest.mark.slow
def test_listener_reports_each_silent_endpoint_and_gateway_logs_refused_key(tmp_path, keys, caplog):
    gw_ctx = zmq.Context()
    feed = open_test_feed(gw_ctx, tmp_path, server_secret_key=str(keys / "gateway" / "server.key_secret"),
                          authorized_clients_dir=str(keys / "gateway" / "authorized"))
    room, server_pub = keys / "room", keys / "gateway" / "server.key"
    wrong_ep = f"tcp://127.0.0.1:{free_port()}"
    cases = {
        "wrong server key": (feed.endpoint, ClientKeys(room / "client.key_secret", room / "intruder.key")),
        "unauthorized client key": (feed.endpoint, ClientKeys(room / "intruder.key_secret", server_pub)),
        "wrong endpoint": (wrong_ep, ClientKeys(room / "client.key_secret", server_pub)),
        "authorized": (feed.endpoint, ClientKeys(room / "client.key_secret", server_pub)),
    }
    running = {name: _listener(ep, ck) for name, (ep, ck) in cases.items()}
    try:
        with caplog.at_level(logging.WARNING):
            t0 = time.monotonic()
            for _, lt, _ in running.values():
                lt.__enter__()
            for name in ("wrong server key", "unauthorized client key", "wrong endpoint"):
                notices = running[name][2]
                wait_until(lambda: notices, SILENCE_TIMEOUT_S, what=f"{name}: silence reported")
                n = notices[0]
                assert n.event == "no_heartbeat" and n.endpoint == cases[name][0], name
                assert f"no heartbeat from {cases[name][0]} for 5 s (gateway down, wrong endpoint, or CURVE key " \
                       "not accepted" in n.message, name
                body = n.body()
                assert body["kind"] == "listener" and body["event"] == "no_heartbeat" and body["silent_s"] >= 5.0
            assert time.monotonic() - t0 < SILENCE_TIMEOUT_S
            assert running["authorized"][2] == []  # a heard endpoint is never reported
            assert running["authorized"][1].listener.stats.heartbeats > 0
        # the gateway logged the refused key once, with its fingerprint and address (the
        # client's catch-up retries and reconnects would be refused again: still one line)
        fp = key_fingerprint(load_public(room / "intruder.key"))
        lines = [r.getMessage() for r in caplog.records if "refused CURVE client key" in r.getMessage()]
        assert [ln for ln in lines if fp in ln and "from 127.0.0.1" in ln] == lines and len(lines) == 1, lines
        assert feed.auth.denial_log.denials >= 1
        assert key_fingerprint(load_public(room / "client.key")) not in caplog.text
    finally:
        for ctx, lt, _ in running.values():
            lt.__exit__(None, None, None)
            ctx.destroy(linger=0)
        feed.close()
        gw_ctx.destroy(linger=0)


@pytest.mark.slow
def test_listener_says_when_the_gateway_is_back(tmp_path):
    port = free_port()
    gw_ctx = zmq.Context()
    ep = f"tcp://127.0.0.1:{port}"
    feed = open_test_feed(gw_ctx, tmp_path, endpoint=ep)
    ctx, lt, notices = _listener(ep, None)
    try:
        with lt:
            wait_until(lambda: lt.listener.stats.heartbeats >= 2, what="heartbeats")
            feed.close()
            wait_until(lambda: notices, SILENCE_TIMEOUT_S, what="gateway down reported")
            assert notices[0].event == "no_heartbeat" and notices[0].endpoint == ep
            feed = open_test_feed(gw_ctx, tmp_path, endpoint=ep)  # restarted on the same endpoint
            wait_until(lambda: len(notices) >= 2, SILENCE_TIMEOUT_S, what="gateway back reported")
            assert notices[1].event == "heartbeat_back" and "again after" in notices[1].message
    finally:
        feed.close()
        ctx.destroy(linger=0)
        gw_ctx.destroy(linger=0)


@pytest.mark.slow
def test_proxy_reports_silent_upstreams_and_logs_refused_clients(tmp_path, keys, caplog):
    gw_ctx, proxy_ctx, room_ctx = zmq.Context(), zmq.Context(), zmq.Context()
    feed = open_test_feed(gw_ctx, tmp_path, server_secret_key=str(keys / "gateway" / "server.key_secret"),
                          authorized_clients_dir=str(keys / "gateway" / "authorized"))
    from edge.feed.security import ServerKeys, start_authenticator

    auth = start_authenticator(proxy_ctx, keys / "proxy" / "authorized", "proxy")
    wrong_ep = f"tcp://127.0.0.1:{free_port()}"
    # The gateway does not know the proxy's key; the second upstream is not there at all.
    proxy = Proxy(proxy_ctx, [(feed.endpoint, keys / "gateway" / "server.key"), (wrong_ep, None)],
                  "tcp://127.0.0.1:*",
                  server_keys=ServerKeys(keys / "proxy" / "server.key_secret", keys / "proxy" / "authorized"),
                  client_keys=ClientKeys(keys / "proxy" / "proxy-client.key_secret", keys / "gateway" / "server.key"))
    stop = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(stop,), daemon=True)
    try:
        with caplog.at_level(logging.WARNING):
            thread.start()
            assert proxy.bound.wait(10)
            intruder_keys = ClientKeys(keys / "room" / "intruder.key_secret", keys / "proxy" / "server.key")
            intruder = ListenerThread(room_ctx, [proxy.last_endpoint], keys=intruder_keys)
            with intruder:
                wait_until(lambda: proxy.stats.silent_reports >= 2, SILENCE_TIMEOUT_S, what="silent upstreams reported")
                wait_until(lambda: auth.denial_log.denials > 0, what="proxy refused the intruder")
        text = caplog.text
        for ep in (feed.endpoint, wrong_ep):
            assert f"no heartbeat from upstream {ep} for 5 s (gateway down, wrong endpoint, or CURVE key " \
                   "not accepted" in text
        proxy_fp = key_fingerprint(load_public(keys / "proxy" / "proxy-client.key"))
        assert f"feed: refused CURVE client key {proxy_fp} from 127.0.0.1" in text  # the gateway's log
        intruder_fp = key_fingerprint(load_public(keys / "room" / "intruder.key"))
        assert f"proxy: refused CURVE client key {intruder_fp} from 127.0.0.1" in text  # the proxy's log
    finally:
        stop.set()
        thread.join(5)
        auth.stop()
        feed.close()
        for c in (gw_ctx, proxy_ctx, room_ctx):
            c.destroy(linger=0)


@pytest.mark.slow
def test_listen_json_prints_the_silence_notice(tmp_path):
    """The console reads `listen --json`: the notice arrives there as a JSON line within seconds."""
    ep = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "listen", ep, "--json"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(SILENCE_TIMEOUT_S + 5)  # + interpreter start-up
        assert lines and lines[0], "no line on stdout"
        body = json.loads(lines[0])
        assert body["kind"] == "listener" and body["event"] == "no_heartbeat" and body["endpoint"] == ep
        assert "CURVE key not accepted" in body["message"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "no heartbeat from " + ep in err  # and the readable line on stderr
