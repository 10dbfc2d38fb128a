//! Where the traffic goes: a deployed HTTP API (URL + bearer token), or the local
//! stack's Lambda runtime emulator, invoked with API Gateway v2 events that carry the
//! tenant claim the JWT authorizer would have added.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What went wrong talking to the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The request did not complete.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The answer was not what the contract says.
    #[error("{what}: {detail}")]
    Answer {
        /// What was being done.
        what: String,
        /// What came back.
        detail: String,
    },
    /// Scheduled functions can only be driven on the local stack.
    #[error("driving the schedules needs --lambda-endpoint (a deployment runs its own schedules)")]
    NoSchedules,
}

/// An HTTP API and a token its authorizer accepts.
#[derive(Debug, Clone)]
pub struct HttpApi {
    /// Base URL, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`, or the local
    /// stack's gateway `http://127.0.0.1:3000`.
    pub api_url: String,
    /// A JWT carrying the tenant claim.
    pub token: String,
}

/// The deployment under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// A deployed HTTP API (its schedules run by themselves).
    Http(HttpApi),
    /// The local stack: its Lambda runtime emulator drives the schedules; requests go
    /// over HTTP through its gateway when `http_api` is given, else as API Gateway
    /// events straight to the functions.
    Lambda {
        /// e.g. `http://127.0.0.1:9000`.
        endpoint: String,
        /// The tenant (the claim of the events, or of the gateway's token).
        tenant: String,
        /// The local HTTP API, when requests go through it.
        http_api: Option<HttpApi>,
    },
}

/// An HTTP answer: status and JSON body (`null` when empty or not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

/// How long a fanned-out scheduled run may take to be worked off by the shard workers.
const WORKERS_TIMEOUT: Duration = Duration::from_secs(300);

