//! The scheduled trigger of `aggregate` and `evaluate`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a schedule invocation carries that the functions use: the scheduled time.
///
/// Accepts the EventBridge "Scheduled Event" envelope (`time` field) and an EventBridge
/// Scheduler payload without one (then `time` is `None` and the caller uses the
/// clock). Other fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ScheduledTrigger {
    /// When the schedule fired, if the event says.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
}

impl ScheduledTrigger {
    /// The time to run for: the event's own time, else `now`.
    pub fn run_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.time.unwrap_or(now)
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
    fn falls_back_to_now_without_a_time() {
        let trigger: ScheduledTrigger = serde_json::from_str("{}").expect("empty event");
        let now = Utc::now();
        assert_eq!(trigger.run_time(now), now);
    }
}
