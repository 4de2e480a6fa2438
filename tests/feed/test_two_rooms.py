"""The documented recipe for two control rooms on one gateway works as written (docs/messages.md,
"Two control rooms"): keygen per room into one allowlist, `listen --keys ROOM_DIR` for each."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest
import zmq

from edge.cli import main as cli_main
from edge.feed.publishing import utc_iso
from edge.feed.security import key_fingerprint, load_public
from edge.paths import REPO_ROOT

from .helpers import alert_event, open_test_feed


def _read_lines(proc, n, out, timeout_s=30.0):
    def read():
        while len(out) < n:
            line = proc.stdout.readline()
            if not line:
                return
            out.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout_s)


@pytest.mark.slow
def test_two_control_rooms_recipe(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert cli_main(["keygen", str(keys / "gateway"), "--name", "server"]) == 0
    assert cli_main(["keygen", str(keys / "room1"), "--name", "client", "--authorize",
                     str(keys / "gateway" / "authorized")]) == 0
    assert cli_main(["keygen", str(keys / "room2"), "--name", "room2", "--authorize",
                     str(keys / "gateway" / "authorized")]) == 0
    out = capsys.readouterr().out
    fp = key_fingerprint(load_public(keys / "room2" / "room2.key"))
    assert f"fingerprint {fp}" in out  # what the gateway would log if it refused this key
    assert cli_main(["keygen", "--fingerprint", str(keys / "room2" / "room2.key_secret")]) == 0
    assert capsys.readouterr().out.strip().endswith(f"fingerprint {fp}")
    for room in ("room1", "room2"):
        shutil.copy(keys / "gateway" / "server.key", keys / room)

    ctx = zmq.Context()
    feed = open_test_feed(ctx, tmp_path, server_secret_key=str(keys / "gateway" / "server.key_secret"),
                          authorized_clients_dir=str(keys / "gateway" / "authorized"))
    procs = []
    try:
        for i in range(3):
            feed.publisher.publish_event(alert_event(i), utc_iso())
        for room in ("room1", "room2"):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "listen", feed.endpoint, "--keys", str(keys / room), "--json",
                 "--from-start"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            lines: list[str] = []
            _read_lines(proc, 3, lines)
            assert [json.loads(ln)["seq"] for ln in lines] == [1, 2, 3], lines
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=10)
        feed.close()
        ctx.destroy(linger=0)


def test_keys_folder_with_several_secrets_asks_which(tmp_path, capsys):
    assert cli_main(["keygen", str(tmp_path), "--name", "a", "--name", "b"]) == 0
    capsys.readouterr()
    assert cli_main(["listen", "tcp://127.0.0.1:1", "--keys", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "several secret keys (a.key_secret, b.key_secret)" in err and "--client-key" in err
