"""The console's pages and actions through HTTP (Starlette TestClient): logins and roles, CSRF on
every state change, bad input (malformed posts, unknown ids, double acknowledgement, a locked
database) answered with a clear message and nothing lost, CSV exports, and the field calibration
export read back by `thermal-edge calibrate clinical`."""
from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from edge.paths import REPO_ROOT
from edge.web import auth
from edge.web.console.app import build_console_app
from edge.web.console.config import validate_console
from edge.web.console.live import Notifier
from edge.web.console.routes import CALIBRATION_COLUMNS, CSV_COLUMNS
from edge.web.console.schema import make_engine
from edge.web.console.store import ConsoleStore
from tests.web.feedmsgs import event_msg

PASSWORD = "long enough"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    """The four users, hashed once per module (argon2id is slow on purpose: ~0.1 s a hash)."""
    path = tmp_path_factory.mktemp("users") / "users.txt"
    users = auth.Users(path)
    for name, role in (("ann", "operator"), ("bob", "operator"), ("vic", "viewer"), ("ada", "admin")):
        users.set(name, role, PASSWORD)
    return path


@pytest.fixture
def app(tmp_path, users_file):
    cfg = validate_console({"web": {"users_file": str(tmp_path / "users.txt"),
                                    "session_secret_file": str(tmp_path / "secret")},
                            "store": {"sqlite_path": str(tmp_path / "console.sqlite"), "busy_timeout_s": 0.2}})
    shutil.copy2(users_file, cfg.web.users_file)  # each test may change its own copy
    auth._FAILS.clear()
    store = ConsoleStore(make_engine(cfg.store.database_url, 0.2))
    app = build_console_app(cfg, store, None, Notifier())
    yield app
    store.engine.dispose()


def client(app, user: str | None) -> TestClient:
    c = TestClient(app)
    if user:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token, "next": "/"})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1)
        c.headers["Accept"] = "application/json"
    return c


def ingest(app, *msgs):
    for m in msgs:
        app.state.store.ingest(m)


def test_every_state_change_is_csrf_protected(app):
    assert auth.unprotected_posts(app.routes) == []
    ingest(app, event_msg(1))
    c = client(app, "ann")
    del c.headers["X-CSRF-Token"]
    r = c.post("/alerts/gate-1-1000-alert-1/take")
    assert r.status_code == 403 and "CSRF" in r.json()["error"]


def test_pages_need_login(app):
    ingest(app, event_msg(1, images=True))
    anon = TestClient(app)
    for path in ("/", "/stations", "/history", "/stats", "/history.csv", "/export/calibration.csv",
                 "/alerts/gate-1-1000-alert-1/image/rgb", "/api/queue", "/events"):
        r = anon.get(path, headers={"accept": "application/json"})
        assert r.status_code == 401, path
    assert anon.get("/", headers={"accept": "text/html"}, follow_redirects=False).headers["location"] == "/login?next=/"


def test_images_are_private_and_not_cached(app):
    ingest(app, event_msg(1, images=True), event_msg(2))
    c = client(app, "vic")
    r = c.get("/alerts/gate-1-1000-alert-1/image/rgb")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-store"
    assert c.get("/alerts/gate-1-1000-alert-2/image/rgb").status_code == 404
    assert c.get("/alerts/gate-1-1000-alert-1/image/passport").status_code == 404
    page = c.get("/alerts/gate-1-1000-alert-2?fragment=1").text
    assert "This station sends no images" in page and "no face snapshot" in page


def test_two_operators_one_alert(app):
    ingest(app, event_msg(1))
    ann, bob = client(app, "ann"), client(app, "bob")
    assert ann.post("/alerts/gate-1-1000-alert-1/take").json()["ok"]
    assert ann.post("/alerts/gate-1-1000-alert-1/take").status_code == 200  # the same operator again: no-op
    r = bob.post("/alerts/gate-1-1000-alert-1/take")
    assert r.status_code == 409 and "already acknowledged by ann" in r.json()["error"]
    r = bob.post("/alerts/gate-1-1000-alert-1/close", data={"outcome": "left"})
    assert r.status_code == 409 and "only they can close" in r.json()["error"]
    detail = bob.get("/alerts/gate-1-1000-alert-1?fragment=1").text
    assert "acknowledged by <b class=\"taken-by\">ann</b>" in detail


def test_admin_releases_anyones_alert(app):
    ingest(app, event_msg(1))
    ann, bob, ada = client(app, "ann"), client(app, "bob"), client(app, "ada")
    ann.post("/alerts/gate-1-1000-alert-1/take")
    assert bob.post("/alerts/gate-1-1000-alert-1/release").status_code == 409
    assert ada.post("/alerts/gate-1-1000-alert-1/release").status_code == 200
    assert bob.post("/alerts/gate-1-1000-alert-1/take").status_code == 200
    audit = bob.get("/alerts/gate-1-1000-alert-1?fragment=1").text
    assert "gave the alert back to the queue (taken by ann)" in audit


def test_viewer_cannot_act(app):
    ingest(app, event_msg(1))
    r = client(app, "vic").post("/alerts/gate-1-1000-alert-1/take")
    assert r.status_code == 403 and "operator role" in r.json()["error"]


