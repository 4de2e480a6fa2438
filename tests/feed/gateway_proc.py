"""A scripted gateway for the fault tests: Publisher + journal + catch-up in its own process.

    python tests/feed/gateway_proc.py JOURNAL PUB_EP CATCHUP_EP N_ALERTS INTERVAL_S [--keys DIR]

Publishes alerts until the journal holds N_ALERTS decided ones (so a restarted gateway goes on
where the killed one stopped, as a real gateway's decided alerts are not decided again; the
`end`s a restart sends for events left open are not counted) or SIGUSR1 says
stop, printing "ready PUB_EP CATCHUP_EP" once bound and "done" at the end, then keeps
heartbeating until killed.
"""
from __future__ import annotations

import signal
import sys
import time

import zmq

from edge.feed.journal import Journal
from edge.feed.publishing import FeedConfig, open_feed, utc_iso

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from feed.helpers import alert_event  # noqa: E402


def main(argv: list[str]) -> None:
    journal_path, pub_ep, catchup_ep, n_alerts, interval_s = argv[:5]
    keys = dict(server_secret_key=f"{argv[6]}/server.key_secret", authorized_clients_dir=f"{argv[6]}/authorized") \
        if len(argv) > 6 and argv[5] == "--keys" else {}
    probe = Journal(journal_path)  # alerts decided so far; the ends a restart adds do not count
    start = sum(b'"end_reason"' not in frames[1] for frames in probe.all_frames("alert"))
    probe.close()
    ctx = zmq.Context()
    feed = open_feed(ctx, FeedConfig(endpoint=pub_ep, catchup_endpoint=catchup_ep, journal_path=journal_path,
                                     heartbeat_s=0.2, **keys), "gate-1")
    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))
    print("ready", feed.endpoint, feed.catchup_endpoint, flush=True)
    for i in range(start, int(n_alerts)):
        if stop:
            break
        feed.publisher.publish_event(alert_event(i), utc_iso())
        time.sleep(float(interval_s))
    print("done", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1:])
