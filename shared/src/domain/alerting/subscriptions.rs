//! A tenant's own alert subscriptions (`PUT /alert-subscriptions`): e-mail addresses and
//! SQS queues, which become SNS subscriptions of the alert topic filtered on the
//! tenant's `tenant_id` (so each receives only its tenant's alerts), and HTTPS webhooks,
//! which `evaluate` calls itself with a signed body.
//!
//! The set is replaced whole; a subscription that stays the same (protocol, endpoint
//! and severities) is kept as it is — its SNS subscription, its webhook's signing
//! secret —, a new one is created, one left out is removed.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::Severity;
use super::{Problems, request_object};

/// Subscriptions one tenant may hold.
pub const MAX_SUBSCRIPTIONS: usize = 10;

/// The longest accepted endpoint, characters.
pub const MAX_ENDPOINT_LEN: usize = 2_048;

/// Where alerts are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// An e-mail address (SNS; AWS asks the address to confirm first).
    Email,
    /// An SQS queue of the deployment's account, by ARN (SNS; the queue's policy must
    /// let the topic send to it).
    Sqs,
    /// An HTTPS URL `evaluate` posts each alert to, signed with the subscription's
    /// secret.
    Webhook,
}

impl Protocol {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sqs => "sqs",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requested subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubscriptionTarget {
    /// How alerts are delivered.
    pub protocol: Protocol,
    /// The address, queue ARN or URL.
    pub endpoint: String,
    /// Only alerts of these severities; empty: every alert.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub severity: BTreeSet<Severity>,
}

impl SubscriptionTarget {
    /// Whether an alert of `severity` goes to this subscription.
    pub fn wants(&self, severity: Severity) -> bool {
        self.severity.is_empty() || self.severity.contains(&severity)
    }

