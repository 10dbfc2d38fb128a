#!/usr/bin/env python3
"""Writes fixtures.json: reference values of every metric-engine formula, computed with
scikit-learn, numpy and scipy, for shared/tests/reference.rs to compare against.

Run by hand (not by CI) whenever a case is added; the output is deterministic:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy scipy scikit-learn
    /tmp/refvenv/bin/python shared/tests/reference/generate.py

Definitions shared with the Rust side (docs/metric-engine.md):
- labeled = status ok with both predicted and actual; quality metrics use labeled records
  only, AUC-ROC the ok records with an actual and a score;
- latency quantiles are *lower* quantiles: the value of rank ceil(q*n) (1-based), which is
  numpy's method="inverted_cdf" (cross-checked below with exact rational arithmetic);
- MAPE is a fraction over records with actual != 0; records with actual == 0 are counted
  in mape_excluded;
- trends regress the value on x = days since the Unix epoch (ms / 86_400_000).
"""

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error
from sklearn.metrics import mean_absolute_percentage_error, mean_squared_error, roc_auc_score

SEED = 20250315
QUANTILES = ["0.5", "0.95", "0.99"]
MS_PER_DAY = 86_400_000
OUT = Path(__file__).with_name("fixtures.json")

rng = np.random.default_rng(SEED)


def as_float(value):
    return None if value is None else float(value)


def binary_case(name, records, scores_on_bin_centres):
    """records: dicts with status, predicted, actual, score (None when absent); written as
    [status, predicted, actual, score] arrays to keep the file small."""
    labeled = [r for r in records if r["status"] == "ok" and r["predicted"] is not None and r["actual"] is not None]
    y_true = [r["actual"] for r in labeled]
    y_pred = [r["predicted"] for r in labeled]
    expected = {"labeled": len(labeled), "accuracy": None, "f1_score": None, "auc_roc": None}
    if labeled:
        expected["accuracy"] = float(accuracy_score(y_true, y_pred))
        expected["f1_score"] = float(f1_score(y_true, y_pred, pos_label=True, zero_division=0))
    scored = [r for r in records if r["status"] == "ok" and r["actual"] is not None and r["score"] is not None]
    if len({r["actual"] for r in scored}) == 2:
        expected["auc_roc"] = float(roc_auc_score([r["actual"] for r in scored], [r["score"] for r in scored]))
    return {
        "name": name,
        "task": "binary_classification",
        "scores_on_bin_centres": scores_on_bin_centres,
        "records": [[r["status"], r["predicted"], r["actual"], r["score"]] for r in records],
        "expected": expected,
    }


