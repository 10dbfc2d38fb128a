//! The time vocabulary of rollups: [`Granularity`], the spans a rollup covers, with
//! their names, lengths, alignment and nesting — the one home of all four.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How long after its last prediction a model stays active (scheduled work covers it).
pub const ACTIVE_RETENTION: TimeDelta = TimeDelta::days(400);

/// The span a rollup covers. Spans are aligned to UTC: a minute starts at second 0, an
/// hour at minute 0, a day at midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Granularity {
    /// Every granularity, finest first.
    pub const ALL: [Self; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The name: `minute`, `hour` or `day` (also the serde and query-parameter form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The granularity named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }

    /// The span's length.
    pub fn length(self) -> TimeDelta {
        match self {
            Self::Minute => TimeDelta::minutes(1),
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }

    /// The start of the span `time` falls in.
    pub fn floor(self, time: DateTime<Utc>) -> DateTime<Utc> {
        // By whole seconds: chrono's `duration_trunc` goes through nanoseconds and was
        // a twentieth of ingest's fold.
        self.from_ordinal(self.ordinal(time)).unwrap_or(time)
    }

    /// The number of the span `time` falls in, counted from the Unix epoch.
    pub fn ordinal(self, time: DateTime<Utc>) -> i64 {
        time.timestamp().div_euclid(self.length().num_seconds())
    }

    /// The start of the span numbered `ordinal` (see [`ordinal`](Self::ordinal));
    /// `None` beyond the representable times.
    pub fn from_ordinal(self, ordinal: i64) -> Option<DateTime<Utc>> {
        ordinal
            .checked_mul(self.length().num_seconds())
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
    }

    /// The granularity one level up, whose spans are made of this one's; `None` for a day.
    pub fn parent(self) -> Option<Self> {
        match self {
            Self::Minute => Some(Self::Hour),
            Self::Hour => Some(Self::Day),
            Self::Day => None,
        }
    }
}

/// [`Granularity::floor`] of one time after another, remembering the span of the time
/// before: a batch's times mostly fall in the span of the one before, whose start is
/// then not computed again.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    granularity: Granularity,
    /// The ordinal of the last span computed, and its start.
    last: Option<(i64, DateTime<Utc>)>,
}

impl Floors {
    /// Floors to spans of `granularity`, none remembered yet.
    pub fn new(granularity: Granularity) -> Self {
        Self {
            granularity,
            last: None,
        }
    }

    /// The start of the span `time` falls in: [`Granularity::floor`].
    pub fn floor(&mut self, time: DateTime<Utc>) -> DateTime<Utc> {
        let ordinal = self.granularity.ordinal(time);
        if let Some((last, start)) = self.last
            && last == ordinal
        {
            return start;
        }
        match self.granularity.from_ordinal(ordinal) {
            Some(start) => {
                self.last = Some((ordinal, start));
                start
            }
            None => time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lengths_floors_and_parents_agree() {
        let t: DateTime<Utc> = "2026-11-28T10:15:42.5Z".parse().expect("time");
        for g in Granularity::ALL {
            assert_eq!(Granularity::from_name(g.as_str()), Some(g));
            assert_eq!(
                serde_json::to_value(g).expect("json"),
                serde_json::Value::from(g.as_str())
            );
            let start = g.floor(t);
            assert!(start <= t && t < start + g.length());
            assert_eq!(g.from_ordinal(g.ordinal(t)), Some(start));
            let before_epoch = DateTime::<Utc>::UNIX_EPOCH - TimeDelta::seconds(1);
            assert_eq!(g.ordinal(before_epoch), -1);
            assert_eq!(g.from_ordinal(i64::MAX), None);
            if let Some(parent) = g.parent() {
                assert_eq!(parent.floor(start), parent.floor(t));
                assert!(parent.length() > g.length());
            }
        }
        assert_eq!(Granularity::from_name("week"), None);
        assert_eq!(
            Granularity::Minute.floor(t),
            "2026-11-28T10:15:00Z"
                .parse::<DateTime<Utc>>()
                .expect("time")
        );
    }

    proptest::proptest! {
        /// Remembering the last span changes no floor: times in order, in runs within
        /// a span, and anywhere (down to the least and up to the greatest time).
        #[test]
        fn floors_of_a_run_of_times_are_each_times_floor(
            start in -10_000_000_000_000_i64..10_000_000_000_000,
            steps in proptest::collection::vec((-100_000_000_i64..100_000_000, proptest::bool::ANY), 1..60),
            granularity in proptest::sample::select(Granularity::ALL.to_vec()),
        ) {
            let mut floors = Floors::new(granularity);
            let mut ms = start;
            for (step, anywhere) in steps {
                ms = if anywhere { step.saturating_mul(1_000_000) } else { ms.saturating_add(step / 1_000) };
                let time = DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC);
                proptest::prop_assert_eq!(floors.floor(time), granularity.floor(time), "{}", time);
            }
            for time in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                proptest::prop_assert_eq!(floors.floor(time), granularity.floor(time));
            }
        }
    }
}
