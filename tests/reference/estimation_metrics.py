#!/usr/bin/env python3
"""CBPE estimates and prediction drift of a window against a reference, for
tests/tests/estimation.rs: NannyML's method (scikit-learn's isotonic calibrator) and
scipy's Jensen-Shannon distance, as shared/tests/reference/generate_estimation.py
defines them, on scores moved to their 1/1000 bin's centre as the engine keeps them.

Reads {"reference": [[score, predicted, actual]], "window": [[score, predicted]]} on
stdin and writes {"accuracy", "precision", "recall", "f1_score", "auc_roc", "psi", "js",
"bins"};
with "task": "multiclass" or "regression", the reference's and the window's predicted
labels or values, and writes the drift {"psi", "js", "bins"}: labels over one bin per
reference label plus one for any other, values over bins cut at the reference's deciles;
a multiclass input with "reference_scores" and "window_scores" (the predicted labels'
scores) adds "confidence": their drift over the reference's deciles of the score bins.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

root = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "generate_estimation", root / "shared/tests/reference/generate_estimation.py"
)
method = importlib.util.module_from_spec(spec)
spec.loader.exec_module(method)

records = json.load(sys.stdin)
task = records.get("task", "binary")
if task == "multiclass":
    answer = method.label_drift(records["reference"], records["window"])
    if "reference_scores" in records:
        answer["confidence"] = method.drift(
            method.bin_of(np.array(records["reference_scores"], dtype=float)),
            method.bin_of(np.array(records["window_scores"], dtype=float)),
        )
elif task == "regression":
    answer = method.drift(
        np.array(records["reference"], dtype=float), np.array(records["window"], dtype=float)
    )
else:
    reference = np.array(records["reference"], dtype=float)
    window = np.array(records["window"], dtype=float)
    ref_score, ref_actual = reference[:, 0], reference[:, 2].astype(bool)
    score, predicted = window[:, 0], window[:, 1].astype(bool)
    answer = {
        k: float(v)
        for k, v in method.cbpe(
            method.centre(ref_score), ref_actual, method.centre(score), predicted
        ).items()
    }
    drift = method.drift(method.bin_of(ref_score), method.bin_of(score))
    answer.update({"psi": drift["psi"], "js": drift["js"], "bins": drift["bins"]})
json.dump(answer, sys.stdout)
