"""Tables and the Markdown evaluation report (docs/evaluation.md) for `thermal-edge eval`.

The report states the commit it was made at, the simulated-scenario results (edge.eval.scenarios)
and, when the third-party data is present, the real-data sections from the detector engineer's
``edge.eval.faces.evaluate_faces_dir`` and the calibration engineer's ``edge.eval.clinical.evaluate_csv``.
A section that cannot run says why instead of silently disappearing.
"""
from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.eval.tables import fmt_num
from edge.paths import REPO_ROOT


def shared_data_dir() -> Path:
    """../shared/data next to the repo; THERMAL_EDGE_SHARED_DATA overrides."""
    return Path(os.environ.get("THERMAL_EDGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def git_commit() -> str:
    """HEAD's short hash, with '+dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _rel(p: Path) -> str:
    """A path as the reader would type it from the repo (../shared/data/...)."""
    return os.path.relpath(p, REPO_ROOT)


def _f(v: Any, nd: int = 2) -> str:
    return fmt_num(v, nd)


def _pct(v: float | None) -> str:
    return fmt_num(v, 1, percent=" %")


# What the "canthus err" column is (console table and report): written once, printed under both.
CANTHUS_ERR_LEGEND = ("canthus err: per person, the skin (inner-canthus) temperature the pipeline reported minus "
                      "the simulated true canthus temperature, °C; mean = signed average over the persons "
                      "(bias), max = the largest absolute error. It measures the measurement, before the "
                      "skin-to-core model.")


def stream_table(rows: list[dict]) -> list[str]:
    """One line per stream: verdicts right, face recall, canthus error, alerts, pairs/s."""
    out = ["| scenario | hard case | verdicts right | face recall masked / unmasked | face precision | "
           "canthus err per subject mean / max (°C) | alerts true / false | alert recall | pairs/s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, c, a = r["faces"], r["canthus_error_subject"], r["alerts"]
        out.append(f"| {r['scenario']} | {r['hard_case']} | {r['verdicts_correct']}/{len(r['persons'])} | "
                   f"{_pct(f['masked']['recall'])} / {_pct(f['unmasked']['recall'])} | {_pct(f['precision'])} | "
                   f"{_f(c['mean_c'])} / {_f(c['max_abs_c'])} | {a['true']} / {a['false']} | {_pct(a['recall'])} | "
                   f"{_f(r['pairs_per_s'], 1)} |")
    return out


def person_table(rows: list[dict]) -> list[str]:
    out = ["| scenario | person | core °C | canthus °C | mask / glasses | expected | pipeline | skin meas. °C | "
           "skin err °C | core est. °C | tracks |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for p in r["persons"]:
            exp = p["expected"] + (f" ({p['expected_reason']})" if p["expected_reason"] else "")
            got = p["got"] + (f" ({p['got_reason']})" if p["got_reason"] else "")
            mark = "" if p["correct"] else " ✗"
            wear = p["mask"] + (" / glasses" if p["glasses"] else "")
            out.append(f"| {r['scenario']} | {p['id']} | {p['core_c']:.2f} | {p['canthus_c']:.2f} | {wear} | {exp} | "
                       f"{got}{mark} | {_f(p['skin_c'])} | {_f(p['skin_error_c'])} | {_f(p['core_est_c'])} | "
                       f"{len(p['tracks'])} |")
    return out


def confusion_table(conf: dict) -> list[str]:
    cols = ["elevated", "normal", "indeterminate", "missed"]
    out = ["| expected \\ pipeline | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for e, row in conf.items():
        out.append(f"| {e} | " + " | ".join(str(row[g]) for g in cols) + " |")
    return out


def summary_lines(total: dict) -> list[str]:
    c, fr, a, f = total["canthus_error_subject"], total["canthus_error_frame"], total["alerts"], total["faces"]
    return [
        f"- verdicts: **{total['verdicts_correct']} / {total['persons']}** persons as expected",
        f"- alerts: {a['n']} ({a['true']} true, {a['false']} false, {a['unmatched']} unmatched, "
        f"{a['duplicates']} duplicate); precision {_pct(a['precision'])}, recall {_pct(a['recall'])} "
        f"({a['recalled']} of {a['expected_elevated']} expected-elevated persons)",
        f"- face detection per paired frame (IoU ≥ 0.5): recall masked {_pct(f['masked_recall'])}, unmasked "
        f"{_pct(f['unmasked_recall'])} (faces ≥ 64 px tall: masked {_pct(f['masked_h64_recall'])}, unmasked "
        f"{_pct(f['unmasked_h64_recall'])}); precision {_pct(f['precision'])}",
        f"- canthus temperature error per measured subject (verdict skin − true canthus max, n={c['n']}): "
        f"mean {_f(c['mean_c'])} °C, mean |err| {_f(c['mean_abs_c'])}, p95 |err| {_f(c['p95_abs_c'])}, "
        f"max |err| {_f(c['max_abs_c'])} °C",
        f"- per measured frame (n={fr['n']}): mean {_f(fr['mean_c'])} °C, p95 |err| {_f(fr['p95_abs_c'])}, "
        f"max |err| {_f(fr['max_abs_c'])} °C",
        f"- throughput: {total['pairs']} pairs, median {_f(total['pairs_per_s_median'], 1)} pairs/s per stream "
        "(replay as fast as it goes, this machine, shared CPU -- see `make bench` for speed)",
    ]


def _optional_section(title: str, module: str, call: Callable[[], str]) -> list[str]:
    """A section produced by another stage's module (``call`` imports and runs it); says what
    failed instead of silently disappearing or stopping the report."""
    out = [f"## {title}", ""]
    try:
        text = call()
    except Exception as e:  # noqa: BLE001 -- the report must say what failed, not die
        return out + [f"Failed: {module} raised {type(e).__name__}: {e}", ""]
    text = text.strip()
    if text.startswith("#"):  # the module titles its own section
        text = "## " + text.lstrip("#").strip()
        return [text, ""]
    return out + [text, ""]


def _lab_battery() -> str:
    from edge.eval.labbattery import lab_battery_markdown, run_lab_battery

    return lab_battery_markdown(run_lab_battery())


def lab_battery_section() -> list[str]:
    return _optional_section("Lab battery on simulated frames (after IEC 80601-2-59)", "edge.eval.labbattery",
                             _lab_battery)


def _data_section(title: str, path: Path, module: str, call: Callable[[], str]) -> list[str]:
    if not path.exists():
        return [f"## {title}", "", f"Missing: {path} not found (set THERMAL_EDGE_SHARED_DATA).", ""]
    return _optional_section(title, module, call)


def _faces(d: Path) -> str:
    from edge.eval.faces import evaluate_faces_dir, format_table
    from edge.vision.detection import build_detector

    res = evaluate_faces_dir(d, build_detector())
    return "\n".join([f"`thermal-edge eval-faces {_rel(d)}` -- {res.get('n_images')} photos, {res.get('n_faces')} "
                      f"faces, mean detect {_f(res.get('mean_detect_ms'), 1)} ms/photo", "", "```",
                      format_table(res), "```"])


def _clinical(csv: Path) -> str:
    from edge.eval.clinical import evaluate_csv

    res = evaluate_csv(csv)
    keys = [k for k in ("n", "threshold_c", "sensitivity", "specificity", "tp", "fn", "tn", "fp", "in_sample")
            if k in res]
    extra = [k for k, v in res.items() if k not in keys and not isinstance(v, (list, dict)) and k != "csv"
             and k != "model_file"]
    return "\n".join([f"`thermal-edge eval-clinical {_rel(csv)}` (model {_rel(Path(res['model_file']))})", ""]
                     + [f"- {k}: {_f(res[k], 3)}" for k in keys] + [f"- {k}: {res[k]}" for k in extra])


def _flir(d: Path) -> str:
    from edge.io.flir import real_files_markdown

    return real_files_markdown(d)


def real_data_sections(data: Path) -> list[str]:
    """The evaluations on ../shared/data that other stages own, in report order."""
    faces, csv, flir = data / "masked_faces", data / "facial_oral" / "FLIR_dev.csv", data / "flir_rjpeg"
    return [
        *_data_section("Real data: face detection and mask status (masked_faces)", faces, "edge.eval.faces",
                       lambda: _faces(faces)),
        *_data_section("Real data: skin-to-core model and fever decision (facial_oral)", csv, "edge.eval.clinical",
                       lambda: _clinical(csv)),
        *_data_section("Real data: FLIR radiometric JPEGs (flir_rjpeg)", flir, "edge.io.flir",
                       lambda: _flir(flir)),
    ]


def markdown_report(rows: list[dict], total: dict, commands: str, failures: list[str] | tuple[str, ...] = ()) -> str:
    data = shared_data_dir()
    lines = [
        "# Evaluation report",
        "",
        f"Generated by `{commands}` at commit `{git_commit()}` on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}). Regenerate with `make eval`.",
        "",
        "## Simulated scenarios (sample_streams/, truth from edge/sim)",
        "",
        "Each stream is replayed through the real pipeline (`edge.replay.replay`, default config + "
        "calibration/<station>.toml) and scored against its truth.json (docs/truth.md): expected verdict per "
        "person (threshold 37.5 °C on true core), face boxes per frame, true canthus maximum.",
        "",
        *summary_lines(total),
        *([""] + [f"- **FAILED** (not in the numbers above): {m}" for m in failures] if failures else []),
        "",
        "### Verdict confusion (persons)",
        "",
        *confusion_table(total["confusion"]),
        "",
        "### Per scenario",
        "",
        *stream_table(rows),
        "",
        CANTHUS_ERR_LEGEND,
        "",
        "### Per person",
        "",
        *person_table(rows),
        "",
        *lab_battery_section(),
        *real_data_sections(data),
    ]
    return "\n".join(lines) + "\n"


def console_table(rows: list[dict], total: dict) -> str:
    head = f"{'scenario':<20} {'verdicts':>8} {'recall m/u':>13} {'prec':>6} {'canthus err':>12} {'alerts t/f':>10} {'pairs/s':>8}"
    out = [head, "-" * len(head)]
    for r in rows:
        f, c, a = r["faces"], r["canthus_error_subject"], r["alerts"]
        rm, ru = (fmt_num(f[k]["recall"], missing="-") for k in ("masked", "unmasked"))
        out.append(f"{r['scenario']:<20} {r['verdicts_correct']:>3}/{len(r['persons']):<4} {rm:>6}/{ru:<6} "
                   f"{_f(f['precision']):>6} {_f(c['mean_c']):>6}/{_f(c['max_abs_c']):<5} "
                   f"{a['true']:>4}/{a['false']:<5} {_f(r['pairs_per_s'], 1):>8}")
        for p in r["persons"]:
            if not p["correct"]:
                exp = p["expected"] + (f"({p['expected_reason']})" if p["expected_reason"] else "")
                got = p["got"] + (f"({p['got_reason']})" if p["got_reason"] else "")
                out.append(f"  person {p['id']}: expected {exp}, got {got}")
    out += ["", CANTHUS_ERR_LEGEND, ""]
    out += [line.replace("**", "") for line in summary_lines(total)]
    return "\n".join(out)
