#!/usr/bin/env python3
"""Writes estimation_fixtures.json: confidence-based performance estimation (CBPE, as
NannyML defines it) and prediction drift (PSI, scipy's Jensen-Shannon distance) on
synthetic data with a known shift, for shared/tests/estimation.rs to compare against.

Run by hand (not by CI); the output is deterministic:

    infra/local/.venv/bin/python shared/tests/reference/generate_estimation.py

The data: a latent x ~ N(0, 1) in the reference, P(actual = 1 | x) = sigmoid(1.5x - 0.3),
a model score sigmoid(1.2x) (monotone in x but miscalibrated, so calibration matters)
and predicted = score >= 0.5. Each analysis window shifts x only (covariate shift: the
concept P(actual | x) is unchanged, CBPE's assumption). Every case is computed twice:

- "binned": scores moved to the centre of their 1/1000 bin, as the product's state
  holds them. The product must equal these values to rounding (1e-9).
- "raw": the exact scores. The distance between the two is what the 1,000-bin
  histogram costs; the test checks it against the bound documented in
  shared/src/domain/estimation.rs and drift.rs.

CBPE per NannyML: an isotonic calibrator (scikit-learn IsotonicRegression,
out_of_bounds="clip") fitted on the reference's scores and actuals; the window's
expected confusion matrix from the calibrated probabilities p: TP = sum over predicted
positives of p, FP = of 1 - p, FN = sum over predicted negatives of p, TN = of 1 - p;
ROC AUC as NannyML's estimate_roc_auc: the curve of (FP/N, TP/P) at every distinct
calibrated probability as threshold, closed at (0, 0), area by the trapezoid rule.

Multiclass drift cases compare the predicted labels (one bin per reference label, one
more for any other) and, when scored, the predicted label's score binned as above.

Drift: cut points at the reference's deciles (numpy quantile, method="inverted_cdf"),
repeats dropped; bin i = values above cut i-1 up to cut i; PSI = sum (w - r) ln(w / r)
with shares floored at 1e-4; JS = scipy.spatial.distance.jensenshannon(r, w, base=2).
"""

import json
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.spatial.distance import jensenshannon
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, auc, f1_score, roc_auc_score

BINS = 1000
FLOOR = 1e-4


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def population(rng, n, mean, sd):
    x = rng.normal(mean, sd, n)
    actual = rng.random(n) < sigmoid(1.5 * x - 0.3)
    score = sigmoid(1.2 * x)
    return score, score >= 0.5, actual


def bin_of(score):
    return np.minimum((score * BINS).astype(int), BINS - 1)


def centre(score):
    return (bin_of(score) + 0.5) / BINS


def cbpe(ref_score, ref_actual, score, predicted):
    calibrator = IsotonicRegression(out_of_bounds="clip")
    calibrator.fit(ref_score, ref_actual.astype(float))
    p = calibrator.predict(score)
    tp = p[predicted].sum()
    fp = (1 - p[predicted]).sum()
    fn = p[~predicted].sum()
    tn = (1 - p[~predicted]).sum()
    thresholds = np.unique(p)[::-1]
    fpr, tpr = [0.0], [0.0]
    for t in thresholds:
        above = p >= t
        tpr.append(p[above].sum() / p.sum())
        fpr.append((1 - p[above]).sum() / (1 - p).sum())
    return {
        "accuracy": (tp + tn) / len(p),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1_score": 2 * tp / (2 * tp + fp + fn),
        "auc_roc": auc(fpr, tpr),
    }


def drift(reference, window):
    cuts = np.unique([np.quantile(reference, k / 10, method="inverted_cdf") for k in range(1, 10)])

    def shares(values):
        index = np.searchsorted(cuts, values, side="left")
        return np.bincount(index, minlength=len(cuts) + 1) / len(values)

    return distances(shares(reference), shares(window))


def distances(r, w):
    """PSI (shares floored) and the Jensen-Shannon distance of the share vectors."""
    rf, wf = np.maximum(r, FLOOR), np.maximum(w, FLOOR)
    return {
        "psi": float(((wf - rf) * np.log(wf / rf)).sum()),
        "js": float(jensenshannon(r, w, base=2)),
        "bins": len(r),
    }


