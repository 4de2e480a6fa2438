"""Clinical calibration: skin (inner-canthus maximum) -> core temperature, and the fever decision.

Data: paired measurements in the columns of the FDA/PhysioNet facial-oral study
(``FLIR_dev.csv``: ``canthiMax1..4`` per measurement round, ``T_atm`` ambient degC,
``aveOralM`` oral reference degC). Fever = oral >= 37.5 degC.

Per subject the skin temperature is the mean of the available canthiMax rounds: the station
likewise averages a person's best frames (decision stage), so this is what it measures.

Models (``SkinToCore`` in edge/thermal/calibration.py):

* ``offset``  core = skin + c.
* ``linear``  core = a + b*skin + g*(ambient - 24). Fitted as a *calibration* (inverse)
  regression: skin = p0 + p1*core + p2*(ambient - 24) by least squares, then solved for core.
  Ordinary regression of core on skin shrinks every estimate towards the population mean (its
  slope is attenuated by the skin measurement noise), so a febrile 38.5 reads 37.6 and a fixed
  37.5 threshold misses fevers; the inverse fit keeps the estimate unbiased over the fever range.

Decision threshold on the estimated core: ``fixed`` (e.g. 37.5), ``youden`` (maximises
sensitivity + specificity on the training data) or ``sensitivity:0.9`` (highest threshold that
keeps training sensitivity >= 0.9). Honesty: model AND threshold are refitted inside every
training fold of a stratified k-fold cross-validation, repeated with different shuffles; the
reported sensitivity/specificity pool the held-out predictions only, with Wilson 95 % intervals.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.paths import REPO_ROOT
from edge.thermal import calibration
from edge.thermal.calibration import CalibrationError, SkinToCore

SHIPPED_MODEL = REPO_ROOT / "calibration" / "skin_to_core.toml"
AMBIENT_REF_C = 24.0
ROUND_COLUMNS = tuple(f"canthiMax{i}" for i in range(1, 5))


@dataclass
class ClinicalData:
    """skin_rounds_c: (N,R) canthus maxima per round, NaN where missing. ambient_c, core_c: (N,)."""

    subject: list[str]
    skin_rounds_c: np.ndarray
    ambient_c: np.ndarray
    core_c: np.ndarray
    source: str = ""

    @property
    def skin_c(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.nanmean(self.skin_rounds_c, axis=1)

    def usable(self) -> np.ndarray:
        return np.isfinite(self.skin_c) & np.isfinite(self.core_c) & np.isfinite(self.ambient_c)


def load_clinical_csv(path: str | Path, core_column: str = "aveOralM") -> ClinicalData:
    """Read a CSV with the FLIR_dev.csv columns. Missing ambient falls back to the reference
    ambient (the ambient term then vanishes). Raises CalibrationError naming file and column."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: clinical CSV not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read it: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CalibrationError(f"{path}: not a CSV text file (byte {e.start} is not UTF-8)") from None
    if "\0" in text:
        raise CalibrationError(f"{path}: not a CSV text file (it holds NUL bytes)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = reader.fieldnames or []
    rounds = [c for c in ROUND_COLUMNS if c in cols]
    missing = [c for c in (core_column,) if c not in cols] + ([] if rounds else ["canthiMax1..4"])
    if missing:
        raise CalibrationError(f"{path}: missing column(s) {', '.join(missing)}")
    subj, skin, amb, core = [], [], [], []
    for lineno, row in enumerate(reader, start=2):
        try:
            skin.append([_num(row[c]) for c in rounds])
            core.append(_num(row[core_column]))
            amb.append(_num(row.get("T_atm", "")))
        except ValueError as e:
            raise CalibrationError(f"{path}:{lineno}: {e}") from None
        subj.append(row.get("SubjectID", str(lineno)))
    if not subj:
        raise CalibrationError(f"{path}: no data rows")
    amb_arr = np.array(amb, np.float64)
    amb_arr[~np.isfinite(amb_arr)] = AMBIENT_REF_C
    return ClinicalData(subj, np.array(skin, np.float64), amb_arr, np.array(core, np.float64), str(path))


def _num(s: str | None) -> float:
    s = (s or "").strip()
    if s == "":
        return float("nan")
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"not a number: {s!r}") from None


