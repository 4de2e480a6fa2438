"""The station's web pages in headless Chromium (Playwright driving Debian's chromium), against a
real recording-backed station process (`thermal-edge run`, live mode, looping sample streams):
frames that change on /, the kiosk's message in the glasses, febrile and blackbody-occluded
scenarios, /align, and rendering that stops when the viewer leaves. Screenshots of the three
pages go to the folder THERMAL_EDGE_SCREENSHOTS names (=1: docs/station-web/)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edge.paths import REPO_ROOT
from edge.web.auth import Users
from tests.support import free_port, sample_stream

USER, PASSWORD = "viewer1", "station view test"
SHOTS = REPO_ROOT / "docs" / "station-web"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def browser(chromium):
    """The session's one headless Chromium (tests/web/conftest.py): a second sync_playwright in
    the same process would find the first one's event loop running and refuse."""
    return chromium


class StationProc:
    """`thermal-edge run` on a looping recording with [web] on, in its own process."""

    def __init__(self, tmp: Path, stream: str, **web: object):
        rec = sample_stream(stream)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        users = tmp / "users.txt"
        Users(users).set(USER, "viewer", PASSWORD)
        cam = f'kind = "recording"\npath = "{rec}"\nloop = true\n'
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in web.items())
        cfg = tmp / "station.toml"
        cfg.write_text(
            f'[station]\nid = "web-test"\n[calibration]\npath = "{REPO_ROOT / "calibration" / "sample-gate-1.toml"}"\n'
            f'[sources]\nmode = "live"\n[sources.rgb]\n{cam}[sources.thermal]\n{cam}'
            f'[health]\nmetrics_port = 0\nlog_format = "text"\nstatus_interval_s = 1.0\n'
            f'[feed]\nendpoint = "tcp://127.0.0.1:{free_port()}"\ncatchup_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
            f'journal_path = "{tmp / "journal.sqlite"}"\n[guidance]\npublish = true\n'
            f'[web]\nenabled = true\nport = {self.port}\nusers_file = "{users}"\n'
            f'session_secret_file = "{tmp / "secret"}"\n{extra}')
        self.log = open(tmp / "station.log", "w+")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(cfg)],
                                     cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                urllib.request.urlopen(self.url + "/login", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("station web server did not come up:\n" + self.output())

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def station(tmp_path, request):
    procs: list[StationProc] = []

    def start(stream: str, **web: object) -> StationProc:
        (tmp_path / stream).mkdir()
        procs.append(StationProc(tmp_path / stream, stream, **web))
        return procs[-1]

    yield start
    for p in procs:
        p.close()


def login(browser, st: StationProc, path: str, viewport=(1400, 900)):
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = ctx.new_page()
    page.goto(st.url + path)
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(st.url + path, timeout=10_000)
    return ctx, page


def stats(page, st: StationProc) -> dict:
    return page.evaluate("async (u) => (await fetch(u, {credentials: 'same-origin'})).json()", st.url + "/view/stats")


def wait_for(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shot(page, name: str) -> None:
    folder = os.environ.get("THERMAL_EDGE_SCREENSHOTS")  # a folder, as the console's tests take it
    if folder:
        target = SHOTS if folder == "1" else Path(folder)  # "1": straight into docs/station-web
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / name), full_page=False)


