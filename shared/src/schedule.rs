//! What the scheduled runs of `aggregate` and `evaluate` share: their trigger, the
//! deadline every run works against, and the fair order in which they take work.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::shard::{SHARDS, all_shards};
use crate::error::{StoreError, StoreResult};
use crate::ports::{QueueMessage, ShardQueue};

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

/// What a schedule invocation carries that the functions use: the scheduled time, the
/// shards to work on when a run is given some, and whether to fan the work out.
///
/// Accepts the EventBridge "Scheduled Event" envelope (`time` field) and an EventBridge
/// Scheduler payload without one (then `time` is `None` and the caller uses the
/// clock). Other fields are ignored. It is also the body of a shard worker's queued
/// message (`time` and `shards`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ScheduledTrigger {
    /// When the schedule fired, if the event says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// The one shard (`domain::shard`, 0 to 31) the run owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// The range of shards the run owns (`{"start": 8, "end": 16}`); every shard when
    /// neither this nor `shard` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Range<u32>>,
    /// Whether to enqueue the run's shards for the shard workers (the template's
    /// schedules ask for it) instead of working them in this invocation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fan_out: bool,
}

/// A trigger that asks for shards that do not exist, or in two ways at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// `shard` is not a shard.
    #[error("shard {0} does not exist: shards are 0 to {max}", max = SHARDS - 1)]
    UnknownShard(u32),
    /// `shards` is empty or goes past the last shard.
    #[error("shards {start}..{end} is not a range of shards: start < end <= {SHARDS}", start = .0.start, end = .0.end)]
    ShardRange(Range<u32>),
    /// Both `shard` and `shards`.
    #[error("give shard or shards, not both")]
    ShardAndShards,
    /// A run that names its shards cannot also fan out.
    #[error("fan_out is for a run of every shard; this one names its shards")]
    FanOutOfShards,
}

impl ScheduledTrigger {
    /// The time to run for: the event's own time, else `now`.
    pub fn run_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.time.unwrap_or(now)
    }

    /// The shards this trigger names, if it names any.
    pub fn named_shards(&self) -> Result<Option<Range<u32>>, TriggerError> {
        match (self.shard, &self.shards) {
            (Some(_), Some(_)) => Err(TriggerError::ShardAndShards),
            (Some(shard), None) if shard < SHARDS => Ok(Some(shard..shard + 1)),
            (Some(shard), None) => Err(TriggerError::UnknownShard(shard)),
            (None, Some(range)) if range.start < range.end && range.end <= SHARDS => {
                Ok(Some(range.clone()))
            }
            (None, Some(range)) => Err(TriggerError::ShardRange(range.clone())),
            (None, None) => Ok(None),
        }
    }

    /// The run this trigger asks for, invoked with the Lambda context's deadline
    /// (epoch ms) on a schedule of `interval` (see [`Deadline::of_invocation`]).
    pub fn run(
        &self,
        deadline_epoch_ms: u64,
        interval: Duration,
    ) -> Result<ScheduledRun, TriggerError> {
        Ok(ScheduledRun {
            run_time: self.run_time(Utc::now()),
            deadline: Deadline::of_invocation(deadline_epoch_ms, interval),
            shards: self.named_shards()?.unwrap_or_else(all_shards),
        })
    }
}

/// The shards of each of `workers` shard workers: contiguous ranges, as even as they
/// can be, covering every shard once. `workers` is taken within 1 to [`SHARDS`].
pub fn worker_shards(workers: u32) -> Vec<Range<u32>> {
    let workers = workers.clamp(1, SHARDS);
    (0..workers)
        .map(|w| w * SHARDS / workers..(w + 1) * SHARDS / workers)
        .collect()
}

/// How a function's scheduled work is spread: the shard workers' queue (none: every
/// run works all its shards itself), how many workers, and the schedule's interval.
#[derive(Debug, Clone)]
pub struct ShardWork<Q> {
    /// Where a fanned-out run's work goes.
    pub queue: Option<Q>,
    /// How many messages (shard ranges) a fanned-out run enqueues.
    pub workers: u32,
    /// The schedule's interval: runs end before the next is due, and a message that
    /// waited in the queue longer than two intervals is superseded by newer ones.
    pub interval: Duration,
}

