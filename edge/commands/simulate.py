"""`thermal-edge simulate SCENARIO.toml --out DIR` renders a seeded scenario into a recording with
truth.json; `thermal-edge simulate --list` lists the scenarios in sample_streams/."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge.paths import CALIBRATION_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="render a scenario into a recording with ground truth",
                       description=" ".join(__doc__.split()))
    p.add_argument("scenario", nargs="?", type=Path, help="scenario TOML (e.g. sample_streams/walkthrough/scenario.toml)")
    p.add_argument("--out", type=Path, help="output recording folder")
    p.add_argument("--force", action="store_true", help="replace the recording in a non-empty --out folder")
    p.add_argument("--seed", type=int, help="override the scenario's seed (same people, new noise and background)")
    p.add_argument("--list", action="store_true", help="list the bundled scenarios with one-line descriptions")
    p.set_defaults(func=run)


def list_scenarios() -> list[tuple[str, str, bool, str]]:
    """[(name, description, rendered and fresh, hard case)] for sample_streams/*/scenario.toml."""
    from edge.sim.render_all import is_fresh, scenario_files
    from edge.sim.scenario import ScenarioError, load_scenario

    rows = []
    for f in scenario_files():
        try:
            sc = load_scenario(f)
            rows.append((f.parent.name, sc.description, is_fresh(f), sc.hard_case))
        except ScenarioError as e:
            rows.append((f.parent.name, f"INVALID: {e}", False, ""))
    return rows


def run(args: argparse.Namespace) -> int:
    from edge.errors import UserError

    if args.list:
        rows = list_scenarios()
        width = max((len(r[0]) for r in rows), default=4)
        for name, desc, fresh, _ in rows:
            print(f"{name:<{width}}  {'rendered' if fresh else 'not rendered':<12}  {desc}")
        print(f"\n{len(rows)} scenarios in sample_streams/; render with `python -m edge.sim.render_all`, "
              "replay with `thermal-edge demo sample_streams/NAME`, score with `thermal-edge eval sample_streams/NAME`")
        return 0
    if args.scenario is None or args.out is None:
        raise UserError("simulate: give SCENARIO.toml and --out DIR (or --list)")
    from edge.io.recording import claim_output_dir
    from edge.sim import ScenarioError, render_scenario

    claim_output_dir(args.out, args.force)
    t0 = time.perf_counter()
    try:
        truth = render_scenario(args.scenario, args.out, seed=args.seed)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    n_rgb, n_th = len(truth["frames"]["rgb"]), len(truth["frames"]["thermal"])
    print(f"{args.out}: {n_rgb} RGB + {n_th} thermal frames in {time.perf_counter() - t0:.1f} s")
    cal = CALIBRATION_DIR / f"{truth['station_id']}.toml"
    if not cal.is_file():
        print(f"  note: {cal.name} does not exist in calibration/: replaying needs one; its [registration] "
              f"numbers are truth.json 'registration'")
    for p in truth["persons"]:
        exp = p["expected"]
        verdict = exp["status"] + (f" ({exp['reason']})" if exp["reason"] else "")
        print(f"  person {p['id']}: core {p['core_c']:.2f} C, canthus {p['canthus_c']:.2f} C, mask {p['mask']}, "
              f"expected {verdict}, {exp['valid_frames']} measurable thermal frames")
    return 0
