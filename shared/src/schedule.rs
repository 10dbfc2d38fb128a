//! What the scheduled runs of `aggregate` and `evaluate` share: their trigger, the
//! deadline every run works against, and the fair order in which they take work.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::shard::{SHARDS, all_shards};

/// Time kept back from a Lambda invocation's own deadline: the run commits what it
/// finished and returns its report before the platform would stop it.
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(3);

/// When a run must be done. Work is started only while time remains; what is not
/// started is left, intact, for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    /// The deadline of a scheduled run: the Lambda context's deadline (milliseconds
    /// since the Unix epoch) less [`INVOCATION_MARGIN`], and no later than `interval`
    /// (the schedule's) less the margin from now, so a run ends before the next one is
    /// due. A context deadline already past when the run starts is not a real one
    /// (an emulator's placeholder: cargo lambda's runtime sends a constant): then the
    /// interval alone bounds the run.
    pub fn of_invocation(deadline_epoch_ms: u64, interval: Duration) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let left = u128::from(deadline_epoch_ms).saturating_sub(now_ms);
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX));
        let budget = if left.is_zero() {
            interval
        } else {
            left.min(interval)
        };
        Self::after(budget.saturating_sub(INVOCATION_MARGIN))
    }

    /// The time left.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has come.
    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// An earlier deadline that leaves `parts` of `whole` of the time remaining now
    /// (e.g. 3 of 4) to the first stage of a run, the rest to what must follow it.
    pub fn share(&self, parts: u32, whole: u32) -> Self {
        let remaining = self.remaining();
        let share = remaining.mul_f64(f64::from(parts.min(whole)) / f64::from(whole.max(1)));
        Self {
            at: self.at - (remaining - share),
        }
    }
}

/// One scheduled run: the time it is for, when it must be done, and the shards
/// (`domain::shard`) whose models it owns — all of them, or one a worker was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    /// The time the run is for (the schedule's).
    pub run_time: DateTime<Utc>,
    /// When it must be done.
    pub deadline: Deadline,
    /// The shards it owns.
    pub shards: Range<u32>,
}

impl ScheduledRun {
    /// The same run with an earlier `deadline`, for one of its stages.
    pub fn until(&self, deadline: Deadline) -> Self {
        Self {
            deadline,
            ..self.clone()
        }
    }
}

/// `items` in a fair order across their keys (tenants): the first item of every key,
/// then the second of every key, and so on; keys in order, items in their given order
/// within a key. So no key's many items delay another key's first.
pub fn round_robin<K: Ord, T>(items: impl IntoIterator<Item = (K, T)>) -> Vec<T> {
    let mut queues: BTreeMap<K, std::collections::VecDeque<T>> = BTreeMap::new();
    for (key, item) in items {
        queues.entry(key).or_default().push_back(item);
    }
    let mut fair = Vec::new();
    while !queues.is_empty() {
        queues.retain(|_, queue| {
            fair.extend(queue.pop_front());
            !queue.is_empty()
        });
    }
    fair
}

/// What a schedule invocation carries that the functions use: the scheduled time, and
/// the one shard to work on when a run is given one.
///
/// Accepts the EventBridge "Scheduled Event" envelope (`time` field) and an EventBridge
/// Scheduler payload without one (then `time` is `None` and the caller uses the
/// clock). Other fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ScheduledTrigger {
    /// When the schedule fired, if the event says.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    /// The shard (`domain::shard`, 0 to 31) the run owns; every shard when absent.
    #[serde(default)]
    pub shard: Option<u32>,
}

/// A trigger naming a shard that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {0} does not exist: shards are 0 to {max}", max = SHARDS - 1)]
pub struct UnknownShard(pub u32);

impl ScheduledTrigger {
    /// The time to run for: the event's own time, else `now`.
    pub fn run_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.time.unwrap_or(now)
    }

    /// The run this trigger asks for, invoked with the Lambda context's deadline
    /// (epoch ms) on a schedule of `interval` (see [`Deadline::of_invocation`]).
    pub fn run(
        &self,
        deadline_epoch_ms: u64,
        interval: Duration,
    ) -> Result<ScheduledRun, UnknownShard> {
        let shards = match self.shard {
            None => all_shards(),
            Some(shard) if shard < SHARDS => shard..shard + 1,
            Some(shard) => return Err(UnknownShard(shard)),
        };
        Ok(ScheduledRun {
            run_time: self.run_time(Utc::now()),
            deadline: Deadline::of_invocation(deadline_epoch_ms, interval),
            shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scheduled_event_time() {
        let event = serde_json::json!({
            "version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012",
            "time": "2026-11-28T10:15:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/x"], "detail": {}
        });
        let trigger: ScheduledTrigger = serde_json::from_value(event).expect("event");
        let expected = DateTime::parse_from_rfc3339("2026-11-28T10:15:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(trigger.run_time(Utc::now()), expected);
    }

    #[test]
    fn round_robin_takes_one_of_every_key_per_turn() {
        let items = [("b", 1), ("a", 2), ("b", 3), ("b", 4), ("c", 5), ("a", 6)];
        assert_eq!(round_robin(items), vec![2, 1, 5, 6, 3, 4]);
        assert_eq!(round_robin(Vec::<(u8, u8)>::new()), Vec::<u8>::new());
    }

    #[test]
    fn deadlines_count_down_and_share() {
        let deadline = Deadline::after(Duration::from_secs(100));
        assert!(!deadline.passed());
        let first = deadline.share(3, 4);
        let left = first.remaining().as_secs_f64();
        assert!((74.0..=75.0).contains(&left), "{left}");
        assert!(first.remaining() < deadline.remaining());
        assert!(Deadline::after(Duration::ZERO).passed());
        let minute = Duration::from_secs(60);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let within = |d: Deadline, low: u64, high: u64| {
            let left = d.remaining();
            left > Duration::from_secs(low) && left <= Duration::from_secs(high)
        };
        // The invocation's deadline, when it comes first.
        assert!(within(
            Deadline::of_invocation(now_ms + 30_000, minute),
            25,
            27
        ));
        // The interval, when it does.
        assert!(within(
            Deadline::of_invocation(now_ms + 900_000, minute),
            55,
            57
        ));
        // cargo lambda's constant 600000 (1970): the interval alone.
        assert!(within(Deadline::of_invocation(600_000, minute), 55, 57));
    }

    #[test]
    fn a_trigger_may_name_one_shard() {
        let minute = Duration::from_secs(60);
        let every: ScheduledTrigger = serde_json::from_str("{}").expect("event");
        assert_eq!(every.run(0, minute).expect("run").shards, all_shards());
        let one: ScheduledTrigger = serde_json::from_str(r#"{"shard": 7}"#).expect("event");
        assert_eq!(one.run(0, minute).expect("run").shards, 7..8);
        let none: ScheduledTrigger = serde_json::from_str(r#"{"shard": 32}"#).expect("event");
        assert_eq!(none.run(0, minute), Err(UnknownShard(32)));
    }

    #[test]
    fn falls_back_to_now_without_a_time() {
        let trigger: ScheduledTrigger = serde_json::from_str("{}").expect("empty event");
        let now = Utc::now();
        assert_eq!(trigger.run_time(now), now);
    }
}