/// Talks to a [`Target`].
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    http: reqwest::Client,
    sqs: Option<aws_sdk_sqs::Client>,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> Self {
        let http = modelwatch::tls::reqwest_client()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        Self {
            target,
            http,
            sqs: None,
        }
    }

    /// The same client, watching the shard queues (and reading the alert subscriber
    /// queue) with an SQS client configured from the environment (the local stack's
    /// `stack.env`).
    pub async fn with_sqs(mut self) -> Self {
        let sdk = modelwatch::aws::load_sdk_config().await;
        self.sqs = Some(aws_sdk_sqs::Client::new(&sdk));
        self
    }

    /// The SQS client, when [`Client::with_sqs`] made one.
    pub fn sqs(&self) -> Option<&aws_sdk_sqs::Client> {
        self.sqs.as_ref()
    }

    /// Whether the scheduled functions can be invoked (local stack only).
    pub fn drives_schedules(&self) -> bool {
        matches!(self.target, Target::Lambda { .. })
    }

    /// Sends one API request: `method` on `path` (with its query string) and a JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        let what = format!("{method} {path}");
        match &self.target {
            Target::Http(HttpApi { api_url, token })
            | Target::Lambda {
                http_api: Some(HttpApi { api_url, token }),
                ..
            } => {
                let url = format!("{}{path}", api_url.trim_end_matches('/'));
                let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| {
                    TargetError::Answer {
                        what: what.clone(),
                        detail: e.to_string(),
                    }
                })?;
                let mut request = self.http.request(method, url).bearer_auth(token);
                if let Some(body) = body {
                    request = request.json(body);
                }
                let (status, text) = send(request, &what).await?;
                Ok(Answer {
                    status: status.as_u16(),
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                })
            }
            Target::Lambda {
                tenant,
                http_api: None,
                ..
            } => {
                let answer = self
                    .invoke(function_for(path), &api_event(tenant, method, path, body))
                    .await?;
                let status = answer["statusCode"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| TargetError::Answer {
                        what: what.clone(),
                        detail: format!("no statusCode in {answer}"),
                    })?;
                let body = answer["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                Ok(Answer { status, body })
            }
        }
    }

    /// Runs a scheduled function (`aggregate` or `evaluate`) for `time`, as its schedule
    /// does: the coordinator fans the run out to the shard queue, and this waits until
    /// the shard workers (fed by the local stack's poller) have taken every message.
    /// Returns the coordinator's report.
    pub async fn run_schedule(
        &self,
        function: &str,
        time: DateTime<Utc>,
    ) -> Result<Value, TargetError> {
        if !self.drives_schedules() {
            return Err(TargetError::NoSchedules);
        }
        let event = json!({
            "version": "0", "id": format!("simulator-{function}-{}", time.timestamp()),
            "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": "123456789012", "time": time.to_rfc3339(), "region": "us-east-1",
            "resources": [format!("arn:aws:scheduler:us-east-1:123456789012:schedule/default/modelwatch-{function}")],
            "detail": {}, "fan_out": true
        });
        let answer = self.invoke(function, &event).await?;
        let queue = answer["fan_out"]["queue"]
            .as_str()
            .ok_or_else(|| TargetError::Answer {
                what: format!("{function}'s coordinator"),
                detail: format!("no fan_out.queue in {answer}"),
            })?;
        self.wait_for_workers(function, queue).await?;
        Ok(answer)
    }

    /// The alert messages about this client's tenant that the SNS subscriber queue
    /// `queue` holds, removed from it (see [`crate::observe::drain_alerts`]).
    pub async fn drain_alerts(&self, queue: &str) -> Result<Vec<Value>, TargetError> {
        let what = "reading the alert subscriber queue".to_owned();
        let (Some(sqs), Target::Lambda { tenant, .. }) = (&self.sqs, &self.target) else {
            return Err(TargetError::Answer {
                what,
                detail: "needs the local stack and an SQS client (Client::with_sqs)".into(),
            });
        };
        crate::observe::drain_alerts(sqs, queue, tenant)
            .await
            .map_err(|e| TargetError::Answer {
                what,
                detail: e.to_string(),
            })
    }

    /// Until the shard queue `queue` has no message left, visible or in flight.
    pub async fn wait_for_workers(&self, function: &str, queue: &str) -> Result<(), TargetError> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let what = format!("waiting for {function}'s shard workers");
        let sqs = self.sqs.as_ref().ok_or_else(|| TargetError::Answer {
            what: what.clone(),
            detail: "no SQS client to watch the shard queue (Client::with_sqs)".into(),
        })?;
        let started = std::time::Instant::now();
        loop {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(queue)
                .attribute_names(ApproximateNumberOfMessages)
                .attribute_names(ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .map_err(|e| TargetError::Answer {
                    what: what.clone(),
                    detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                })?;
            let left: u64 = [
                ApproximateNumberOfMessages,
                ApproximateNumberOfMessagesNotVisible,
            ]
            .iter()
            .filter_map(|name| attributes.attributes()?.get(name)?.parse::<u64>().ok())
            .sum();
            if left == 0 {
                return Ok(());
            }
            if started.elapsed() > WORKERS_TIMEOUT {
                return Err(TargetError::Answer {
                    what,
                    detail: format!(
                        "{left} message(s) left on {queue} after {} s (the poller's log: infra/local/.run/shards.log)",
                        WORKERS_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Invokes a function through the runtime emulator.
    async fn invoke(&self, function: &str, event: &Value) -> Result<Value, TargetError> {
        let Target::Lambda { endpoint, .. } = &self.target else {
            return Err(TargetError::NoSchedules);
        };
        let what = format!("invoking {function}");
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            endpoint.trim_end_matches('/')
        );
        let (status, text) = send(self.http.post(url).json(event), &what).await?;
        if !status.is_success() {
            return Err(TargetError::Answer {
                what,
                detail: format!("HTTP {status}: {text}"),
            });
        }
        serde_json::from_str(&text).map_err(|e| TargetError::Answer {
            what,
            detail: format!("not JSON ({e}): {text}"),
        })
    }
}

/// Sends `request`; its status and body text.
async fn send(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<(reqwest::StatusCode, String), TargetError> {
    let transport = |source| TargetError::Transport {
        what: what.to_owned(),
        source,
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let text = response.text().await.map_err(transport)?;
    Ok((status, text))
}

/// The function serving the API route of `path`, as the template routes it: the batch
/// routes (predictions, late labels) go to `ingest`, the others to `api`.
fn function_for(path: &str) -> &'static str {
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    if route == "/api/v1/monitoring/predictions" || route == crate::labels::ACTUALS_PATH {
        "ingest"
    } else {
        "api"
    }
}

/// An API Gateway HTTP API (payload 2.0) event as the JWT authorizer passes it on.
fn api_event(tenant: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let now = Utc::now();
    let mut headers = json!({"accept": "application/json", "host": "localhost",
                             "authorization": "Bearer simulator", "user-agent": "modelwatch-simulator"});
    if body.is_some() {
        headers["content-type"] = "application/json".into();
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": if params.is_empty() { Value::Null } else { params.into() },
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "local",
            "authorizer": {"jwt": {"claims": {"sub": "simulator", "tenant_id": tenant}, "scopes": null}},
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "modelwatch-simulator"},
            "requestId": format!("sim-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_routes_go_to_ingest_and_the_others_to_api() {
        assert_eq!(function_for("/api/v1/monitoring/predictions"), "ingest");
        assert_eq!(function_for("/api/v1/monitoring/actuals"), "ingest");
        assert_eq!(
            function_for("/api/v1/monitoring/performance/m?window=6h&granularity=hour"),
            "api"
        );
        assert_eq!(
            function_for("/api/v1/monitoring/performance/m/baseline"),
            "api"
        );
        assert_eq!(function_for("/api/v1/monitoring/models"), "api");
    }
}
