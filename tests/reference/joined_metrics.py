#!/usr/bin/env python3
"""Quality and label-delay reference of joined records, for tests/tests/late_labels.rs.

Reads {"predicted": [bool], "actual": [bool], "score": [float], "delay_s": [float]} on
stdin and writes {"accuracy", "f1_score", "auc_roc", "label_delay_p50_s",
"label_delay_p95_s"}: scikit-learn's metrics of the joined (labeled) records, and the
lower quantiles of the delays (numpy's method="inverted_cdf", the engine's definition).
"""

import json
import sys

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

records = json.load(sys.stdin)
actual = records["actual"]
predicted = records["predicted"]
delays = np.array(records["delay_s"], dtype=float)
json.dump(
    {
        "accuracy": float(accuracy_score(actual, predicted)),
        "f1_score": float(f1_score(actual, predicted, zero_division=0)),
        "auc_roc": float(roc_auc_score(actual, records["score"])),
        "label_delay_p50_s": float(np.quantile(delays, 0.5, method="inverted_cdf")),
        "label_delay_p95_s": float(np.quantile(delays, 0.95, method="inverted_cdf")),
    },
    sys.stdout,
)
