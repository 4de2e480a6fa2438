"""Let no one in: CURVE + ZAP allowlist on the feed, the catch-up channel and the proxy."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
import zmq
import zmq.auth

from edge.cli import main as cli_main
from edge.feed.proxy import Proxy
from edge.feed.publishing import utc_iso
from edge.feed.security import (
    ClientKeys,
    KeyFileError,
    ServerKeys,
    create_keys,
    make_client,
    start_authenticator,
)
from tests.support import wait_until

from .helpers import ListenerThread, alert_event, assert_exactly_once, open_test_feed

N_ALERTS = 20


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    create_keys(d / "gateway", ["server"])
    create_keys(d / "proxy", ["server"])
    create_keys(d / "room", ["client", "intruder"])
    create_keys(d / "proxy", ["proxy-client"], authorize_into=d / "gateway" / "authorized")  # proxy -> gateway
    for allowlist in (d / "gateway" / "authorized", d / "proxy" / "authorized"):
        allowlist.mkdir(exist_ok=True)
        shutil.copy(d / "room" / "client.key", allowlist)  # intruder.key is valid but never allowlisted
    return d


def secured_feed(ctx, tmp_path, keys):
    return open_test_feed(ctx, tmp_path, server_secret_key=str(keys / "gateway" / "server.key_secret"),
                          authorized_clients_dir=str(keys / "gateway" / "authorized"))


def run_clients(feed, clients: dict[str, tuple[list[str], ClientKeys | None]], catchup: list[str]):
    """Start one listener per client (each in its own context), publish N_ALERTS, return them."""
    ctxs, threads = [], {}
    for name, (endpoints, ck) in clients.items():
        ctxs.append(zmq.Context())
        threads[name] = ListenerThread(ctxs[-1], endpoints, catchup=catchup, keys=ck, request_timeout_s=0.5)
        threads[name].__enter__()
    try:
        allowed = [t for n, t in threads.items() if n.startswith("allowlisted")]
        for t in allowed:  # live path up (heartbeats arrive) before the alerts
            wait_until(lambda: t.listener.stats.received > 0, what="allowlisted client connected")
        for i in range(N_ALERTS):
            feed.publisher.publish_event(alert_event(i), utc_iso())
            time.sleep(0.01)
        for t in allowed:
            wait_until(lambda: len(t.messages) >= N_ALERTS, what="allowlisted client")
        time.sleep(1.5)  # the others had every chance: live, heartbeats and catch-up retries
    finally:
        for t in threads.values():
            t.__exit__(None, None, None)
        for c in ctxs:
            c.destroy(linger=0)
    return threads


@pytest.mark.slow
def test_only_allowlisted_clients_receive_anything(tmp_path, keys):
    ctx = zmq.Context()
    feed = secured_feed(ctx, tmp_path, keys)
    try:
        room = keys / "room"
        server_pub = keys / "gateway" / "server.key"
        clients = {
            "no key": ([feed.endpoint], None),
            "wrong server key": ([feed.endpoint], ClientKeys(room / "client.key_secret", room / "intruder.key")),
            "valid key not allowlisted": ([feed.endpoint], ClientKeys(room / "intruder.key_secret", server_pub)),
            "allowlisted": ([feed.endpoint], ClientKeys(room / "client.key_secret", server_pub)),
        }
        # Catch-up is asked explicitly: the channel itself must refuse the others too.
        threads = run_clients(feed, clients, [feed.catchup_endpoint])
        for name in ("no key", "wrong server key", "valid key not allowlisted"):
            stats = threads[name].listener.stats
            assert threads[name].messages == [] and stats.received == 0, f"{name} received something"
            assert stats.catchup_requests > 1  # it kept asking, and got no answer
        ok = threads["allowlisted"]
        assert_exactly_once(ok.msg_ids(), [f"gate-1/{feed.publisher.epoch}/alert/{i}" for i in range(1, N_ALERTS + 1)],
                            "CURVE allowlisted client")
    finally:
        feed.close()
        ctx.destroy(linger=0)


@pytest.mark.slow
def test_proxy_is_secured_both_ways(tmp_path, keys):
    gw_ctx, proxy_ctx = zmq.Context(), zmq.Context()
    feed = secured_feed(gw_ctx, tmp_path, keys)
    auth = start_authenticator(proxy_ctx, keys / "proxy" / "authorized")
    proxy = Proxy(proxy_ctx, [(feed.endpoint, keys / "gateway" / "server.key")], "tcp://127.0.0.1:*",
                  server_keys=ServerKeys(keys / "proxy" / "server.key_secret", keys / "proxy" / "authorized"),
                  client_keys=ClientKeys(keys / "proxy" / "proxy-client.key_secret", keys / "gateway" / "server.key"))
    stop = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert proxy.bound.wait(10)
        room = keys / "room"
        proxy_pub = keys / "proxy" / "server.key"
        # Catch-up goes to the gateway with the gateway's key, given per endpoint.
        catchup = [f"{feed.catchup_endpoint}={keys / 'gateway' / 'server.key'}"]
        clients = {
            "no key": ([proxy.last_endpoint], None),
            "valid key not allowlisted": ([proxy.last_endpoint], ClientKeys(room / "intruder.key_secret", proxy_pub)),
            "allowlisted": ([proxy.last_endpoint], ClientKeys(room / "client.key_secret", proxy_pub)),
        }
        threads = run_clients(feed, clients, catchup)
        for name in ("no key", "valid key not allowlisted"):
            assert threads[name].messages == [] and threads[name].listener.stats.received == 0, name
        ok = threads["allowlisted"]
        assert ok.listener.stats.received >= N_ALERTS  # live through the proxy, not only catch-up
        assert_exactly_once(ok.msg_ids(), [f"gate-1/{feed.publisher.epoch}/alert/{i}" for i in range(1, N_ALERTS + 1)],
                            "CURVE through proxy")
    finally:
        stop.set()
        thread.join(5)
        auth.stop()
        feed.close()
        gw_ctx.destroy(linger=0)
        proxy_ctx.destroy(linger=0)


def test_keygen_command(tmp_path, capsys):
    assert cli_main(["keygen", str(tmp_path / "k"), "--name", "room1", "--authorize", str(tmp_path / "allow")]) == 0
    assert (tmp_path / "k" / "room1.key_secret").stat().st_mode & 0o077 == 0
    assert (tmp_path / "allow" / "room1.key").exists()
    assert cli_main(["keygen", str(tmp_path / "k"), "--name", "room1"]) == 2  # never overwrites a key
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["keygen", str(tmp_path / "k2"), "--name", "room1", "--authorize", str(tmp_path / "allow")]) == 2
    assert "already authorized" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["listen", "tcp://127.0.0.1:1", "--client-key", "nope.key_secret", "--server-key", "x.key"], "nope.key_secret"),
    (["listen", "tcp://127.0.0.1:1", "--client-key", "a.key_secret"], "--server-key"),
    (["listen", "tcp://127.0.0.1:1", "--kinds", "gossip"], "--kinds"),
    (["proxy", "--upstream", "tcp://127.0.0.1:1", "--bind", "tcp://0.0.0.0:5570"], "not loopback"),
])
def test_cli_key_errors_are_one_line(argv, message, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_client_key_files_are_read_once(tmp_path):
    """Catch-up retries re-make their socket: they reuse the keys read for the first one."""
    create_keys(tmp_path, ["client", "server"])
    ck = ClientKeys(tmp_path / "client.key_secret", tmp_path / "server.key")
    ctx = zmq.Context()
    try:
        on_disk = (zmq.auth.load_certificate(ck.secret_file), zmq.auth.load_certificate(ck.server_public_file)[0])
        make_client(ctx.socket(zmq.DEALER), ck)
        (tmp_path / "client.key_secret").unlink()
        (tmp_path / "server.key").unlink()
        retry = ctx.socket(zmq.DEALER)
        make_client(retry, ck)  # would raise KeyFileError if the files were read again
        assert (ck.own(), ck.server_public()) == on_disk
        with pytest.raises(KeyFileError, match="other.key"):  # another server key file is still read
            make_client(retry, ck, tmp_path / "other.key")
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("a,b,result", [
    (None, None, False), ("k", "d", True), ("k", None, "B must be set too: CURVE needs both"),
    (None, "d", "A must be set too: CURVE needs both"),
])
def test_curve_pair_is_both_keys_or_neither(a, b, result):
    from edge.feed.security import curve_pair

    if isinstance(result, bool):
        assert curve_pair(("A", a), ("B", b), "both") is result
    else:
        with pytest.raises(ValueError, match=result):
            curve_pair(("A", a), ("B", b), "both")


@pytest.mark.parametrize("argv,line", [
    (["proxy", "--upstream", "tcp://127.0.0.1:1", "--server-secret-key", "s.key_secret"],
     "error: proxy: --authorized-clients must be set too: CURVE needs a secret key and an allowlist"),
    (["listen", "tcp://127.0.0.1:1", "--client-key", "c.key_secret"],
     "error: --server-key must be set too: CURVE needs both --client-key and --server-key"),
])
def test_commands_apply_the_one_curve_rule(argv, line, capsys):
    """The station config (test_publishing's FeedConfig table), the proxy and the listener all
    word a half-given key pair the same way: edge.feed.security.curve_pair, the one copy."""
    from edge.paths import REPO_ROOT

    assert cli_main(argv) == 2
    assert capsys.readouterr().err.startswith(line)
    copies = [p for p in (REPO_ROOT / "edge").rglob("*.py") if "must be set too" in p.read_text()]
    assert copies == [REPO_ROOT / "edge" / "feed" / "security.py"]
