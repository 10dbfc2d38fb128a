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

/// The deployment under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// A deployed HTTP API.
    Http {
        /// Base URL, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`.
        api_url: String,
        /// A JWT the authorizer accepts.
        token: String,
    },
    /// The local stack's Lambda runtime emulator.
    Lambda {
        /// e.g. `http://127.0.0.1:9000`.
        endpoint: String,
        /// The tenant claim to put into the events.
        tenant: String,
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

/// Talks to a [`Target`].
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    http: reqwest::Client,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        Self { target, http }
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
            Target::Http { api_url, token } => {
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
            Target::Lambda { tenant, .. } => {
                let function = if path.starts_with("/api/v1/monitoring/predictions") {
                    "ingest"
                } else {
                    "api"
                };
                let answer = self
                    .invoke(function, &api_event(tenant, method, path, body))
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
    /// would; returns its report.
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
            "detail": {}
        });
        self.invoke(function, &event).await
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