# ---------------------------------------------------------------- fitting


def fit_model(skin_c: np.ndarray, ambient_c: np.ndarray, core_c: np.ndarray, model: str = "linear") -> SkinToCore:
    """Fit a SkinToCore (threshold and residual SD left at defaults; see ``calibrate``)."""
    skin, amb, core = (np.asarray(a, np.float64) for a in (skin_c, ambient_c, core_c))
    lo, hi = float(np.min(amb)), float(np.max(amb))
    if hi - lo < 0.5:
        lo, hi = lo - 0.5, hi + 0.5
    if model == "offset":
        return SkinToCore(model="offset", offset_c=float(np.mean(core - skin)))
    if model != "linear":
        raise ValueError(f"model={model!r}; allowed: 'offset', 'linear'")
    use_amb = np.ptp(amb) > 0.5
    a = np.c_[np.ones_like(core), core, amb - AMBIENT_REF_C] if use_amb else np.c_[np.ones_like(core), core]
    p = np.linalg.lstsq(a, skin, rcond=None)[0]
    p0, p1 = float(p[0]), float(p[1])
    p2 = float(p[2]) if use_amb else 0.0
    if p1 <= 0.05:
        raise ValueError(f"skin does not rise with core temperature in this data (slope {p1:.3f}); cannot calibrate")
    return SkinToCore(model="linear", intercept_c=-p0 / p1, skin_coef=1.0 / p1, ambient_coef=-p2 / p1,
                      ambient_ref_c=AMBIENT_REF_C, ambient_range_c=[lo, hi])


THRESHOLD_STEP_C = 0.1  # the decision stage takes thresholds in 0.1 degC steps (issue 5)


def choose_threshold(core_hat: np.ndarray, fever: np.ndarray, rule: str | float,
                     step_c: float = THRESHOLD_STEP_C) -> float:
    """Decision threshold on the estimated core, from training data only, on a ``step_c`` grid.

    rule: a number (fixed), 'youden' (max sensitivity + specificity; ties -> the higher
    threshold), or 'sensitivity:0.9' (highest threshold with sensitivity >= 0.9).
    """
    if isinstance(rule, (int, float)):
        return float(rule)
    grid = np.round(np.arange(36.5, 38.5 + step_c / 2, step_c), 3)
    pos = core_hat[None, :] >= grid[:, None]
    n_pos, n_neg = max(int(fever.sum()), 1), max(int((~fever).sum()), 1)
    sens = (pos & fever).sum(1) / n_pos
    spec = (~pos & ~fever).sum(1) / n_neg
    if rule == "youden":
        score = sens + spec
        return float(grid[np.flatnonzero(score == score.max())[-1]])
    if rule.startswith("sensitivity:"):
        target = float(rule.split(":", 1)[1])
        ok = np.flatnonzero(sens >= target)
        return float(grid[ok[-1]]) if len(ok) else float(grid[0])
    raise ValueError(f"threshold rule {rule!r}; allowed: a number, 'youden', 'sensitivity:<0..1>'")


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval for k successes out of n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def confusion(pred_pos: np.ndarray, fever: np.ndarray) -> dict[str, Any]:
    """Counts, sensitivity, specificity and their Wilson 95 % intervals."""
    tp = int((pred_pos & fever).sum())
    fn = int((~pred_pos & fever).sum())
    tn = int((~pred_pos & ~fever).sum())
    fp = int((pred_pos & ~fever).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"tp": tp, "fn": fn, "tn": tn, "fp": fp, "n": tp + fn + tn + fp,
            "sensitivity": sens, "sensitivity_ci95": list(wilson(tp, tp + fn)),
            "specificity": spec, "specificity_ci95": list(wilson(tn, tn + fp))}


