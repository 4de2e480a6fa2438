"""`thermal-edge eval STREAM... [--all] [--json] [--json-out PATH] [--report docs/evaluation.md]`: replay simulated
streams through the real pipeline and score them against their truth (edge/eval/scenarios.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.commands._common import add_json_args, emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score the pipeline on simulated streams against their truth",
                       description=" ".join(__doc__.split()))
    p.add_argument("streams", nargs="*", type=Path, help="recording folders with truth.json")
    p.add_argument("--all", action="store_true", help="every scenario in sample_streams/ (rendered first if stale)")
    add_json_args(p, "the full results")
    p.add_argument("--report", type=Path, metavar="MD", help="write the Markdown report (e.g. docs/evaluation.md)")
    p.add_argument("--oracle", action="store_true",
                   help="score truth against itself instead of running the pipeline (checks the scoring)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.errors import UserError
    from edge.eval.report import console_table, markdown_report
    from edge.eval.scenarios import combine, evaluate_stream, oracle_result, score
    from edge.io.recording import open_recording

    streams = list(args.streams)
    if args.all:
        from edge.sim.render_all import main as render_all
        from edge.sim.render_all import scenario_files

        if render_all([]) != 0:
            raise UserError("eval --all: rendering the sample streams failed (see above)")
        streams += [f.parent for f in scenario_files()]
    if not streams:
        raise UserError("eval: give one or more stream folders, or --all")
    rows, failures = [], []
    from edge.progress import progress

    for s in progress(streams, "eval", len(streams), "stream"):
        print(f"evaluating {s} ...", file=sys.stderr, flush=True)
        if args.oracle:
            truth = open_recording(s).truth()
            if truth is None:
                raise UserError(f"{s / 'truth.json'}: missing (only simulated streams carry truth)")
            r = score(truth, oracle_result(truth))
            r["stream"] = str(s)
        elif len(streams) == 1:
            r = evaluate_stream(s)  # one stream: its error is the command's error
        else:
            try:  # many streams: one broken stage or stream must not hide the others' results
                r = evaluate_stream(s)
            except Exception as e:  # noqa: BLE001
                msg = f"{s}: {type(e).__name__}: {e}"
                print(f"error: {msg}", file=sys.stderr)
                failures.append(msg)
                continue
        for line in r.get("_loss_lines", []):  # scored on what could be read: say what could not
            print(f"warning: {s}: {line}", file=sys.stderr)
        rows.append(r)
    total = combine(rows)
    if not args.json:
        print(console_table(rows, total))
        for msg in failures:
            print(f"FAILED {msg}")
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    emit_json(args, {"streams": clean, "total": total, "failures": failures})
    if args.report:
        cmd = "thermal-edge eval " + ("--all" if args.all else " ".join(map(str, args.streams)))
        if args.oracle:
            cmd += " --oracle"
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(markdown_report(rows, total, cmd + f" --report {args.report}", failures))
        print(f"wrote {args.report}")
    return 1 if failures else 0
