//! Performance trends (the specification's trends JSON): an OLS line through the last
//! seven days of hourly values of each quality metric, latency p95 and error rate.
//!
//! **Labels.** A trend is judged by its relative change per week, `|slope| · 7 / |mean|`
//! (mean of the fitted hourly values), and its confidence, `1 − p` where `p` is the
//! two-sided p-value of "slope = 0" (Student t, as `scipy.stats.linregress`):
//! - `stable`: confidence < 0.75, or a change below 0.5 % a week;
//! - `slight_decline` / `slight_improvement`: 0.5 % to 1.5 % a week;
//! - `declining` / `improving`: 1.5 % a week or more;
//! - `insufficient_data`: fewer than 24 hourly points (an hour counts with at least
//!   10 samples: labeled predictions for quality metrics, predictions otherwise).
//!   An hour of a binary classifier compared with a reference window that has too
//!   few labels but 10 predictions counts with its estimated value (CBPE) instead;
//!   `estimated_points` says how many did.
//!
//! Direction is the metric's: a falling accuracy or a rising latency, error rate or
//! regression error is a decline. `projected_baseline_breach` is when the fitted line
//! reaches the tightest alert threshold on the metric (default and custom rules), for
//! declining trends only, if within 90 days of now.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::rules::{AlertRule, Condition, higher_is_better, is_quality, quality_metrics};
use crate::domain::{MetricName, MetricSet, Task, fit_trend};

/// How far back a trend looks.
pub const TREND_SPAN: TimeDelta = TimeDelta::days(7);
/// The fewest hourly points a trend is fitted through.
pub const MIN_TREND_POINTS: usize = 24;
/// The fewest samples an hour needs to be a point.
pub const MIN_POINT_SAMPLES: u64 = 10;
/// How far ahead a breach is projected.
pub const BREACH_HORIZON: TimeDelta = TimeDelta::days(90);
/// Below this confidence a trend is `stable`.
pub const MIN_CONFIDENCE: f64 = 0.75;
/// Relative change per week from which a trend is slight.
pub const SLIGHT_WEEKLY_CHANGE: f64 = 0.005;
/// Relative change per week from which a trend is strong.
pub const STRONG_WEEKLY_CHANGE: f64 = 0.015;

/// The `7_day_trend` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendLabel {
    /// No meaningful change.
    Stable,
    /// Getting slightly worse.
    SlightDecline,
    /// Getting worse.
    Declining,
    /// Getting slightly better.
    SlightImprovement,
    /// Getting better.
    Improving,
    /// Too few points to say.
    InsufficientData,
}

impl TrendLabel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::SlightDecline => "slight_decline",
            Self::Declining => "declining",
            Self::SlightImprovement => "slight_improvement",
            Self::Improving => "improving",
            Self::InsufficientData => "insufficient_data",
        }
    }
}

/// The trend of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTrend {
    /// The label.
    #[serde(rename = "7_day_trend")]
    pub label: TrendLabel,
    /// Change per day, in the metric's unit.
    pub slope: Option<f64>,
    /// When the fitted line reaches `threshold`, for a declining trend within 90 days.
    pub projected_baseline_breach: Option<DateTime<Utc>>,
    /// `1 − p-value` of the slope.
    pub confidence: Option<f64>,
    /// The alert threshold the breach is projected against, if the metric has one.
    pub threshold: Option<f64>,
    /// Hourly points fitted.
    pub points: usize,
    /// Of them, the hours whose value is the estimate without labels (CBPE) because
    /// the hour had too few labels (accuracy, F1 and AUC-ROC of a binary classifier
    /// compared with a reference window).
    #[serde(default)]
    pub estimated_points: usize,
}

/// The trends of one model, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendReport {
    /// When computed.
    pub computed_at: DateTime<Utc>,
    /// Start of the hours fitted.
    pub from: DateTime<Utc>,
    /// End of the hours fitted.
    pub to: DateTime<Utc>,
    /// By metric name.
    pub trends: BTreeMap<MetricName, MetricTrend>,
    /// Label coverage and delay of the day before `computed_at`, refreshed with the
    /// trends (absent in reports stored before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelSnapshot>,
}

/// How much of the last day's traffic has its truth by now, and how late it came:
/// what `evaluate` writes to Prometheus between two refreshes. Per-minute gauges are
/// exported when their minute closes, before late labels arrive; these move as the
/// labels come in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelSnapshot {
    /// Labeled / predictions over the day.
    pub coverage: Option<f64>,
    /// Median label delay of the day's late labels, seconds.
    pub delay_p50_s: Option<f64>,
    /// 95th percentile label delay, seconds.
    pub delay_p95_s: Option<f64>,
}

/// The span of a [`LabelSnapshot`]: the day before its computation.
pub const LABEL_SNAPSHOT_SPAN: TimeDelta = TimeDelta::days(1);

impl TrendReport {
    /// The label of `metric`'s trend, if computed.
    pub fn label(&self, metric: MetricName) -> Option<TrendLabel> {
        self.trends.get(&metric).map(|t| t.label)
    }
}

/// The metrics a model of `task` has trends for.
pub fn trend_metrics(task: Task) -> Vec<MetricName> {
    let mut metrics = quality_metrics(task).to_vec();
    metrics.extend([MetricName::LatencyP95, MetricName::ErrorRate]);
    metrics
}