def cross_validate(data: ClinicalData, model: str = "linear", rule: str | float = "youden",
                   fever_c: float = 37.5, folds: int = 10, repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold CV, repeated; model and threshold fitted on the training folds only.

    Returns the pooled confusion of the first repetition (with Wilson CIs), the mean and SD of
    sensitivity/specificity over all repetitions, the held-out residual SD of the core estimate
    and the thresholds the folds chose.
    """
    ok = data.usable()
    skin, amb, core = data.skin_c[ok], data.ambient_c[ok], data.core_c[ok]
    fever = core >= fever_c
    rng = np.random.default_rng(seed)
    per_rep, thresholds, resid, first = [], [], [], None
    for rep in range(repeats):
        fold = np.empty(len(core), int)
        for cls in (True, False):  # stratify: each fold gets its share of febrile subjects
            idx = rng.permutation(np.flatnonzero(fever == cls))
            fold[idx] = np.arange(len(idx)) % folds
        pred = np.zeros(len(core), bool)
        for k in range(folds):
            tr, te = fold != k, fold == k
            m = fit_model(skin[tr], amb[tr], core[tr], model)
            thr = choose_threshold(np.asarray(m.core_c(skin[tr], amb[tr])), fever[tr], rule)
            est = np.asarray(m.core_c(skin[te], amb[te]), np.float64)
            pred[te] = est >= thr
            thresholds.append(thr)
            if rep == 0:
                resid.append(est - core[te])
        c = confusion(pred, fever)
        per_rep.append((c["sensitivity"], c["specificity"]))
        if first is None:
            first = c
    arr = np.array(per_rep)
    res = np.concatenate(resid)
    return {
        "model": model, "threshold_rule": rule, "fever_definition_c": fever_c,
        "folds": folds, "repeats": repeats, "seed": seed, "n_subjects": int(ok.sum()),
        "n_febrile": int(fever.sum()), "n_excluded": int((~ok).sum()),
        "pooled_first_repeat": first,
        "sensitivity_mean": float(arr[:, 0].mean()), "sensitivity_sd": float(arr[:, 0].std()),
        "specificity_mean": float(arr[:, 1].mean()), "specificity_sd": float(arr[:, 1].std()),
        "heldout_residual_sd_c": float(np.std(res)), "heldout_bias_c": float(np.mean(res)),
        "threshold_median_c": float(np.median(thresholds)),
        "threshold_range_c": [float(np.min(thresholds)), float(np.max(thresholds))],
    }


def calibrate(data: ClinicalData, model: str = "linear", rule: str | float = "youden", fever_c: float = 37.5,
              folds: int = 10, repeats: int = 20, seed: int = 0) -> tuple[SkinToCore, dict[str, Any]]:
    """Cross-validate the procedure, then fit it once on all data: the model to ship, with the
    held-out residual SD as its uncertainty and the CV numbers in ``validation``."""
    cv = cross_validate(data, model, rule, fever_c, folds, repeats, seed)
    ok = data.usable()
    skin, amb, core = data.skin_c[ok], data.ambient_c[ok], data.core_c[ok]
    m = fit_model(skin, amb, core, model)
    thr = choose_threshold(np.asarray(m.core_c(skin, amb)), core >= fever_c, rule)
    p = cv["pooled_first_repeat"]
    validation = (
        f"{folds}-fold stratified CV x{repeats} (model and threshold refitted per fold): sensitivity "
        f"{cv['sensitivity_mean']:.3f} (sd {cv['sensitivity_sd']:.3f}), specificity {cv['specificity_mean']:.3f} "
        f"(sd {cv['specificity_sd']:.3f}); first repeat pooled TP {p['tp']} FN {p['fn']} TN {p['tn']} FP {p['fp']}, "
        f"sens 95% CI {p['sensitivity_ci95'][0]:.3f}-{p['sensitivity_ci95'][1]:.3f}, "
        f"spec 95% CI {p['specificity_ci95'][0]:.3f}-{p['specificity_ci95'][1]:.3f}")
    fitted_on = (
        f"{Path(data.source).name}: {cv['n_subjects']} subjects ({cv['n_febrile']} febrile, oral aveOralM >= "
        f"{fever_c}), skin = mean of canthiMax1..4, ambient = T_atm; {model} model"
        + (" by calibration (inverse) regression skin ~ core + ambient" if model == "linear" else "")
        + f"; decision threshold rule {rule}")
    shipped = m.model_copy(update={"residual_sd_c": round(max(cv["heldout_residual_sd_c"], 0.05), 4),
                                   "decision_threshold_c": thr, "fever_definition_c": fever_c,
                                   "fitted_on": fitted_on, "validation": validation})
    return _rounded(shipped), cv


def _rounded(m: SkinToCore) -> SkinToCore:
    return m.model_copy(update={k: round(getattr(m, k), 6) for k in
                                ("offset_c", "intercept_c", "skin_coef", "ambient_coef")})


# ---------------------------------------------------------------- shipped model


def load_skin_to_core(path: str | Path = SHIPPED_MODEL) -> SkinToCore:
    """The shipped model (calibration/skin_to_core.toml), or [skin_to_core] of ``path``."""
    return calibration.load_skin_to_core(path)


def evaluate(data: ClinicalData, model: SkinToCore, threshold_c: float, fever_c: float = 37.5) -> dict[str, Any]:
    """Apply a fixed model and threshold (no fitting). Per subject (mean of rounds, as the
    station aggregates a person) and per single round (one measurement)."""
    ok = data.usable()
    fever = data.core_c >= fever_c
    est = np.asarray(model.core_c(data.skin_c[ok], data.ambient_c[ok]), np.float64)
    out = {"threshold_c": threshold_c, "fever_definition_c": fever_c, "n_excluded": int((~ok).sum()),
           "per_subject": confusion(est >= threshold_c, fever[ok])}
    r = data.skin_rounds_c
    has = np.isfinite(r) & np.isfinite(data.core_c)[:, None]
    amb = np.broadcast_to(data.ambient_c[:, None], r.shape)
    est_r = np.asarray(model.core_c(r[has], amb[has]), np.float64)
    fev_r = np.broadcast_to(fever[:, None], r.shape)[has]
    out["per_round"] = confusion(est_r >= threshold_c, fev_r)
    return out


def evaluate_csv(path: str | Path, threshold_c: float | None = None, model_path: str | Path = SHIPPED_MODEL,
                 fever_c: float = 37.5) -> dict[str, Any]:
    """The shipped model and its decision threshold (or ``threshold_c``) applied to a CSV.

    Returns per_subject and per_round confusions (counts, sensitivity, specificity, Wilson 95 %
    intervals); the per-subject ones are repeated at the top level.

    NOTE: the shipped model was fitted on FLIR_dev.csv; evaluating it on that same file gives
    in-sample numbers (``in_sample`` says so) -- the honest ones are in the model's
    ``validation`` string (cross-validated), also returned here.
    """
    model = load_skin_to_core(model_path)
    data = load_clinical_csv(path)
    thr = model.decision_threshold_c if threshold_c is None else float(threshold_c)
    out = evaluate(data, model, thr, fever_c)
    out.update({"csv": str(path), "model_file": str(model_path), "model": model.model,
                "in_sample": Path(path).name in model.fitted_on, "cross_validated": model.validation})
    # the per-subject numbers (what the station decides on) also at the top level
    out.update({k: out["per_subject"][k] for k in ("n", "tp", "fn", "tn", "fp", "sensitivity", "specificity",
                                                   "sensitivity_ci95", "specificity_ci95")})
    return out
