//! What the demo reads back besides the API: the alert messages the SNS subscriber (an
//! SQS queue) received, and values from Prometheus.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Reading the subscriber queue or Prometheus failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ObserveError {
    what: String,
    detail: String,
}

fn error(what: &str, detail: impl std::fmt::Display) -> ObserveError {
    ObserveError {
        what: what.to_owned(),
        detail: detail.to_string(),
    }
}

/// What an SQS call that failed while `what` becomes, with the SDK's whole context.
fn sqs_failed<E: std::error::Error>(what: &'static str) -> impl FnOnce(E) -> ObserveError {
    move |e| error(what, aws_sdk_sqs::error::DisplayErrorContext(e))
}

/// Drains the SQS queue `queue_url` (an SNS subscription, not raw delivery) and returns
/// the alert JSON of every message about `tenant`, oldest first; other tenants'
/// messages are left in the queue.
pub async fn drain_alerts(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    tenant: &str,
) -> Result<Vec<Value>, ObserveError> {
    let mut alerts = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(sqs_failed("receiving alerts"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let envelope: Value =
                serde_json::from_str(message.body().unwrap_or("null")).unwrap_or(Value::Null);
            let alert: Value = envelope["Message"]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Value::Null);
            if alert["tenant_id"] != tenant {
                continue;
            }
            alerts.push(alert);
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(sqs_failed("deleting an alert message"))?;
            }
        }
    }
    alerts.sort_by(|a, b| {
        let key = |v: &Value| {
            let at = if v["state"] == "resolved" {
                &v["resolved_at"]
            } else {
                &v["started_at"]
            };
            at.as_str().unwrap_or_default().to_owned()
        };
        key(a).cmp(&key(b))
    });
    Ok(alerts)
}

/// `time` as Prometheus's API takes it to the millisecond.
fn rfc3339_millis(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The instant-query result of `query` at `time` on the Prometheus at `url`: each
/// series' labels and value.
pub async fn prometheus_query(
    url: &str,
    query: &str,
    time: DateTime<Utc>,
) -> Result<Vec<(Value, f64)>, ObserveError> {
    let http = modelwatch::tls::reqwest_client()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| error("HTTP client", e))?;
    let endpoint = url::Url::parse_with_params(
        &format!("{}/api/v1/query", url.trim_end_matches('/')),
        // Milliseconds, as samples are stamped: whole seconds would put a sample
        // written in the current second after the query's time, and out of its answer.
        [("query", query), ("time", &rfc3339_millis(time))],
    )
    .map_err(|e| error(url, e))?;
    let response = http
        .get(endpoint)
        .send()
        .await
        .map_err(|e| error(query, e))?;
    let body: Value = response.json().await.map_err(|e| error(query, e))?;
    if body["status"] != "success" {
        return Err(error(query, body));
    }
    Ok(body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|series| {
            let value = series["value"][1].as_str()?.parse::<f64>().ok()?;
            Some((series["metric"].clone(), value))
        })
        .collect())
}
