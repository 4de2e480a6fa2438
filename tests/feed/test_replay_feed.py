"""replay/demo as a gateway for other subscribers: replay -> proxy -> listen loses nothing, and the
summary counts only what the named subscriber received."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
import zmq

from edge.feed.proxy import Proxy
from edge.paths import REPO_ROOT
from tests.support import free_port, wait_until

from .helpers import ListenerThread

SAMPLE = REPO_ROOT / "sample_streams" / "walkthrough"

pytestmark = pytest.mark.skipif(not (SAMPLE / "thermal.mkv").exists(), reason="sample stream not rendered (make run)")


def demo_proc(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", str(SAMPLE), *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_replay_through_a_proxy_started_first_loses_nothing():
    """The proxy is up first, the control room joins it late: on the old code the replay was over
    (and everything lost) by then, while its summary said "received" for its own subscriber."""
    port = free_port()
    ctx = zmq.Context()
    proxy = Proxy(ctx, [(f"tcp://127.0.0.1:{port}", None)], "tcp://127.0.0.1:*")
    stop = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(stop,), daemon=True)
    thread.start()
    proc = None
    try:
        assert proxy.bound.wait(10)
        proc = demo_proc("--endpoint", f"tcp://127.0.0.1:{port}")
        out: list[str] = []
        while True:  # until the replay waits for its subscriber, or is over (old code)
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith(("summary:", "station sample-gate-1: waiting for")):
                break
        with ListenerThread(ctx, [proxy.last_endpoint]) as lt:  # the control room joins now
            rest, err = proc.communicate(timeout=240)
            out.append(rest)
            text = "".join(out)
            assert proc.returncode == 0, text + err
            sent = int(re.search(r"messages sent (\d+)", text).group(1))
            assert sent > 0
            wait_until(lambda: len(set(lt.msg_ids())) >= sent, timeout_s=15, what="every alert through the proxy")
        assert len(set(lt.msg_ids())) == sent
        # the summary names whose reception it counts
        assert re.search(rf"messages sent {sent}, received {sent} by the local subscriber", text), text
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        stop.set()
        thread.join(5)
        ctx.destroy(linger=0)


@pytest.mark.slow
def test_expected_subscriber_that_never_comes_is_a_one_line_error():
    port = free_port()
    proc = demo_proc("--endpoint", f"tcp://127.0.0.1:{port}", "--wait-s", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: tcp://127.0.0.1:{port}: 1 of 1 subscriber(s) never "
                                                   "subscribed to alert.sample-gate-1"), err
    assert "nothing was replayed" in lines[0] and "ALERT" not in out


FEBRILE = REPO_ROOT / "sample_streams" / "febrile"


def _journal_alerts(path):
    from edge.feed.journal import Journal
    from edge.feed.messages import decode

    j = Journal(path, readonly=True)
    try:
        return [decode(f).body for f in j.all_frames("alert")]
    finally:
        j.close()


@pytest.mark.slow
def test_replay_journal_and_loop(tmp_path):
    journal = tmp_path / "replay.sqlite"
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "replay", str(SAMPLE), "--journal", str(journal),
                           "--loop", "2"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| 2 loops" in proc.stdout and f"journal {journal}" in proc.stdout
    bodies = _journal_alerts(journal)
    per_loop = len(bodies) // 2
    assert per_loop > 0 and len(bodies) == 2 * per_loop
    assert [b["seq"] for b in bodies] == list(range(1, len(bodies) + 1))  # one feed, seq going on
    assert len({b["epoch"] for b in bodies}) == 1
    # each loop's people are new people: no event_id reused within the epoch
    events = {b["event_id"] for b in bodies}
    assert len(events) == 2 * len({b["event_id"] for b in bodies[:per_loop]})
    assert f"messages sent {len(bodies)}, received {len(bodies)} by the local subscriber" in proc.stdout
    # a second run appends a new epoch, as a restarted gateway does
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "demo", str(SAMPLE), "--journal", str(journal)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len({b["epoch"] for b in _journal_alerts(journal)}) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (FEBRILE / "thermal.mkv").exists(), reason="sample stream not rendered (make run)")
def test_realtime_replay_lets_a_late_listener_catch_up(tmp_path):
    """A tester's catch-up drill: the control room joins after the first alert went out; it gets
    that one from the replay's journal (learned from the heartbeats' catch-up field) and the rest live."""
    port = free_port()
    journal = tmp_path / "replay.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", str(FEBRILE), "--realtime", "--journal",
                             str(journal), "--endpoint", f"tcp://127.0.0.1:{port}", "--subscribers", "0",
                             "--loop", "2"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    try:
        t_start = None
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if "replaying" in line:
                t_start = time.monotonic()
            if " ALERT " in line:
                break  # the first alert is out: join now
        with ListenerThread(ctx, [f"tcp://127.0.0.1:{port}"]) as lt:
            out, err = proc.communicate(timeout=120)
            elapsed = time.monotonic() - t_start
            assert proc.returncode == 0, out + err
            sent = [b["msg_id"] for b in _journal_alerts(journal)]
            wait_until(lambda: set(lt.msg_ids()) >= set(sent), timeout_s=10, what="every alert")
        assert sorted(lt.msg_ids()) == sorted(sent)
        assert lt.listener.stats.caught_up >= 1  # the first alert came from the journal
        # --realtime: two loops of a 6 s recording take at least that long
        assert elapsed >= 2 * 5.9 * 0.95, elapsed
    finally:
        if proc.poll() is None:
            proc.kill()
        ctx.destroy(linger=0)
