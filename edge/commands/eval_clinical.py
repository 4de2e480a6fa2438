"""`thermal-edge eval-clinical CSV [--json] [--json-out PATH]`: the shipped skin->core model and threshold
applied to paired canthus/oral measurements; sensitivity and specificity with counts."""
from __future__ import annotations

import argparse

from edge.commands._common import add_json_args, emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-clinical", help="sensitivity/specificity of the shipped skin->core model on a CSV")
    p.add_argument("csv", help="CSV with the FLIR_dev.csv columns (canthiMax1..4, T_atm, aveOralM)")
    p.add_argument("--model", default=None, help="skin_to_core TOML (default: the shipped calibration/skin_to_core.toml)")
    p.add_argument("--threshold", type=float, default=None,
                   help="decision threshold on the estimated core, degC (default: the model's decision_threshold_c)")
    p.add_argument("--fever-c", type=float, default=37.5, help="reference temperature defining fever (default 37.5)")
    add_json_args(p, "the result")
    p.set_defaults(func=_run)


def format_confusion(name: str, c: dict) -> str:
    return (f"{name}: n {c['n']}  TP {c['tp']} FN {c['fn']} TN {c['tn']} FP {c['fp']}  "
            f"sensitivity {c['sensitivity']:.3f} [95% CI {c['sensitivity_ci95'][0]:.3f}-{c['sensitivity_ci95'][1]:.3f}]  "
            f"specificity {c['specificity']:.3f} [{c['specificity_ci95'][0]:.3f}-{c['specificity_ci95'][1]:.3f}]")


def _run(args: argparse.Namespace) -> int:
    from edge.eval.clinical import SHIPPED_MODEL, evaluate_csv

    res = evaluate_csv(args.csv, args.threshold, args.model or SHIPPED_MODEL, args.fever_c)
    emit_json(args, res)
    if args.json:
        return 0
    print(f"{args.csv}: model {res['model_file']} ({res['model']}), elevated if estimated core >= "
          f"{res['threshold_c']:.2f} degC; fever = reference >= {res['fever_definition_c']} degC")
    print(format_confusion("per subject (mean of rounds)", res["per_subject"]))
    print(format_confusion("per single round", res["per_round"]))
    if res["in_sample"]:
        print("note: the model was fitted on this file, so these are in-sample numbers; cross-validated: "
              + res["cross_validated"])
    return 0
