#!/usr/bin/env python3
"""Reference of the compare route, for tests/tests/versions.rs.

Reads {"baseline": side, "candidate": side} on stdin, each side
{"predicted": [bool], "actual": [bool], "predictions": int, "errors": int} (the labeled
records, and the side's prediction and error counts), and writes per side its
scikit-learn accuracy, error rate and prediction count, and per proportion ("accuracy", "error_rate")
the two-sided p-value of scipy's chi2_contingency on the 2x2 table without continuity
correction (the pooled two-proportion z-test), z (candidate minus baseline, from
scipy.stats.norm) and the 95 % Wald interval of the difference.
"""

import json
import math
import sys

from scipy.stats import chi2_contingency, norm
from sklearn.metrics import accuracy_score

sides = json.load(sys.stdin)


def counts(side, proportion):
    if proportion == "accuracy":
        n = len(side["actual"])
        return round(accuracy_score(side["actual"], side["predicted"]) * n), n
    return side["errors"], side["predictions"]


out = {}
for name, side in sides.items():
    out[name] = {
        "accuracy": float(accuracy_score(side["actual"], side["predicted"])),
        "error_rate": side["errors"] / side["predictions"],
        "predictions": side["predictions"],
    }
for proportion in ["accuracy", "error_rate"]:
    xb, nb = counts(sides["baseline"], proportion)
    xc, nc = counts(sides["candidate"], proportion)
    _, p_value, _, _ = chi2_contingency([[xb, nb - xb], [xc, nc - xc]], correction=False)
    pb, pc = xb / nb, xc / nc
    pooled = (xb + xc) / (nb + nc)
    z = (pc - pb) / math.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / nc))
    half = norm.ppf(0.975) * math.sqrt(pb * (1 - pb) / nb + pc * (1 - pc) / nc)
    out[proportion] = {
        "p_value": float(p_value),
        "z": z,
        "ci": [pc - pb - half, pc - pb + half],
    }
json.dump(out, sys.stdout)