def multiclass_case(name, records):
    labeled = [r for r in records if r["status"] == "ok" and r["predicted"] is not None and r["actual"] is not None]
    y_true = [r["actual"] for r in labeled]
    y_pred = [r["predicted"] for r in labeled]
    expected = {"labeled": len(labeled), "accuracy": None, "f1_score": None}
    if labeled:
        expected["accuracy"] = float(accuracy_score(y_true, y_pred))
        expected["f1_score"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    records = [[r["status"], r["predicted"], r["actual"]] for r in records]
    return {"name": name, "task": "multiclass_classification", "records": records, "expected": expected}


def ok(predicted, actual, score=None):
    return {"status": "ok", "predicted": predicted, "actual": actual, "score": score}


def failed():
    return {"status": "error", "predicted": None, "actual": None, "score": None}


def bin_centre(k):
    return (k + 0.5) / 1000.0


def classification_cases():
    cases = [binary_case("binary_empty", [], True)]
    cases.append(binary_case("binary_single_class", [ok(bool(i % 3), True, bin_centre(i * 7 % 1000)) for i in range(50)], True))
    cases.append(binary_case("binary_all_correct", [ok(i % 2 == 0, i % 2 == 0, bin_centre(900 if i % 2 == 0 else 100)) for i in range(40)], True))
    cases.append(binary_case("binary_all_wrong", [ok(i % 2 == 0, i % 2 == 1, bin_centre(900 if i % 2 == 0 else 100)) for i in range(40)], True))
    cases.append(binary_case("binary_labeled_without_positives", [ok(False, False, 0.25) for _ in range(10)], False))

    # Scores on bin centres with many ties (only 60 distinct scores): sklearn's AUC is
    # exact for the histogram too.
    records = []
    for _ in range(2000):
        actual = bool(rng.random() < 0.3)
        k = int(np.clip(rng.normal(640 if actual else 360, 180), 0, 999)) // 17 * 17
        score = bin_centre(k)
        records.append(ok(score >= 0.5, actual, score))
    for i in range(0, len(records), 25):
        records[i] = failed()
    for i in range(3, len(records), 40):
        records[i] = ok(records[i]["predicted"], None, records[i]["score"])
    cases.append(binary_case("binary_ties_on_bin_centres", records, True))

    # Continuous scores: the histogram AUC is within its reported error bound.
    records = []
    for _ in range(2000):
        actual = bool(rng.random() < 0.5)
        score = float(1.0 / (1.0 + math.exp(-rng.normal(0.8 if actual else -0.8, 1.2))))
        predicted = score >= 0.5 if rng.random() > 0.05 else None
        records.append(ok(predicted, actual, score))
    records.append(ok(True, True, 1.0))
    records.append(ok(False, False, 0.0))
    cases.append(binary_case("binary_continuous_scores", records, False))

    cases.append(multiclass_case("multiclass_empty", []))
    side_labels = [("cat", "cat"), ("dog", "cat"), ("dog", "dog"), ("bird", "dog"), ("cat", "fish"), ("cat", "cat"), ("emu", "fish")]
    cases.append(multiclass_case("multiclass_labels_missing_from_one_side", [ok(p, a) for p, a in side_labels]))
    cases.append(multiclass_case("multiclass_all_correct", [ok(str(i % 5), str(i % 5)) for i in range(30)]))
    cases.append(multiclass_case("multiclass_all_wrong", [ok(str(i % 5), str((i + 1) % 5)) for i in range(30)]))
    records = []
    for _ in range(2000):
        actual = int(rng.integers(0, 12))
        predicted = actual if rng.random() < 0.7 else int(rng.integers(0, 14))
        records.append(ok(str(predicted), str(actual)))
    for i in range(0, len(records), 50):
        records[i] = failed()
    for i in range(7, len(records), 60):
        records[i] = ok(records[i]["predicted"], None)
    cases.append(multiclass_case("multiclass_integer_labels", records))
    return cases


def regression_case(name, predicted, actual):
    predicted = [float(v) for v in predicted]
    actual = [float(v) for v in actual]
    nonzero = [(p, a) for p, a in zip(predicted, actual) if a != 0.0]
    expected = {"labeled": len(actual), "rmse": None, "mae": None, "mape": None, "mape_excluded": len(actual) - len(nonzero)}
    if actual:
        expected["rmse"] = float(math.sqrt(mean_squared_error(actual, predicted)))
        expected["mae"] = float(mean_absolute_error(actual, predicted))
    if nonzero:
        expected["mape"] = float(np.mean([abs((p - a) / a) for p, a in nonzero]))
        if len(nonzero) == len(actual):
            sklearn_mape = float(mean_absolute_percentage_error(actual, predicted))
            assert math.isclose(sklearn_mape, expected["mape"], rel_tol=1e-12), (name, sklearn_mape, expected["mape"])
    return {"name": name, "predicted": predicted, "actual": actual, "expected": expected}


def regression_cases():
    cases = [regression_case("regression_empty", [], [])]
    actual = rng.normal(100.0, 25.0, 1500)
    cases.append(regression_case("regression_gaussian", actual + rng.normal(2.0, 5.0, 1500), actual))
    actual = np.round(rng.normal(0.0, 3.0, 800))
    cases.append(regression_case("regression_zeros_among_actuals", actual + rng.standard_t(3, 800), actual))
    actual = rng.lognormal(2.0, 1.5, 800)
    cases.append(regression_case("regression_heavy_tailed", actual * rng.lognormal(0.0, 0.3, 800), actual))
    cases.append(regression_case("regression_only_zero_actuals", [1.0, -2.0, 0.5], [0.0, 0.0, 0.0]))
    return cases


def lower_quantile(values, q):
    """The value of rank ceil(q*n), with q taken as the exact decimal it is written as."""
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(q) * len(ordered)))
    exact = ordered[rank - 1]
    via_numpy = float(np.quantile(np.array(values), float(q), method="inverted_cdf"))
    assert via_numpy == exact, (q, len(values), via_numpy, exact)
    return exact