/// An invocation of a scheduled function: a schedule's (or an operator's) trigger, or
/// shard work from the queue (Lambda's SQS event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Work items from the shard queue.
    Queue(QueueEvent),
    /// A trigger.
    Trigger(ScheduledTrigger),
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            QueueEvent::deserialize(value)
                .map(Self::Queue)
                .map_err(D::Error::custom)
        } else {
            ScheduledTrigger::deserialize(value)
                .map(Self::Trigger)
                .map_err(D::Error::custom)
        }
    }
}

/// Lambda's SQS event, what this product reads of it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct QueueEvent {
    /// The messages.
    #[serde(rename = "Records")]
    pub records: Vec<QueueRecord>,
}

/// One message of an SQS event.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct QueueRecord {
    /// SQS's id of the message: what a failure names.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The message: a [`ScheduledTrigger`] naming its shards.
    pub body: String,
    /// What a redelivery of the message names it by.
    #[serde(rename = "receiptHandle", default)]
    pub receipt_handle: Option<String>,
    /// SQS's attributes of the message.
    #[serde(default)]
    pub attributes: QueueRecordAttributes,
}

/// The attributes of an SQS message the workers read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct QueueRecordAttributes {
    /// When the message was sent, milliseconds since the Unix epoch (as a string).
    #[serde(rename = "SentTimestamp", default)]
    pub sent_timestamp: Option<String>,
}

impl QueueRecord {
    /// How long the message waited in the queue before `now`, if SQS says when it
    /// was sent.
    fn waited(&self, now: DateTime<Utc>) -> Option<Duration> {
        let sent: i64 = self.attributes.sent_timestamp.as_deref()?.parse().ok()?;
        (now - DateTime::from_timestamp_millis(sent)?).to_std().ok()
    }
}

/// What a scheduled function answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Answer<R> {
    /// A run's report.
    Run(R),
    /// A coordinator's: where the work went.
    FanOut(FanOutReport),
    /// To Lambda's SQS event source: the messages to deliver again (an empty list:
    /// all done, delete them).
    Queue(QueueAnswer),
}

/// What a coordinator enqueued.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FanOutReport {
    /// The time the run is for.
    pub run_time: DateTime<Utc>,
    /// Where the work went.
    pub fan_out: FanOutDetail,
}

/// The queue and the messages of a fanned-out run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FanOutDetail {
    /// The queue's address.
    pub queue: String,
    /// One message per worker, each with its range of shards.
    pub workers: Vec<Range<u32>>,
}

/// The answer to an SQS event with partial batch responses on
/// (`ReportBatchItemFailures`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueAnswer {
    /// The messages that failed, delivered again after their visibility timeout.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    /// Its `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Why an invocation failed as a whole (a queued message that fails is answered as