@pytest.mark.slow
def test_live_view_shows_changing_frames_and_stops_rendering_without_viewer(browser, station):
    st = station("walkthrough")
    ctx, page = login(browser, st, "/")
    img = page.locator("img#view")
    wait_for(lambda: page.evaluate("() => document.getElementById('view').naturalWidth") > 1000, 20,
             "the first MJPEG frame")
    first = img.screenshot()
    wait_for(lambda: img.screenshot() != first, 10, "a different frame")
    s1 = stats(page, st)
    assert s1["viewers"]["live"] == 1 and s1["rendered"]["live"] > 0 and s1["render_errors"] == 0
    # a person in view, for the screenshot
    wait_for(lambda: page.evaluate("async () => (await (await fetch('/guidance')).json()).people") > 0, 20,
             "a person in view")
    time.sleep(1.0)
    shot(page, "live.png")
    # the frames are never cached: the stream says so
    headers = page.evaluate("async () => { const c = new AbortController(); const r = await fetch('/stream/live.mjpg', "
                            "{signal: c.signal}); const h = r.headers.get('cache-control'); c.abort(); return h; }")
    assert "no-store" in headers
    # the viewer leaves: rendering stops (the stream's task is cancelled, the hub has no viewer)
    page.goto("about:blank")
    ctx2, page2 = login(browser, st, "/kiosk")
    wait_for(lambda: stats(page2, st)["viewers"]["live"] == 0, 10, "the viewer count back to 0")
    time.sleep(0.5)  # a frame already being drawn when the viewer left may still finish
    before = stats(page2, st)["rendered"]["live"]
    time.sleep(1.5)
    assert stats(page2, st)["rendered"]["live"] == before, "frames still rendered without a viewer"
    ctx.close()
    ctx2.close()


def kiosk_until(page, key: str, timeout_s: float, reason: str | None = None) -> dict:
    """What the kiosk shows once its message is ``key`` (and its reason ``reason``, if given)."""
    return wait_for(lambda: page.evaluate(
        "([k, r]) => { const b = document.getElementById('kiosk'); return b.dataset.key === k && "
        "(r === null || b.dataset.reason === r) ? {text: document.getElementById('message').textContent, "
        "people: +b.dataset.people, reason: b.dataset.reason} : null; }", [key, reason]),
        timeout_s, f"the kiosk to show {key!r} ({reason})")


@pytest.mark.slow
def test_kiosk_glasses(browser, station):
    st = station("glasses")
    ctx, page = login(browser, st, "/kiosk", viewport=(1280, 720))
    shown = kiosk_until(page, "glasses", 30)
    assert shown["text"] == "Please remove your glasses"
    assert shown["people"] >= 1  # shown while the person is in view
    shot(page, "kiosk.png")
    assert page.locator("#temp").is_hidden()  # no temperatures on the kiosk unless enabled
    ctx.close()


@pytest.mark.slow
def test_kiosk_febrile_sends_to_staff(browser, station):
    st = station("febrile")
    ctx, page = login(browser, st, "/kiosk")
    assert kiosk_until(page, "see_staff", 30)["text"] == "Please see the staff"
    assert page.locator("#temp").is_hidden()
    ctx.close()


@pytest.mark.slow
def test_kiosk_blackbody_occluded_pauses(browser, station):
    st = station("blackbody_occluded")
    ctx, page = login(browser, st, "/kiosk")
    # start-up is paused too (the blackbody settles: 'unstable'); wait for the occlusion itself
    assert kiosk_until(page, "paused", 40, reason="blackbody_missing")["text"] == "Screening paused"
    # and screening resumes once the blackbody is back
    kiosk_until(page, "step_closer", 30)
    ctx.close()


@pytest.mark.slow
def test_align_renders(browser, station):
    st = station("walkthrough")
    ctx, page = login(browser, st, "/align")
    wait_for(lambda: page.evaluate("() => document.getElementById('view').naturalWidth") > 1000, 20,
             "the first alignment frame")
    assert "parallax" in page.content() and "read-only" in page.content().lower()
    wait_for(lambda: page.evaluate("async () => (await (await fetch('/guidance')).json()).people") > 0, 20,
             "a person in view")
    time.sleep(1.0)
    shot(page, "align.png")
    s = stats(page, st)
    assert s["viewers"]["align"] == 1 and s["rendered"]["align"] > 0 and s["rendered"]["live"] == 0
    ctx.close()


@pytest.mark.slow
def test_pages_need_login_and_frames_are_not_cached(station):
    st = station("walkthrough")
    for path in ("/", "/kiosk", "/align", "/stream/live.mjpg", "/guidance", "/view/stats"):
        req = urllib.request.Request(st.url + path, headers={"Accept": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 401, path