def latency_case(name, values):
    values = [float(v) for v in values]
    expected = {q: (lower_quantile(values, q) if values else None) for q in QUANTILES}
    return {"name": name, "latencies_ms": values, "sum_ms": float(math.fsum(values)), "expected": expected}


def latency_cases():
    return [
        latency_case("latency_empty", []),
        latency_case("latency_single", [12.5]),
        latency_case("latency_with_zeros", [0.0, 0.0, 3.0, 7.5, 0.0, 120.0, 9.25]),
        latency_case("latency_lognormal", rng.lognormal(3.0, 1.0, 3000)),
        latency_case("latency_pareto", (rng.pareto(1.2, 3000) + 1.0) * 5.0),
        latency_case("latency_bimodal_wide", np.concatenate([rng.normal(0.8, 0.05, 1500).clip(0.01), rng.lognormal(8.0, 0.7, 200)])),
    ]


def trend_case(name, times_ms, values):
    times_ms = [int(t) for t in times_ms]
    values = [float(v) for v in values]
    x = np.array(times_ms, dtype=np.float64) / MS_PER_DAY
    y = np.array(values)
    fit = stats.linregress(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert math.isclose(slope, fit.slope, rel_tol=1e-9), name
    expected = {
        "slope_per_day": float(fit.slope),
        "intercept": float(fit.intercept),
        "r_squared": float(fit.rvalue**2),
        "slope_std_error": float(fit.stderr),
        "p_value": float(fit.pvalue),
        "polyfit_slope": float(slope),
        "polyfit_intercept": float(intercept),
    }
    return {"name": name, "times_ms": times_ms, "values": values, "expected": expected}


def trend_cases():
    start = 1_741_000_000_000  # 2025-03-03
    days = np.arange(7)
    cases = [
        trend_case("trend_daily_declining_accuracy", start + days * MS_PER_DAY, 0.91 - 0.002 * days + rng.normal(0, 0.0015, 7)),
        trend_case("trend_three_points", [start, start + MS_PER_DAY, start + 3 * MS_PER_DAY], [0.9, 0.905, 0.88]),
        trend_case("trend_no_slope_noise", start + np.arange(48) * 3_600_000, 40.0 + rng.normal(0, 3.0, 48)),
    ]
    hours = np.arange(720)
    cases.append(trend_case("trend_hourly_30_days_latency", start + hours * 3_600_000, 22.0 + 0.15 * hours / 24 + rng.normal(0, 2.5, 720)))
    irregular = np.sort(rng.integers(0, 14 * MS_PER_DAY, 60))
    cases.append(trend_case("trend_irregular_times_error_rate", start + irregular, 0.002 + 0.0004 * irregular / MS_PER_DAY + rng.normal(0, 0.002, 60)))
    cases.append(trend_case("trend_strong_many_points", start + np.arange(200) * 600_000, 0.5 + 0.03 * np.arange(200) / 144 + rng.normal(0, 0.001, 200)))
    return cases


# The trend labels of shared/src/alerting/trends.rs (documented there and in
# docs/ARCHITECTURE.md, "Alerting"): computed here from scipy's fit.
MIN_TREND_POINTS = 24
MIN_POINT_SAMPLES = 10
MIN_CONFIDENCE = 0.75
SLIGHT_WEEKLY_CHANGE = 0.005
STRONG_WEEKLY_CHANGE = 0.015
BREACH_HORIZON_DAYS = 90
HIGHER_IS_BETTER = {"accuracy", "f1_score", "auc_roc"}


def metric_trend_case(name, metric, start_ms, values, samples, threshold):
    """Hourly values from start_ms (one per hour, `samples` each); now = end of the hours."""
    hours = len(values)
    now_ms = start_ms + hours * 3_600_000
    points = [(start_ms + h * 3_600_000 + 1_800_000, float(v)) for h, (v, n) in enumerate(zip(values, samples)) if n >= MIN_POINT_SAMPLES]
    expected = {"label": "insufficient_data", "slope": None, "confidence": None, "breach_ms": None, "points": len(points)}
    if len(points) >= MIN_TREND_POINTS:
        x = np.array([t for t, _ in points], dtype=np.float64) / MS_PER_DAY
        y = np.array([v for _, v in points])
        fit = stats.linregress(x, y)
        confidence = 1.0 - fit.pvalue
        mean = float(np.mean(fit.intercept + fit.slope * x))
        weekly = abs(fit.slope * 7 / mean)
        worse = (fit.slope < 0) == (metric in HIGHER_IS_BETTER)
        if confidence < MIN_CONFIDENCE or weekly < SLIGHT_WEEKLY_CHANGE:
            label = "stable"
        elif worse:
            label = "declining" if weekly >= STRONG_WEEKLY_CHANGE else "slight_decline"
        else:
            label = "improving" if weekly >= STRONG_WEEKLY_CHANGE else "slight_improvement"
        breach = None
        if label in ("declining", "slight_decline") and threshold is not None:
            crossing = round((threshold - fit.intercept) / fit.slope * MS_PER_DAY)
            if now_ms < crossing <= now_ms + BREACH_HORIZON_DAYS * MS_PER_DAY:
                breach = int(crossing)
        expected.update({"label": label, "slope": float(fit.slope), "confidence": float(confidence), "breach_ms": breach})
    return {"name": name, "metric": metric, "start_ms": start_ms, "values": [float(v) for v in values],
            "samples": [int(n) for n in samples], "threshold": threshold, "now_ms": now_ms, "expected": expected}


def metric_trend_cases():
    start = 1_764_000_000_000 - 1_764_000_000_000 % 3_600_000  # an hour in 2025-11
    h = np.arange(168)
    full = [100] * 168
    thin = [100 if i % 8 == 0 else 5 for i in range(168)]  # 21 usable hours
    return [
        metric_trend_case("accuracy_declining", "accuracy", start, 0.95 - 0.004 * h / 24 + rng.normal(0, 0.005, 168), full, 0.855),
        metric_trend_case("latency_slightly_slower", "latency_p95", start, 40.0 + 0.05 * h / 24 + rng.normal(0, 0.05, 168), full, 60.0),
        metric_trend_case("error_rate_improving", "error_rate", start, 0.02 - 0.0005 * h / 24 + rng.normal(0, 0.0005, 168), full, 0.01),
        metric_trend_case("rmse_noise_fluke", "rmse", start, 3.0 + rng.normal(0, 0.2, 168), full, 3.3),
        metric_trend_case("latency_alternating", "latency_p95", start, 40.0 + 3.0 * (-1.0) ** h, full, 100.0),
        metric_trend_case("accuracy_thin_hours", "accuracy", start, 0.9 - 0.01 * h / 24, thin, 0.855),
        metric_trend_case("mape_tiny_slope", "mape", start, 0.12 + 0.00001 * h / 24 + rng.normal(0, 0.00001, 168), full, None),
        metric_trend_case("f1_slight_decline", "f1_score", start, 0.88 - 0.001 * h / 24 + rng.normal(0, 0.002, 168), full, 0.8),
    ]


def main():
    fixtures = {
        "generated_by": "shared/tests/reference/generate.py",
        "seed": SEED,
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__},
        "classification": classification_cases(),
        "regression": regression_cases(),
        "latency": latency_cases(),
        "trend": trend_cases(),
        "metric_trend": metric_trend_cases(),
    }
    text = json.dumps(fixtures, indent=None, sort_keys=True, separators=(",", ":"))
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