@pytest.mark.parametrize("path, data, status, error", [
    ("/alerts/nope/take", {}, 404, "alert 'nope' not found"),
    ("/alerts/nope/close", {"outcome": "left"}, 404, "not found"),
    ("/alerts/gate-1-1000-alert-1/close", {"outcome": "confirmed", "secondary_c": "hot"}, 400, "not a number"),
    ("/alerts/gate-1-1000-alert-1/close", {"outcome": "bogus"}, 400, "outcome: choose"),
    ("/alerts/gate-1-1000-alert-1/note", {"note": "  "}, 400, "note: empty"),
])
def test_bad_input_gets_a_clear_message(app, path, data, status, error):
    ingest(app, event_msg(1))
    r = client(app, "ann").post(path, data=data)
    assert r.status_code == status and error in r.json()["error"]


def test_malformed_body(app):
    ingest(app, event_msg(1))
    c = client(app, "ann")
    r = c.post("/alerts/gate-1-1000-alert-1/close", content=b"\xff\x00garbage=%%%",
               headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and "malformed form post" in r.json()["error"]
    assert app.state.store.ingest(event_msg(2)) is True  # the console keeps working


def test_locked_database_answers_503_and_keeps_data(app, tmp_path):
    ingest(app, event_msg(1))
    c = client(app, "ann")
    blocker = sqlite3.connect(tmp_path / "console.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        r = c.post("/alerts/gate-1-1000-alert-1/take")
        assert r.status_code == 503
        assert "database unavailable" in r.json()["error"] and "NOT saved" in r.json()["error"]
        assert c.get("/api/queue").status_code == 200  # reads still work (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert c.post("/alerts/gate-1-1000-alert-1/take").status_code == 200
    assert c.get("/api/queue").json()["alerts"][0]["event_id"] == "gate-1-1000-alert-1"


def test_history_csv(app):
    ingest(app, event_msg(1, core_c=38.4), event_msg(2, core_c=38.9),
           event_msg(1, kind="screening", status="indeterminate", reason="glasses", track=5))
    c = client(app, "ann")
    c.post("/alerts/gate-1-1000-alert-1/close", data={"outcome": "confirmed", "secondary_c": "38.2", "site": "oral",
                                                      "note": "fever, sent home"})
    rows = list(csv.DictReader(io.StringIO(c.get("/history.csv").text)))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 3
    closed = next(r for r in rows if r["event_id"] == "gate-1-1000-alert-1")
    assert (closed["outcome"], closed["secondary_c"], closed["secondary_site"], closed["taken_by"], closed["note"]) == \
        ("confirmed elevated", "38.2", "oral", "ann", "fever, sent home")
    only = list(csv.DictReader(io.StringIO(c.get("/history.csv?verdict=indeterminate").text)))
    assert [r["reason"] for r in only] == ["glasses"]
    r = c.get("/history?from=yesterday", headers={"accept": "application/json"})
    assert r.status_code == 400 and "not a date" in r.json()["error"]


@pytest.mark.slow
def test_field_calibration_csv_round_trip(app, tmp_path):
    """The export is read as is by `thermal-edge calibrate clinical` (edge/eval/clinical.py)."""
    c = client(app, "ann")
    n = 40
    for i in range(1, n + 1):
        skin = 35.4 + 0.05 * i  # 35.45 .. 37.4
        core = round(skin + 1.2 + (0.15 if i % 3 else -0.15), 2)
        ingest(app, event_msg(i, core_c=skin + 1.3, skin_c=round(skin, 2)))
        outcome = "confirmed" if core >= 37.5 else "not_confirmed"
        r = c.post(f"/alerts/gate-1-1000-alert-{i}/close",
                   data={"outcome": outcome, "secondary_c": f"{core}", "site": "oral" if i <= 36 else "tympanic"})
        assert r.status_code == 200, r.text
    text = c.get("/export/calibration.csv").text  # default: oral readings only
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == CALIBRATION_COLUMNS and len(rows) == 36
    assert {r["site"] for r in rows} == {"oral"}
    out = tmp_path / "field.csv"
    out.write_text(text)
    r = subprocess.run([sys.executable, "-m", "edge.cli", "calibrate", "clinical", str(out), "--folds", "3",
                        "--repeats", "1", "--out", str(tmp_path / "model.toml")],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "36 subjects" in r.stdout and "0 excluded" in r.stdout
    assert "[skin_to_core]" in (tmp_path / "model.toml").read_text()
    for days, title in (("1", "per hour (UTC, last 24 h)"), ("7", "per day (UTC, last 7 days)"),
                        ("30", "per day (UTC, last 30 days)")):
        stats = c.get(f"/stats?days={days}", headers={"accept": "text/html"}).text
        assert "<svg" in stats and "PPV" in stats and f"people screened {title}" in stats
    assert c.get("/stats?days=2").status_code == 400


def test_stations_page_shows_diagnostics(app):
    ingest(app, event_msg(1))
    page = client(app, "vic").get("/stations", headers={"accept": "text/html"}).text
    assert "gate-1" in page and "Diagnostics" in page and "subscriber" in page