    /// The SNS filter policy of this subscription for `tenant`'s alerts.
    pub fn filter_policy(&self, tenant: &str) -> Value {
        let mut policy = serde_json::json!({ "tenant_id": [tenant] });
        if !self.severity.is_empty() {
            let severities: Vec<&str> = self.severity.iter().map(|s| s.as_str()).collect();
            policy["severity"] = severities.into();
        }
        policy
    }
}

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSubscription {
    /// A stable id: the protocol and a digest of the endpoint.
    pub id: String,
    /// What it delivers to.
    #[serde(flatten)]
    pub target: SubscriptionTarget,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its SNS subscription (e-mail and SQS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_arn: Option<String>,
    /// The webhook's signing secret (never shown again after the `PUT` that made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A tenant's subscriptions as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSubscriptions {
    /// The subscriptions, in the order given.
    pub subscriptions: Vec<AlertSubscription>,
    /// When the set was last replaced (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The id of a subscription to `endpoint` by `protocol`: stable across replacements.
pub fn subscription_id(protocol: Protocol, endpoint: &str) -> String {
    // FNV-1a 64: a short, stable, non-secret name, not a security boundary.
    let digest = endpoint
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{protocol}-{digest:016x}")
}

/// Parses a `PUT /alert-subscriptions` body: `{"subscriptions": [{"protocol",
/// "endpoint", "severity"?}]}`. An SQS queue must be in `account` (the deployment's);
/// a webhook must be `https://` (or `http://` to a loopback host, for local testing).
/// Every problem is listed, each naming its field.
pub fn parse_subscriptions(
    body: &Value,
    account: &str,
) -> Result<Vec<SubscriptionTarget>, Problems> {
    let (object, mut problems) = request_object(body, &["subscriptions"], "a subscription set")?;
    let items = match object.get("subscriptions") {
        Some(Value::Array(items)) if items.len() > MAX_SUBSCRIPTIONS => {
            problems.push(
                "subscriptions",
                &format!(
                    "has {} subscriptions; at most {MAX_SUBSCRIPTIONS} are allowed",
                    items.len()
                ),
            );
            return Err(problems);
        }
        Some(Value::Array(items)) => items,
        _ => {
            problems.push(
                "subscriptions",
                "must be an array (empty removes every subscription)",
            );
            return Err(problems);
        }
    };
    let mut targets = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let at = |field: &str| format!("subscriptions[{index}].{field}");
        let Some(item) = item.as_object() else {
            problems.push(&format!("subscriptions[{index}]"), "must be a JSON object");
            continue;
        };
        problems.unknown_fields(
            item,
            &["protocol", "endpoint", "severity"],
            "a subscription",
            at,
        );
        let protocol = match item.get("protocol").and_then(Value::as_str) {
            Some(text) => problems.one_of(
                &at("protocol"),
                text,
                &[
                    ("email", Protocol::Email),
                    ("sqs", Protocol::Sqs),
                    ("webhook", Protocol::Webhook),
                ],
            ),
            None => {
                problems.push(&at("protocol"), "must be `email`, `sqs` or `webhook`");
                None
            }
        };
        let endpoint = item.get("endpoint").and_then(Value::as_str);
        let severity = severities(item.get("severity"), &at("severity"), &mut problems);
        let (Some(protocol), Some(endpoint)) = (protocol, endpoint) else {
            if endpoint.is_none() {
                problems.push(&at("endpoint"), "must be a string");
            }
            continue;
        };
        if let Some(reason) = endpoint_problem(protocol, endpoint, account) {
            problems.push(&at("endpoint"), &reason);
            continue;
        }
        if !seen.insert((protocol, endpoint.to_owned())) {
            problems.push(&at("endpoint"), "is subscribed twice by the same protocol");
            continue;
        }
        targets.push(SubscriptionTarget {
            protocol,
            endpoint: endpoint.to_owned(),
            severity,
        });
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

/// The `severity` list of a subscription (absent: every severity).
fn severities(value: Option<&Value>, field: &str, problems: &mut Problems) -> BTreeSet<Severity> {
    let choices = [
        ("info", Severity::Info),
        ("warning", Severity::Warning),
        ("critical", Severity::Critical),
    ];
    match value {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let field = format!("{field}[{i}]");
                match item.as_str() {
                    Some(text) => problems.one_of(&field, text, &choices),
                    None => {
                        problems.push(&field, "must be `info`, `warning` or `critical`");
                        None
                    }
                }
            })
            .collect(),
        Some(_) => {
            problems.push(
                field,
                "must be a non-empty array of severities (absent: every alert)",
            );
            BTreeSet::new()
        }
    }
}

/// Why `endpoint` cannot be subscribed by `protocol`, if it cannot.
fn endpoint_problem(protocol: Protocol, endpoint: &str, account: &str) -> Option<String> {
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT_LEN {
        return Some(format!("must be 1 to {MAX_ENDPOINT_LEN} characters"));
    }
    if endpoint.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    match protocol {
        Protocol::Email => {
            let valid = endpoint.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !endpoint.contains(char::is_whitespace)
                    && !domain.contains('@')
            });
            (!valid).then(|| "must be an e-mail address".into())
        }
        Protocol::Sqs => {
            let parts: Vec<&str> = endpoint.split(':').collect();
            let valid = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == "sqs"
                && !parts[3].is_empty()
                && !parts[5].is_empty();
            if !valid {
                Some("must be an SQS queue ARN (arn:aws:sqs:<region>:<account>:<queue>)".into())
            } else if parts[4] != account {
                Some(format!(
                    "must be a queue of this deployment's account {account}"
                ))
            } else {
                None
            }
        }
        Protocol::Webhook => {
            let loopback = [
                "http://127.0.0.1:",
                "http://127.0.0.1/",
                "http://localhost:",
                "http://localhost/",
                "http://[::1]:",
            ];
            let valid = (endpoint.starts_with("https://") && endpoint.len() > "https://".len())
                || loopback.iter().any(|prefix| endpoint.starts_with(prefix));
            (!valid).then(|| "must be an https:// URL".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "123456789012";

    #[test]
    fn parses_each_protocol_with_its_severities() {
        let body = json!({"subscriptions": [
            {"protocol": "email", "endpoint": "oncall@example.com"},
            {"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:123456789012:alerts",
             "severity": ["critical"]},
            {"protocol": "webhook", "endpoint": "https://hooks.example.com/modelwatch",
             "severity": ["warning", "critical"]}]});
        let targets = parse_subscriptions(&body, ACCOUNT).expect("valid");
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[1].protocol, Protocol::Sqs);
        assert!(targets[1].wants(Severity::Critical) && !targets[1].wants(Severity::Warning));
        assert!(targets[0].wants(Severity::Info));
        assert_eq!(
            targets[2].filter_policy("acme"),
            json!({"tenant_id": ["acme"], "severity": ["warning", "critical"]})
        );
        assert_eq!(
            parse_subscriptions(&json!({"subscriptions": []}), ACCOUNT),
            Ok(vec![])
        );
    }

    #[test]
    fn every_problem_is_listed_by_field() {
        let body = json!({"subscriptions": [
            {"protocol": "pigeon", "endpoint": "x"},
            {"protocol": "email", "endpoint": "not an address"},
            {"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:999999999999:theirs"},
            {"protocol": "webhook", "endpoint": "http://example.com/hook"},
            {"protocol": "webhook", "endpoint": "https://a.example/h", "severity": ["loud"]},
            {"protocol": "email"},
            {"protocol": "email", "endpoint": "a@example.com", "colour": "red"},
            {"protocol": "email", "endpoint": "a@example.com"}],
            "extra": true});
        let problems = parse_subscriptions(&body, ACCOUNT).expect_err("invalid");
        let fields: Vec<&str> = problems
            .as_slice()
            .iter()
            .map(|p| p.field.as_str())
            .collect();
        for field in [
            "extra",
            "subscriptions[0].protocol",
            "subscriptions[1].endpoint",
            "subscriptions[2].endpoint",
            "subscriptions[3].endpoint",
            "subscriptions[4].severity[0]",
            "subscriptions[5].endpoint",
            "subscriptions[6].colour",
            "subscriptions[7].endpoint",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let too_many = json!({"subscriptions": vec![json!({}); MAX_SUBSCRIPTIONS + 1]});
        assert!(parse_subscriptions(&too_many, ACCOUNT).is_err());
        assert!(parse_subscriptions(&json!({}), ACCOUNT).is_err());
    }

    #[test]
    fn ids_are_stable_and_differ_by_protocol_and_endpoint() {
        let a = subscription_id(Protocol::Email, "a@example.com");
        assert_eq!(a, subscription_id(Protocol::Email, "a@example.com"));
        assert!(a.starts_with("email-"));
        assert_ne!(a, subscription_id(Protocol::Email, "b@example.com"));
    }
}
