"""Regenerate docs/console/*.png: the console demo (sample streams, images on) in headless Chromium.

    .venv/bin/python tools/console_screenshots.py [--out docs/console]

Starts `thermal-edge console demo` in a temp folder, logs in as the demo operator, acknowledges
and closes a few alerts (secondary readings, outcomes) so every view has content, then saves
queue.png, stations.png, history.png and stats.png.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.console import CHROMIUM, CHROMIUM_ARGS, _free_port  # noqa: E402 (after the sys.path line)

OUTCOMES = [("confirmed", "38.6", "oral", "sent to the clinic"), ("not_confirmed", "37.0", "oral", ""),
            ("confirmed", "38.2", "oral", ""), ("not_found", "", "", "walked off before the check")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "console")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="te-console-shots-") as d:
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "console", "demo", "--dir", d, "--port", str(port), "--loop"],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            login = None
            for line in proc.stdout:
                if "log in as" in line:
                    login = line.split("log in as")[1].split("(")[0].split("/")
                    break
            assert login, "the demo printed no login"
            user, password = login[0].strip(), login[1].strip()
            base = f"http://127.0.0.1:{port}"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                for _ in range(100):
                    try:
                        page.goto(base + "/login")
                        break
                    except Exception:
                        time.sleep(0.2)
                page.fill("input[name=username]", user)
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                deadline = time.monotonic() + 150
                while page.locator("#queue .alert-card").count() < 10 and time.monotonic() < deadline:
                    time.sleep(0.5)
                cards = page.locator("#queue .alert-card")
                for i, (outcome, reading, site, note) in enumerate(OUTCOMES):
                    cards.nth(len(OUTCOMES) - i).click()
                    page.wait_for_selector(".detail .close-form")
                    if reading:
                        page.fill(".close-form input[name=secondary_c]", reading)
                        page.select_option(".close-form select[name=site]", site)
                    page.select_option(".close-form select[name=outcome]", outcome)
                    page.fill(".close-form textarea[name=note]", note)
                    page.click(".close-form button[type=submit]")
                    page.wait_for_selector(".detail .audit tr.audit-closed")
                cards.nth(len(OUTCOMES) + 1).click()
                page.wait_for_selector(".detail button[data-action=take]")
                page.click(".detail button[data-action=take]")
                page.wait_for_selector(".detail .audit tr.audit-acknowledged")
                cards.nth(0).click()
                page.wait_for_selector(".detail img[alt='thermal crop']")
                time.sleep(1.0)
                page.screenshot(path=str(args.out / "queue.png"))
                for view in ("stations", "history", "stats"):
                    page.goto(f"{base}/{view}")
                    time.sleep(1.0)
                    page.screenshot(path=str(args.out / f"{view}.png"), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)
    print(f"wrote {', '.join(str(args.out / f'{v}.png') for v in ('queue', 'stations', 'history', 'stats'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