def sparse(bins, *flags):
    """[[bin, flag..., count]] for every non-empty combination."""
    keys = np.stack([bins, *[f.astype(int) for f in flags]], axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    return [[*map(int, key), int(c)] for key, c in zip(unique, counts)]


def case(name, seed, mean, sd, n_window):
    rng = np.random.default_rng(seed)
    ref_score, ref_predicted, ref_actual = population(rng, 20_000, 0.0, 1.0)
    score, predicted, actual = population(rng, n_window, mean, sd)
    binned = {
        "estimate": cbpe(centre(ref_score), ref_actual, centre(score), predicted),
        "drift": drift(bin_of(ref_score), bin_of(score)),
    }
    raw = {
        "estimate": cbpe(ref_score, ref_actual, score, predicted),
        "drift": drift(ref_score, score),
    }
    realized = {
        "accuracy": accuracy_score(actual, predicted),
        "f1_score": f1_score(actual, predicted),
        "auc_roc": roc_auc_score(actual, score),
    }
    return {
        "name": name,
        # [bin, predicted, actual, count]
        "reference": sparse(bin_of(ref_score), ref_predicted, ref_actual),
        # [bin, predicted, count]: the window is unlabeled
        "window": sparse(bin_of(score), predicted),
        "binned": binned,
        "raw": raw,
        "realized": realized,
    }


def label_drift(reference, window):
    """PSI and JS over the reference's predicted labels, plus one bin for any other."""
    labels = sorted(set(reference))
    index = {label: i for i, label in enumerate(labels)}

    def shares(values):
        counts = np.zeros(len(labels) + 1)
        for v in values:
            counts[index.get(v, len(labels))] += 1
        return counts / len(values)

    return distances(shares(reference), shares(window))


def counted(values):
    """[[value, count]] of the distinct values."""
    unique, counts = np.unique(np.asarray(values), return_counts=True)
    return [[v.item(), int(c)] for v, c in zip(unique, counts)]


def drift_cases(rng):
    """Multiclass and regression drift. Regression values are whole numbers of magnitude
    at most 40 (and 0): consecutive ones differ by more than the value sketch's 1 %
    bucket width, so each value has a bucket of its own and the engine's deciles of
    buckets are numpy's deciles of values — equal to 1e-12."""
    names = ["billing", "cancel", "other", "sales", "support"]
    cases = []
    for name, ref_p, win_p in [
        ("labels, no shift", [0.3, 0.1, 0.1, 0.2, 0.3], [0.3, 0.1, 0.1, 0.2, 0.3]),
        ("labels, shifted to cancel", [0.3, 0.1, 0.1, 0.2, 0.3], [0.15, 0.4, 0.1, 0.15, 0.2]),
    ]:
        reference = list(rng.choice(names, size=5_000, p=ref_p))
        window = list(rng.choice(names, size=2_000, p=win_p))
        if "shifted" in name:
            window += ["refund"] * 100  # a label the reference never predicted
        cases.append({"name": name, "task": "multiclass", "reference": counted(reference),
                      "window": counted(window), "drift": label_drift(reference, window)})
    for name, shift, spread in [("values, no shift", 0.0, 12.0), ("values, shifted up", 9.0, 8.0)]:
        reference = np.clip(np.rint(rng.normal(0.0, 12.0, 5_000)), -40, 40)
        window = np.clip(np.rint(rng.normal(shift, spread, 2_000)), -40, 40)
        cases.append({"name": name, "task": "regression", "reference": counted(reference),
                      "window": counted(window), "drift": drift(reference, window)})
    return cases


def confidence_cases(rng):
    """Multiclass predictions scored with the predicted label's probability (the model's
    confidence), moved to their 1/1000 bin's centre as the state holds them: the label
    drift as above, and the confidence drift over the reference's deciles of bins."""
    names = ["billing", "cancel", "other", "sales", "support"]
    p = [0.3, 0.1, 0.1, 0.2, 0.3]
    cases = []
    for name, (a, b) in [("confidence, no shift", (8.0, 2.0)), ("confidence, fallen", (4.0, 3.0))]:
        reference = (rng.choice(names, size=5_000, p=p), bin_of(rng.beta(8.0, 2.0, 5_000)))
        window = (rng.choice(names, size=2_000, p=p), bin_of(rng.beta(a, b, 2_000)))
        cases.append({
            "name": name,
            "task": "multiclass",
            "reference": counted_pairs(*reference),
            "window": counted_pairs(*window),
            "drift": label_drift(list(reference[0]), list(window[0])),
            "confidence_drift": drift(reference[1], window[1]),
        })
    return cases


def counted_pairs(labels, bins):
    """[[[label, score bin], count]] of the distinct pairs."""
    pairs = {}
    for label, b in zip(labels, bins):
        pairs[(str(label), int(b))] = pairs.get((str(label), int(b)), 0) + 1
    return [[[label, b], c] for (label, b), c in sorted(pairs.items())]


def main():
    fixtures = {
        "generator": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "cases": [
            case("no shift", 1, 0.0, 1.0, 5_000),
            case("covariate shift towards positives", 2, 0.8, 1.0, 5_000),
            case("covariate shift, wider", 3, -0.5, 1.6, 5_000),
        ],
        "drift_cases": drift_cases(np.random.default_rng(4))
        + confidence_cases(np.random.default_rng(5)),
    }
    out = Path(__file__).with_name("estimation_fixtures.json")
    out.write_text(json.dumps(fixtures, indent=None, separators=(",", ":")) + "\n")
    for c in fixtures["cases"]:
        diffs = {
            k: abs(c["binned"]["estimate"][k] - c["raw"]["estimate"][k]) for k in c["raw"]["estimate"]
        }
        diffs.update({k: abs(c["binned"]["drift"][k] - c["raw"]["drift"][k]) for k in ("psi", "js")})
        print(c["name"], {k: round(v, 5) for k, v in diffs.items()})
        print("   estimate", {k: round(v, 4) for k, v in c["binned"]["estimate"].items()})
        print("   realized", {k: round(v, 4) for k, v in c["realized"].items()})
        print("   drift", c["binned"]["drift"])
    for c in fixtures["drift_cases"]:
        print(c["name"], c["drift"], c.get("confidence_drift", ""))


if __name__ == "__main__":
    main()
