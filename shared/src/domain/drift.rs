//! Prediction drift: how far a window's distribution of predictions moved from a
//! reference's, as the population stability index (PSI) and the Jensen–Shannon distance,
//! over bins cut at the reference's deciles.
//!
//! **Bins.** For a binary classifier, the scores of all predictions (both predicted
//! classes) in the state's [`SCORE_BINS`] histogram bins. The cut points are the
//! reference's lower deciles — for `k = 1..9` the histogram bin holding the value of
//! rank `⌈k·n/10⌉` (numpy's `quantile(…, method="inverted_cdf")` of the bin indices) —
//! with repeats dropped, so a reference with heavy ties gets fewer drift bins. Drift bin
//! `i` holds the histogram bins above cut `i − 1` up to and including cut `i`; the last
//! one everything above the last cut. As histogram bins are 1/1000 wide, a cut may sit
//! up to 0.001 away from the exact decile of the raw scores: a drift bin's share moves by
//! at most the share of the scores within 0.001 of its two cuts.
//!
//! **PSI** `= Σ (w − r) · ln(w / r)` over the drift bins, `r` and `w` the reference's and
//! the window's shares, each floored at [`SHARE_FLOOR`] (no renormalization) so an empty
//! bin stays finite. Rule of thumb: below 0.1 stable, 0.1–0.2 moderate, above 0.2 a
//! significant shift.
//!
//! **Jensen–Shannon distance** `= √(½ KL(r ‖ m) + ½ KL(w ‖ m))`, `m = (r + w) / 2`, in
//! base-2 logarithms so it lies in `[0, 1]` — scipy's
//! `scipy.spatial.distance.jensenshannon(r, w, base=2)`; no floor needed.

use super::classification::ScoreDistribution;

/// Most drift bins: the reference's deciles.
pub const DRIFT_BINS: usize = 10;

/// The smallest share PSI takes for a bin, so an empty bin stays finite.
pub const SHARE_FLOOR: f64 = 1e-4;

/// The reference side of a drift comparison: cut points and the reference's shares.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReference {
    /// Last histogram bin (inclusive) of every drift bin but the last, ascending.
    cuts: Vec<usize>,
    shares: Vec<f64>,
}

/// Drift of one window against a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionDrift {
    /// Population stability index.
    pub psi: f64,
    /// Jensen–Shannon distance, base 2.
    pub js: f64,
    /// Predictions of the window compared.
    pub predictions: u64,
    /// Drift bins compared (at most [`DRIFT_BINS`]).
    pub bins: usize,
}

impl DriftReference {
    /// Cuts `reference`'s scores at their deciles; `None` without predictions.
    pub fn of_scores(reference: &ScoreDistribution) -> Option<Self> {
        let counts: Vec<u64> = reference.all().collect();
        let n = reference.count();
        if n == 0 {
            return None;
        }
        let mut cuts: Vec<usize> = Vec::with_capacity(DRIFT_BINS - 1);
        let (mut bin, mut cumulative) = (0, counts[0]);
        for k in 1..DRIFT_BINS as u128 {
            // Rank ⌈k·n/10⌉ (1-based), at least 1; cumulative reaches n (saturated
            // like it) by the last bin, so the walk stays within the bins.
            let rank = (k * u128::from(n)).div_ceil(DRIFT_BINS as u128).max(1) as u64;
            while cumulative < rank {
                bin += 1;
                cumulative = cumulative.saturating_add(counts[bin]);
            }
            if cuts.last() != Some(&bin) {
                cuts.push(bin);
            }
        }
        let shares = shares(&cuts, &counts, n);
        Some(Self { cuts, shares })
    }

    /// Drift bins in use (at most [`DRIFT_BINS`]).
    pub fn bins(&self) -> usize {
        self.shares.len()
    }

    /// The window's drift from the reference; `None` without predictions.
    pub fn drift_of_scores(&self, window: &ScoreDistribution) -> Option<PredictionDrift> {
        let counts: Vec<u64> = window.all().collect();
        let n = window.count();
        (n > 0).then(|| {
            let observed = shares(&self.cuts, &counts, n);
            PredictionDrift {
                psi: psi(&self.shares, &observed),
                js: js_distance(&self.shares, &observed),
                predictions: n,
                bins: self.bins(),
            }
        })
    }
}

/// Shares of the drift bins `cuts` define in the histogram `counts` of `n` values.
fn shares(cuts: &[usize], counts: &[u64], n: u64) -> Vec<f64> {
    let mut totals = vec![0_u64; cuts.len() + 1];
    let mut drift_bin = 0;
    for (bin, &count) in counts.iter().enumerate() {
        while drift_bin < cuts.len() && bin > cuts[drift_bin] {
            drift_bin += 1;
        }
        totals[drift_bin] = totals[drift_bin].saturating_add(count);
    }
    totals.iter().map(|&c| c as f64 / n as f64).collect()
}

/// Population stability index of `observed` against `expected` shares (module docs).
pub fn psi(expected: &[f64], observed: &[f64]) -> f64 {
    expected
        .iter()
        .zip(observed)
        .map(|(&r, &w)| {
            let (r, w) = (r.max(SHARE_FLOOR), w.max(SHARE_FLOOR));
            (w - r) * (w / r).ln()
        })
        .sum()
}

/// Jensen–Shannon distance (base 2) between two share vectors that each sum to 1.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mean = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = (a + b) / 2.0;
            0.5 * kl_to_mean(a, m) + 0.5 * kl_to_mean(b, m)
        })
        .sum();
    divergence.max(0.0).sqrt().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_shares_do_not_drift() {
        let shares = [0.1; 10];
        assert_eq!(psi(&shares, &shares), 0.0);
        assert_eq!(js_distance(&shares, &shares), 0.0);
    }

    #[test]
    fn disjoint_shares_are_at_the_largest_distance() {
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        // Both bins floored: (1 − 1e-4)·ln(1e4) twice.
        let expected = 2.0 * (1.0 - SHARE_FLOOR) * (1.0 / SHARE_FLOOR).ln();
        assert!((psi(&[1.0, 0.0], &[0.0, 1.0]) - expected).abs() < 1e-9);
    }

    #[test]
    fn psi_matches_a_hand_computation() {
        let (r, w) = ([0.5, 0.5], [0.6, 0.4]);
        let expected = 0.1 * (0.6_f64 / 0.5).ln() + (-0.1) * (0.4_f64 / 0.5).ln();
        assert!((psi(&r, &w) - expected).abs() < 1e-15);
    }
}
