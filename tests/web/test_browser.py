"""End to end in headless Chromium: a real gateway feed (Publisher + journal, loopback) publishes
alerts; the console runs as its own process; two operators use it in two browser contexts.

The page shows each alert, an operator opens one, acknowledges it and records a secondary reading,
sees the audit entry, exports CSV; the other operator's page shows the acknowledgement without a
reload; the console is SIGKILLed and restarted mid-replay and the page ends with every alert once.
Screenshots go to $THERMAL_EDGE_SCREENSHOTS when set."""
from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import zmq

from tests.feed.helpers import alert_event, open_test_feed
from tests.web.conftest import (
    ConsoleProcess,
    TcpRelay,
    browser_login,
    free_port,
    write_console_config,
)

pytestmark = pytest.mark.slow
TIME = "2026-11-26T09:00:06.500Z"
WAIT_MS = 15_000


def card_ids(page) -> list[str]:
    return page.eval_on_selector_all("#queue .alert-card", "els => els.map(e => e.dataset.id)")


def shot(page, name: str) -> None:
    folder = os.environ.get("THERMAL_EDGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def setup(tmp_path, chromium):
    ctx = zmq.Context()
    feed = open_test_feed(ctx, tmp_path, include_images=True)
    port = free_port()
    cfg = write_console_config(tmp_path / "console", [feed.endpoint], [feed.catchup_endpoint], port=port,
                               stale_after_s=5.0)
    console = ConsoleProcess(cfg, port)
    console.adduser("ann")
    console.adduser("bob")
    console.start()
    contexts = [chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
                for _ in range(2)]
    yield feed, console, contexts
    for c in contexts:
        c.close()
    console.stop()
    feed.close()
    ctx.term()


def test_operator_flow_two_browsers_and_console_restart(setup):
    feed, console, (ctx_a, ctx_b) = setup
    page_a, page_b = ctx_a.new_page(), ctx_b.new_page()
    errors: list[str] = []
    page_a.on("pageerror", lambda e: errors.append(str(e)))
    browser_login(page_a, console.url, "ann")
    relay = TcpRelay(console.port)  # bob reaches the console through a link we can cut
    browser_login(page_b, relay.url, "bob")
    page_a.wait_for_selector("#live.ok", timeout=WAIT_MS)
    page_b.wait_for_selector("#live.ok", timeout=WAIT_MS)

    epoch = feed.publisher.epoch

    def eid(track: int) -> str:
        return f"gate-1-{epoch}-alert-{track}"

    # 1. each alert appears in both pages, without a reload
    for track in range(1, 6):
        feed.publisher.publish_event(alert_event(track, images=track % 2 == 1), TIME)
        for page in (page_a, page_b):
            page.wait_for_selector(f'#queue .alert-card[data-id="{eid(track)}"]', timeout=WAIT_MS)
    assert sorted(card_ids(page_a)) == sorted(eid(t) for t in range(1, 6))
    # the visual cue (card and top bar flash) and a mute switch that sticks
    assert "new" in page_a.get_attribute(f'.alert-card[data-id="{eid(5)}"]', "class")
    assert "flash-alert" in page_a.get_attribute("body", "class")
    page_a.click("#mute")
    assert page_a.inner_text("#mute") == "sound: muted"
    assert page_a.evaluate("() => localStorage.getItem('te-muted')") == "1"
    page_a.click("#mute")
    assert page_a.inner_text("#mute") == "sound: on"

    # a network cut on bob's side: alerts published meanwhile appear after it, once each
    relay.cut()
    page_b.wait_for_selector("#live.down", timeout=WAIT_MS)
    for track in range(90, 93):
        feed.publisher.publish_event(alert_event(track), TIME)
    page_a.wait_for_selector(f'.alert-card[data-id="{eid(92)}"]', timeout=WAIT_MS)
    time.sleep(1.5)  # the page retries against a dead link meanwhile
    relay.restore()
    page_b.wait_for_selector(f'.alert-card[data-id="{eid(92)}"]', timeout=WAIT_MS)
    page_b.wait_for_selector("#live.ok", timeout=WAIT_MS)
    assert sorted(card_ids(page_b)) == sorted(card_ids(page_a))

    # 2. ann opens alert 3 (with images), acknowledges it
    page_a.click(f'.alert-card[data-id="{eid(3)}"]')
    page_a.wait_for_selector(f'.detail[data-id="{eid(3)}"] img[alt="face snapshot"]', timeout=WAIT_MS)
    page_a.click(".detail button[data-action=take]")
    page_a.wait_for_selector(".detail .audit tr.audit-acknowledged", timeout=WAIT_MS)
    # bob's page shows who took it, without reloading
    page_b.wait_for_selector(f'.alert-card[data-id="{eid(3)}"] .badge.taken:has-text("taken by ann")', timeout=WAIT_MS)
    # bob tries to take it too: a clear message
    page_b.click(f'.alert-card[data-id="{eid(3)}"]')
    page_b.wait_for_selector(f'.detail[data-id="{eid(3)}"]', timeout=WAIT_MS)
    assert page_b.locator(".detail button[data-action=take]").count() == 0  # no button offered
    assert "ann" in page_b.inner_text(".detail .taken-by")

    # 3. ann records the secondary reading and closes
    page_a.fill(".close-form input[name=secondary_c]", "38.4")
    page_a.select_option(".close-form select[name=site]", "oral")
    page_a.select_option(".close-form select[name=outcome]", "confirmed")
    page_a.fill(".close-form textarea[name=note]", "sent to the clinic")
    page_a.click(".close-form button[type=submit]")
    page_a.wait_for_selector(".detail .audit tr.audit-closed", timeout=WAIT_MS)
    audit_text = page_a.inner_text(".detail .audit")
    assert "confirmed elevated; secondary 38.4 °C oral; note: sent to the clinic" in audit_text
    page_b.wait_for_selector(f'.alert-card[data-id="{eid(3)}"] .badge.closed:has-text("confirmed elevated")',
                             timeout=WAIT_MS)
    page_b.wait_for_selector(f'.detail[data-id="{eid(3)}"] .audit tr.audit-closed', timeout=WAIT_MS)
    # an alert without images says so
    page_a.click(f'.alert-card[data-id="{eid(2)}"]')
    page_a.wait_for_selector(f'.detail[data-id="{eid(2)}"]', timeout=WAIT_MS)
    assert "sends no images" in page_a.inner_text(".detail")
    page_a.click(f'.alert-card[data-id="{eid(3)}"]')
    page_a.wait_for_selector(f'.detail[data-id="{eid(3)}"] img[alt="thermal crop"]', timeout=WAIT_MS)
    shot(page_a, "queue")

    # 4. CSV export from the history page
    page_a.goto(console.url + "/history")
    shot(page_a, "history")
    with page_a.expect_download() as dl:
        page_a.click("#csv-export")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert sorted(r["event_id"] for r in rows) == sorted(eid(t) for t in (*range(1, 6), 90, 91, 92))
    closed = next(r for r in rows if r["event_id"] == eid(3))
    assert (closed["outcome"], closed["secondary_c"], closed["secondary_site"], closed["closed_by"]) == \
        ("confirmed elevated", "38.4", "oral", "ann")
    page_a.goto(console.url + "/stations")
    page_a.wait_for_selector('tr.station[data-station="gate-1"]', timeout=WAIT_MS)
    shot(page_a, "stations")
    page_a.goto(console.url + "/stats")
    shot(page_a, "stats")
    page_a.goto(console.url + "/")
    page_a.wait_for_selector("#live.ok", timeout=WAIT_MS)

    # 5. the replay goes on while the console is SIGKILLed and restarted: every alert exactly once
    # (published from this thread: the gateway's journal connection belongs to the thread that opened it)
    published: list[str] = [eid(t) for t in (*range(1, 6), 90, 91, 92)]
    for track in range(6, 46):
        feed.publisher.publish_event(alert_event(track), TIME)
        published.append(eid(track))
        if track == 15:
            console.kill()  # no clean shutdown
            page_a.wait_for_selector("#live.down", timeout=WAIT_MS)  # the page says it lost the console
        if track == 25:
            console.start()  # alerts 16..25 were published while it was down
        time.sleep(0.05)
    for page in (page_a, page_b):
        deadline = time.monotonic() + 30
        while len(card_ids(page)) < len(published) and time.monotonic() < deadline:
            time.sleep(0.1)
        page.wait_for_selector("#live.ok", timeout=WAIT_MS)
        time.sleep(1.0)  # anything doubled would have arrived by now
        ids = card_ids(page)
        assert Counter(ids).most_common(1)[0][1] == 1, "an alert is shown twice"
        assert sorted(ids) == sorted(published)
    # open alerts nobody took for stale_after_s (5 s here) are highlighted; the closed one is not
    assert page_a.locator(f'.alert-card.stale[data-id="{eid(1)}"]').count() == 1
    assert page_a.locator(f'.alert-card.stale[data-id="{eid(3)}"]').count() == 0
    assert errors == []
