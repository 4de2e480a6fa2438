"""`thermal-edge replay STREAM [--config FILE] [--annotate out.webm]`: run a recording through the
full pipeline and print the events; with --annotate also write the preview video (RGB and
false-colour thermal side by side with faces, canthi, temperatures, verdicts, gate reasons).

Without --annotate this is `thermal-edge demo` (events as a feed subscriber receives them).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a recording through the pipeline; print events, optionally "
                                      "write an annotated preview video")
    p.add_argument("stream", type=Path, help="recording folder (see sample_streams/FORMAT.md)")
    p.add_argument("--config", type=Path, help="station config TOML (default: defaults + $THERMAL_EDGE_CALIBRATION, else STREAM/calibration.toml, else calibration/<station>.toml)")
    p.add_argument("--annotate", type=Path, metavar="OUT.webm",
                   help="write the annotated preview video here: .webm (VP8, plays in every browser), .mp4 "
                        "(H.264 where this OpenCV build can encode it, else MPEG-4 Part 2), .mkv or .avi")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*", help="where the demo feed binds (without --annotate)")
    p.add_argument("--json", action="store_true", help="print raw JSON bodies instead of readable lines")
    p.add_argument("--all", action="store_true", help="also print screening results (normal/indeterminate)")
    from edge.commands._common import add_subscriber_args

    add_subscriber_args(p)  # the feed options of demo: --subscribers, --journal, --realtime, --loop ...
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any frame of the recording could not be read (default: replay every "
                        "readable frame, report the rest as lost, exit 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.annotate is None:
        from edge.commands._common import run_demo

        return run_demo(args)
    import zmq

    from edge.errors import UserError

    if args.realtime or args.loop != 1 or args.journal or args.subscribers:
        raise UserError("--annotate writes a preview video: it takes no --realtime, --loop, --journal or --subscribers")
    from edge.annotate import Annotator
    from edge.commands._common import replay_config, report_losses
    from edge.feed.client import format_alert_line
    from edge.feed.publishing import Publisher
    from edge.io.recording import open_recording
    from edge.replay import replay
    from edge.station import quiet_opencv

    quiet_opencv()
    rec = open_recording(args.stream)
    cfg = replay_config(args.config, rec)
    if cfg is None:
        return 2
    annotator = Annotator(args.annotate, cfg, fps=rec.meta.thermal.fps, thermal_units=rec.meta.thermal.units)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)  # no subscriber: the bodies are printed from what was published
    pub.bind("inproc://replay")
    publisher = Publisher(pub, cfg.station.id, None, include_images=False)
    try:
        result = replay(args.stream, cfg, publisher=publisher,
                        on_pair=lambda res: annotator.write(res.pair, res))
    finally:
        annotator.close()
        publisher.close()
        ctx.term()
    kinds = {"alert", "screening"} if args.all else {"alert"}
    for body in result.published:
        if body.get("kind") in kinds:
            print(json.dumps(body) if args.json else format_alert_line(body))
    statuses = [v.status for v in result.verdicts.values()]
    print(f"summary: subjects seen {len(statuses)}, elevated {statuses.count('elevated')}, "
          f"normal {statuses.count('normal')}, indeterminate {statuses.count('indeterminate')} | "
          f"pairs {result.pairs} ({result.stats.describe_unpaired()}) at {result.pairs_per_s:.1f} pairs/s "
          f"| preview {args.annotate} ({annotator.frames} frames, {annotator.codec})")
    if annotator.codec_note:
        print(f"note: {annotator.codec_note}")
    return report_losses(result, args.strict)