/// an [`ItemFailure`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The trigger is not valid.
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    /// The trigger asks to fan out and the function has no queue.
    #[error("the trigger asks to fan out, and no shard queue is configured")]
    NoQueue,
    /// A queued message is not a trigger.
    #[error("the shard work message is not a trigger: {0}")]
    Message(#[source] serde_json::Error),
    /// A store or the queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<Q: ShardQueue> ShardWork<Q> {
    /// Handles one invocation with `run` doing one run's work: a trigger that fans out
    /// enqueues one message per worker; another trigger is run here; queued messages
    /// are run one after the other, each answered on its own.
    pub async fn handle<R, F, Fut>(
        &self,
        invocation: Invocation,
        deadline_epoch_ms: u64,
        run: F,
    ) -> Result<Answer<R>, ScheduleError>
    where
        F: Fn(ScheduledRun) -> Fut,
        Fut: Future<Output = StoreResult<R>>,
    {
        match invocation {
            Invocation::Trigger(trigger) if trigger.fan_out => {
                if trigger.named_shards()?.is_some() {
                    return Err(TriggerError::FanOutOfShards.into());
                }
                let queue = self.queue.as_ref().ok_or(ScheduleError::NoQueue)?;
                let report = self.fan_out(queue, trigger.run_time(Utc::now())).await?;
                Ok(Answer::FanOut(report))
            }
            Invocation::Trigger(trigger) => {
                let report = run(trigger.run(deadline_epoch_ms, self.interval)?).await?;
                Ok(Answer::Run(report))
            }
            Invocation::Queue(event) => {
                let mut answer = QueueAnswer::default();
                for record in event.records {
                    if let Err(why) = self.work(&record, deadline_epoch_ms, &run).await {
                        tracing::warn!(message = %record.message_id, error = %why, "shard work failed: it is delivered again");
                        self.redeliver_soon(&record).await;
                        answer.batch_item_failures.push(ItemFailure {
                            item_identifier: record.message_id,
                        });
                    }
                }
                Ok(Answer::Queue(answer))
            }
        }
    }

    /// Asks for a failed message again after one interval — about when the next
    /// run's message for its shards would come, which the FIFO group holds behind it
    /// — not after the queue's visibility timeout (six run timeouts, so that a run in
    /// flight is never delivered twice). Three failures in a row then reach the
    /// dead-letter queue in minutes. Best effort: when SQS cannot be asked, the
    /// visibility timeout applies.
    async fn redeliver_soon(&self, record: &QueueRecord) {
        let (Some(queue), Some(handle)) = (&self.queue, record.receipt_handle.as_deref()) else {
            return;
        };
        if let Err(why) = queue.redeliver_after(handle, self.interval).await {
            tracing::warn!(message = %record.message_id, error = %why, "could not bring the failed shard work back early: it returns after the queue's visibility timeout");
        }
    }

    /// Enqueues one message per worker for the run at `run_time`.
    async fn fan_out(&self, queue: &Q, run_time: DateTime<Utc>) -> StoreResult<FanOutReport> {
        let workers = worker_shards(self.workers);
        let messages: Vec<QueueMessage> = workers
            .iter()
            .map(|shards| QueueMessage {
                group: format!("shards-{}-{}", shards.start, shards.end),
                deduplication_id: format!(
                    "{}-{}-{}",
                    shards.start,
                    shards.end,
                    run_time.timestamp_millis()
                ),
                body: serde_json::json!({"time": run_time, "shards": shards}).to_string(),
            })
            .collect();
        queue.enqueue(&messages).await?;
        Ok(FanOutReport {
            run_time,
            fan_out: FanOutDetail {
                queue: queue.address().to_owned(),
                workers,
            },
        })
    }

    /// Runs one queued message's shards, unless it waited so long in the queue that
    /// newer runs of its shards are behind it (they do its work: what is pending is
    /// in the stores, not in the message).
    async fn work<R, F, Fut>(
        &self,
        record: &QueueRecord,
        deadline_epoch_ms: u64,
        run: &F,
    ) -> Result<(), ScheduleError>
    where
        F: Fn(ScheduledRun) -> Fut,
        Fut: Future<Output = StoreResult<R>>,
    {
        let trigger: ScheduledTrigger =
            serde_json::from_str(&record.body).map_err(ScheduleError::Message)?;
        if trigger.fan_out || trigger.named_shards()?.is_none() {
            return Err(TriggerError::FanOutOfShards.into());
        }
        let scheduled = trigger.run(deadline_epoch_ms, self.interval)?;
        if let Some(waited) = record.waited(Utc::now())
            && waited > self.interval * 2
        {
            tracing::info!(message = %record.message_id, run_time = %scheduled.run_time, waited_s = waited.as_secs(), "shard work superseded by newer runs: skipped");
            return Ok(());
        }
        run(scheduled).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryShardQueue;

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
        assert_eq!(none.run(0, minute), Err(TriggerError::UnknownShard(32)));
    }

    fn queue_work(queue: Option<MemoryShardQueue>, workers: u32) -> ShardWork<MemoryShardQueue> {
        ShardWork {
            queue,
            workers,
            interval: Duration::from_secs(60),
        }
    }

    /// A run that records the shards it was given and fails for shard 31.
    fn recording_run(
        seen: &std::sync::Mutex<Vec<Range<u32>>>,
    ) -> impl Fn(ScheduledRun) -> std::future::Ready<StoreResult<u32>> + '_ {
        move |run| {
            let fails = run.shards.contains(&31);
            seen.lock().expect("lock").push(run.shards.clone());
            std::future::ready(if fails {
                Err(StoreError::Unavailable {
                    operation: "test",
                    source: "shard 31 is down".into(),
                })
            } else {
                Ok(run.shards.len() as u32)
            })
        }
    }

    fn invocation(value: serde_json::Value) -> Invocation {
        serde_json::from_value(value).expect("invocation")
    }

    #[test]
    fn workers_split_the_shards_into_contiguous_ranges() {
        assert_eq!(worker_shards(4), vec![0..8, 8..16, 16..24, 24..32]);
        assert_eq!(worker_shards(0), vec![0..32]);
        assert_eq!(worker_shards(99).len(), 32);
        for workers in 1..=32 {
            let ranges = worker_shards(workers);
            assert_eq!(ranges.len(), workers as usize);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[ranges.len() - 1].end, SHARDS);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            assert!(ranges.iter().all(|r| r.start < r.end));
        }
    }

    #[tokio::test]
    async fn a_fanned_out_trigger_enqueues_one_message_per_worker_once() {
        let work = queue_work(Some(MemoryShardQueue::default()), 4);
        let seen = std::sync::Mutex::new(Vec::new());
        let trigger = invocation(serde_json::json!({
            "detail-type": "Scheduled Event", "time": "2026-11-30T10:15:00Z", "fan_out": true
        }));
        let answer = work
            .handle(trigger.clone(), 0, recording_run(&seen))
            .await
            .expect("fan-out");
        let Answer::FanOut(report) = answer else {
            panic!("not a fan-out: {answer:?}");
        };
        assert_eq!(report.fan_out.workers, worker_shards(4));
        assert_eq!(report.fan_out.queue, "memory");
        assert!(
            seen.lock().expect("lock").is_empty(),
            "the coordinator runs nothing"
        );
        // The scheduler's retry of the same run: the deduplication ids drop the copies.
        work.handle(trigger, 0, recording_run(&seen))
            .await
            .expect("again");
        let queue = work.queue.as_ref().expect("queue");
        let messages = queue.messages.items();
        assert_eq!(messages.len(), 4);
        let groups: std::collections::BTreeSet<_> = messages.iter().map(|m| &m.group).collect();
        assert_eq!(
            groups.len(),
            4,
            "one group per range: one worker at a time each"
        );
        for (message, range) in messages.iter().zip(worker_shards(4)) {
            let body: ScheduledTrigger = serde_json::from_str(&message.body).expect("body");
            assert_eq!(body.named_shards(), Ok(Some(range)));
            assert_eq!(body.time, Some(report.run_time));
            assert!(!body.fan_out);
        }
        // The next run's messages are new.
        let next = invocation(serde_json::json!({"time": "2026-11-30T10:16:00Z", "fan_out": true}));
        work.handle(next, 0, recording_run(&seen))
            .await
            .expect("next");
        assert_eq!(queue.messages.items().len(), 8);
    }

    #[tokio::test]
    async fn fanning_out_needs_a_queue_and_every_shard() {
        let seen = std::sync::Mutex::new(Vec::new());
        let no_queue = queue_work(None, 4);
        let trigger = invocation(serde_json::json!({"fan_out": true}));
        let err = no_queue
            .handle(trigger, 0, recording_run(&seen))
            .await
            .expect_err("no queue");
        assert!(matches!(err, ScheduleError::NoQueue), "{err}");
        let work = queue_work(Some(MemoryShardQueue::default()), 4);
        let one = invocation(serde_json::json!({"fan_out": true, "shard": 3}));
        let err = work
            .handle(one, 0, recording_run(&seen))
            .await
            .expect_err("named shards");
        assert!(
            matches!(err, ScheduleError::Trigger(TriggerError::FanOutOfShards)),
            "{err}"
        );
        // Without fan_out the trigger runs here, over every shard.
        let answer = work
            .handle(invocation(serde_json::json!({})), 0, recording_run(&seen))
            .await;
        assert!(answer.is_err(), "shard 31 fails the whole run");
        assert_eq!(*seen.lock().expect("lock"), vec![all_shards()]);
    }

    #[tokio::test]
    async fn queued_work_is_answered_message_by_message() {
        let work = queue_work(Some(MemoryShardQueue::default()), 4);
        let seen = std::sync::Mutex::new(Vec::new());
        let now = Utc::now();
        let sent = |ago: i64| {
            let at = now - chrono::TimeDelta::seconds(ago);
            serde_json::json!({"SentTimestamp": at.timestamp_millis().to_string()})
        };
        // A run for an earlier time (a replay) is work like any other; a message that
        // waited three minutes (two intervals are two) has newer ones behind it.
        let earlier = now - chrono::TimeDelta::hours(5);
        let body = |time: DateTime<Utc>, shards: Range<u32>| {
            serde_json::json!({"time": time, "shards": shards}).to_string()
        };
        let event = invocation(serde_json::json!({"Records": [
            {"messageId": "ok", "body": body(earlier, 8..16), "eventSource": "aws:sqs", "attributes": sent(1)},
            {"messageId": "down", "body": body(now, 24..32), "receiptHandle": "handle-of-down"},
            {"messageId": "garbled", "body": "{", "receiptHandle": "handle-of-garbled"},
            {"messageId": "unsharded", "body": serde_json::json!({"time": now}).to_string()},
            {"messageId": "looping", "body": serde_json::json!({"time": now, "fan_out": true}).to_string()},
            {"messageId": "past", "body": body(now, 40..48)},
            {"messageId": "superseded", "body": body(now, 0..8), "attributes": sent(180)},
        ]}));
        let answer = work
            .handle(event, 0, recording_run(&seen))
            .await
            .expect("answered");
        let failed: Vec<&str> = match &answer {
            Answer::Queue(q) => q
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect(),
            other => panic!("not a queue answer: {other:?}"),
        };
        assert_eq!(failed, ["down", "garbled", "unsharded", "looping", "past"]);
        assert_eq!(*seen.lock().expect("lock"), vec![8..16, 24..32]);
        // The failed messages that name their receipt come back after one interval,
        // not after the queue's visibility timeout.
        let queue = work.queue.as_ref().expect("queue");
        let minute = Duration::from_secs(60);
        assert_eq!(
            queue.redeliveries.items(),
            [
                ("handle-of-down".to_owned(), minute),
                ("handle-of-garbled".to_owned(), minute)
            ]
        );
        // When SQS cannot be asked, the message is still answered as failed.
        queue.redeliveries.set_failing(true);
        let again = work
            .handle(
                invocation(serde_json::json!({"Records": [
                    {"messageId": "down", "body": body(now, 24..32), "receiptHandle": "handle-of-down"},
                ]})),
                0,
                recording_run(&seen),
            )
            .await
            .expect("answered");
        assert_eq!(
            serde_json::to_value(&again).expect("json"),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "down"}]})
        );
        assert_eq!(
            serde_json::to_value(&answer).expect("json")["batchItemFailures"][0],
            serde_json::json!({"itemIdentifier": "down"})
        );
        let all_done = work
            .handle(
                invocation(serde_json::json!({"Records": []})),
                0,
                recording_run(&seen),
            )
            .await
            .expect("empty");
        assert_eq!(
            serde_json::to_value(&all_done).expect("json"),
            serde_json::json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn a_bad_trigger_says_what_is_wrong() {
        let err = serde_json::from_value::<Invocation>(serde_json::json!({"shard": "seven"}))
            .expect_err("bad shard");
        assert!(err.to_string().contains("invalid type"), "{err}");
        let both: ScheduledTrigger = serde_json::from_value(
            serde_json::json!({"shard": 1, "shards": {"start": 0, "end": 2}}),
        )
        .expect("parses");
        assert_eq!(both.named_shards(), Err(TriggerError::ShardAndShards));
        let empty: ScheduledTrigger =
            serde_json::from_value(serde_json::json!({"shards": {"start": 4, "end": 4}}))
                .expect("parses");
        assert_eq!(
            empty.named_shards().map_err(|e| e.to_string()),
            Err("shards 4..4 is not a range of shards: start < end <= 32".to_owned())
        );
    }

    #[test]
    fn falls_back_to_now_without_a_time() {
        let trigger: ScheduledTrigger = serde_json::from_str("{}").expect("empty event");
        let now = Utc::now();
        assert_eq!(trigger.run_time(now), now);
    }
}
