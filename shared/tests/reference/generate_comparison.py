#!/usr/bin/env python3
"""Writes comparison_fixtures.json: two-proportion tests of a candidate slice against a
baseline, as scipy computes them, for shared/src/domain/comparison/tests.rs.

Run by hand (not by CI); the output is deterministic:

    infra/local/.venv/bin/python shared/tests/reference/generate_comparison.py

Per case (successes and trials of each side): the p-value of
scipy.stats.chi2_contingency on the 2x2 table [[x_b, n_b - x_b], [x_c, n_c - x_c]]
without continuity correction — the two-sided pooled two-proportion z-test, since
chi2 = z^2 —, z from scipy.stats.norm (signed: candidate minus baseline), and the 95 %
Wald interval of the difference with scipy.stats.norm.ppf(0.975).
"""

import json
import math
from pathlib import Path

from scipy.stats import chi2_contingency, norm

CASES = [
    (900, 1000, 880, 1000),
    (900, 1000, 800, 1000),
    (45, 50, 40, 50),
    (9500, 10000, 9480, 10000),
    (30, 30, 29, 30),
    (1, 5000, 60, 500),
    (700, 1000, 760, 1200),
    (12000, 40000, 1250, 4000),
]


def case(xb, nb, xc, nc):
    pb, pc = xb / nb, xc / nc
    table = [[xb, nb - xb], [xc, nc - xc]]
    _, p_value, _, _ = chi2_contingency(table, correction=False)
    pooled = (xb + xc) / (nb + nc)
    se = math.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / nc))
    z = (pc - pb) / se
    assert abs(2 * norm.sf(abs(z)) - p_value) <= 1e-12 + 1e-9 * p_value
    half = norm.ppf(0.975) * math.sqrt(pb * (1 - pb) / nb + pc * (1 - pc) / nc)
    return {
        "baseline": [xb, nb],
        "candidate": [xc, nc],
        "z": z,
        "p_value": float(p_value),
        "ci": [pc - pb - half, pc - pb + half],
    }


def main():
    out = Path(__file__).with_name("comparison_fixtures.json")
    cases = [case(*c) for c in CASES]
    out.write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