/// The tightest threshold of `rules` on `metric` in its worsening direction.
pub fn alert_threshold(metric: MetricName, rules: &[AlertRule]) -> Option<f64> {
    let worse = if higher_is_better(metric) {
        Condition::Below
    } else {
        Condition::Above
    };
    let thresholds = rules
        .iter()
        .filter(|r| r.metric == metric && r.condition == worse)
        .map(|r| r.threshold);
    if worse == Condition::Below {
        thresholds.reduce(f64::max)
    } else {
        thresholds.reduce(f64::min)
    }
}

/// The trend of `metric` from hourly `(hour start, metrics of the hour)` points.
pub fn metric_trend(
    metric: MetricName,
    hours: &[(DateTime<Utc>, MetricSet)],
    threshold: Option<f64>,
    now: DateTime<Utc>,
) -> MetricTrend {
    let estimated = metric.estimated();
    let mut estimated_points = 0;
    let points: Vec<(DateTime<Utc>, f64)> = hours
        .iter()
        .filter_map(|(start, m)| {
            let value = if !is_quality(metric) {
                m.get(metric).filter(|_| m.predictions >= MIN_POINT_SAMPLES)
            } else if m.labeled >= MIN_POINT_SAMPLES {
                m.get(metric)
            } else {
                let value = estimated
                    .and_then(|e| m.get(e))
                    .filter(|_| m.predictions >= MIN_POINT_SAMPLES);
                estimated_points += usize::from(value.is_some());
                value
            };
            Some((*start + TimeDelta::minutes(30), value?))
        })
        .collect();
    let insufficient = MetricTrend {
        label: TrendLabel::InsufficientData,
        slope: None,
        projected_baseline_breach: None,
        confidence: None,
        threshold,
        points: points.len(),
        estimated_points,
    };
    if points.len() < MIN_TREND_POINTS {
        return insufficient;
    }
    let Ok(line) = fit_trend(&points) else {
        return insufficient;
    };
    let confidence = 1.0 - line.p_value;
    let mean = points.iter().map(|(t, _)| line.value_at(*t)).sum::<f64>() / points.len() as f64;
    let weekly = if mean == 0.0 {
        if line.slope_per_day == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (line.slope_per_day * 7.0 / mean).abs()
    };
    let worse = (line.slope_per_day < 0.0) == higher_is_better(metric);
    let label = if confidence < MIN_CONFIDENCE || weekly < SLIGHT_WEEKLY_CHANGE {
        TrendLabel::Stable
    } else {
        match (worse, weekly >= STRONG_WEEKLY_CHANGE) {
            (true, true) => TrendLabel::Declining,
            (true, false) => TrendLabel::SlightDecline,
            (false, true) => TrendLabel::Improving,
            (false, false) => TrendLabel::SlightImprovement,
        }
    };
    let declining = matches!(label, TrendLabel::Declining | TrendLabel::SlightDecline);
    let projected_baseline_breach = threshold
        .filter(|_| declining)
        .and_then(|t| line.threshold_crossing(t, now))
        .filter(|at| *at <= now + BREACH_HORIZON);
    MetricTrend {
        label,
        slope: Some(line.slope_per_day),
        projected_baseline_breach,
        confidence: Some(confidence),
        threshold,
        points: points.len(),
        estimated_points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_short_of_labels_count_with_their_estimate_and_say_so() {
        let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().expect("time");
        // 48 hours of accuracy falling 0.002 an hour: labeled for the first day, only
        // estimated for the second, and a last hour with neither.
        let hours: Vec<(DateTime<Utc>, MetricSet)> = (0..49)
            .map(|h| {
                let value = 0.9 - 0.002 * f64::from(h);
                let labeled = h < 24;
                let metrics = MetricSet {
                    predictions: if h < 48 { 100 } else { 5 },
                    labeled: if labeled { 100 } else { 3 },
                    accuracy: Some(if labeled { value } else { 0.0 }),
                    estimated_accuracy: Some(value),
                    latency_p95_ms: Some(20.0),
                    ..MetricSet::default()
                };
                (start + TimeDelta::hours(i64::from(h)), metrics)
            })
            .collect();
        let now = start + TimeDelta::hours(49);
        let accuracy = metric_trend(MetricName::Accuracy, &hours, None, now);
        assert_eq!((accuracy.points, accuracy.estimated_points), (48, 24));
        assert_eq!(accuracy.label, TrendLabel::Declining);
        let slope = accuracy.slope.expect("fitted");
        assert!((slope + 0.048).abs() < 1e-9, "{slope}");
        // Without estimates, the unlabeled day is not in the trend.
        let realized: Vec<_> = hours
            .iter()
            .map(|(t, m)| {
                let metrics = MetricSet {
                    estimated_accuracy: None,
                    ..m.clone()
                };
                (*t, metrics)
            })
            .collect();
        let accuracy = metric_trend(MetricName::Accuracy, &realized, None, now);
        assert_eq!((accuracy.points, accuracy.estimated_points), (24, 0));
        // Other metrics never take estimates.
        let latency = metric_trend(MetricName::LatencyP95, &hours, None, now);
        assert_eq!((latency.points, latency.estimated_points), (48, 0));
    }
}
