"""replay/demo as a gateway for other subscribers: replay -> proxy -> listen loses nothing, and the
summary counts only what the named subscriber received."""
from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
import zmq

from edge.feed.proxy import Proxy
from edge.paths import REPO_ROOT

from .helpers import ListenerThread, free_port, wait_until

SAMPLE = REPO_ROOT / "sample_streams" / "walkthrough"

pytestmark = pytest.mark.skipif(not (SAMPLE / "thermal.mkv").exists(), reason="sample stream not rendered (make run)")


def demo_proc(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "demo", str(SAMPLE), *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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


def test_expected_subscriber_that_never_comes_is_a_one_line_error():
    port = free_port()
    proc = demo_proc("--endpoint", f"tcp://127.0.0.1:{port}", "--wait-s", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: tcp://127.0.0.1:{port}: 1 of 1 subscriber(s) never "
                                                   "subscribed to alert.sample-gate-1"), err
    assert "nothing was replayed" in lines[0] and "ALERT" not in out
