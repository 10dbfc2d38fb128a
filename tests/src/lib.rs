//! End-to-end harness: the real Lambda binaries, served by cargo-lambda's runtime
//! emulator, against the local stack (moto on 127.0.0.1:4566, Prometheus, and in the
//! LocalStack lane LocalStack for SNS, SQS and CloudWatch: see [`Lane`]).
//!
//! [`Stack::get`] reuses a running stack or starts one with `infra/local/stack.sh up`,
//! then checks that every component answers; a missing component fails the test with
//! a message saying what is missing — never a silent skip.
//!
//! Isolation: every test works under its own tenant ([`unique_tenant`]); all keys are
//! scoped by tenant, so tests share the emulator without seeing each other's data and
//! can run in parallel. (Resetting moto between tests would also drop the tables the
//! stack provisioned from the template.)

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod dashboard;
pub mod proxy;
pub mod runtime;
pub mod subscriber;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use modelwatch::adapters::dynamodb::DynamoRollupStore;
use modelwatch::config::RollupRetention;
use serde_json::Value;

/// The running local stack, as described by its `stack.env`.
#[derive(Debug)]
pub struct Stack {
    env: HashMap<String, String>,
}

/// The components every end-to-end test needs, as (name, stack.env key of its URL).
const COMPONENTS: [(&str, &str); 3] = [
    ("moto (AWS API emulator)", "AWS_ENDPOINT_URL"),
    ("Prometheus", "PROMETHEUS_URL"),
    ("cargo-lambda runtime emulator", "LAMBDA_ENDPOINT"),
];

/// The component the LocalStack lane adds, as (name, stack.env key of its URL).
const LOCALSTACK: (&str, &str) = ("LocalStack (SNS, SQS, CloudWatch)", "LOCALSTACK_URL");

/// Which emulator serves which AWS API: stack.env's `MODELWATCH_LANE`, chosen by
/// `infra/local/stack.sh up [--localstack]`. The functions and the tests reach each
/// service through the SDK's `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `all-moto`: moto serves every AWS API. moto does not speak rpc-v2-cbor, the
    /// protocol of the CloudWatch SDK, so CloudWatch exports fail in this lane.
    AllMoto,
    /// `localstack`: SNS, SQS and CloudWatch on LocalStack's runtime; DynamoDB and
    /// Timestream on moto.
    LocalStack,
}

impl Lane {
    /// The lane named `name` (`all-moto`, `localstack`); panics on any other name.
    pub fn parse(name: &str) -> Lane {
        match name {
            "all-moto" => Lane::AllMoto,
            "localstack" => Lane::LocalStack,
            other => panic!("MODELWATCH_LANE={other}: expected all-moto or localstack"),
        }
    }

    /// The lane's name, as in stack.env.
    pub fn name(self) -> &'static str {
        match self {
            Lane::AllMoto => "all-moto",
            Lane::LocalStack => "localstack",
        }
    }

    /// Whether the lane's CloudWatch endpoint speaks the SDK's protocol, so data
    /// put there can be read back.
    pub fn serves_cloudwatch(self) -> bool {
        self == Lane::LocalStack
    }
}

impl Stack {
    /// The stack, started on first use if it is not running. Panics, naming the
    /// component, when something does not answer.
    pub fn get() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| {
            let env_file = stack_env_path();
            let running = read_env_file(&env_file).is_some_and(|env| missing(&env).is_empty());
            if !running {
                start_stack();
            }
            let env = read_env_file(&env_file).unwrap_or_else(|| {
                panic!(
                    "{} was not written by `infra/local/stack.sh up`",
                    env_file.display()
                )
            });
            let down = missing(&env);
            assert!(
                down.is_empty(),
                "local stack components not answering: {}; see `bash infra/local/stack.sh status`",
                down.join(", ")
            );
            Stack { env }
        })
    }

    /// A value from stack.env; panics naming the key when the stack did not write it.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("stack.env has no {key}"))
    }

    /// The environment the stack gives the functions (every stack.env entry; the
    /// functions ignore what they do not read).
    pub fn function_env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The lane the stack runs in.
    pub fn lane(&self) -> Lane {
        Lane::parse(self.var("MODELWATCH_LANE"))
    }

    /// The endpoint the SDK resolves for a service from the stack's environment, as
    /// the functions' SDK does: `AWS_ENDPOINT_URL_<SERVICE>` (`service` as in that
    /// name: `SNS`, `SQS`, `CLOUDWATCH`, `DYNAMODB`) when stack.env has it, else
    /// `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self, service: &str) -> &str {
        self.env
            .get(&format!("AWS_ENDPOINT_URL_{service}"))
            .map_or_else(|| self.var("AWS_ENDPOINT_URL"), String::as_str)
    }

    /// The host:port of the AWS emulator.
    pub fn aws_endpoint_addr(&self) -> SocketAddr {
        let url = self.var("AWS_ENDPOINT_URL");
        authority(url)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("AWS_ENDPOINT_URL={url} is not host:port"))
    }

    /// An AWS SDK configuration for the APIs moto serves in every lane (DynamoDB,
    /// Timestream); for SNS, SQS and CloudWatch see [`Stack::sdk_config_for`].
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_for("DYNAMODB").await
    }

    /// The stack's rollups table, with the template's retention, as the functions
    /// read it.
    pub async fn rollup_store(&self) -> DynamoRollupStore {
        DynamoRollupStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk_config().await),
            self.var("ROLLUPS_TABLE"),
            RollupRetention {
                minute: TimeDelta::days(8),
                hour: TimeDelta::days(35),
                day: TimeDelta::days(400),
            },
        )
    }

    /// An AWS SDK configuration for `service`'s endpoint in the stack
    /// ([`Stack::endpoint`]; built per test: SDK clients hold connections of the
    /// runtime they were first used on).
    pub async fn sdk_config_for(&self, service: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(modelwatch::tls::aws_http_client())
            .endpoint_url(self.endpoint(service))
            .region(aws_config::Region::new(self.var("AWS_REGION").to_owned()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                self.var("AWS_ACCESS_KEY_ID"),
                self.var("AWS_SECRET_ACCESS_KEY"),
                None,
                None,
                "stack.env",
            ))
            .load()
            .await
    }

    /// A new HTTP client (one per test: each `#[tokio::test]` has its own runtime).
    pub fn http(&self) -> reqwest::Client {
        modelwatch::tls::reqwest_client()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("HTTP client builds")
    }

    /// The instant vector of the PromQL `query` at `at` (Unix seconds) from the stack's
    /// Prometheus: each series' labels and value.
    pub async fn prometheus_query(&self, query: &str, at: i64) -> Vec<(Value, f64)> {
        let url = url::Url::parse_with_params(
            &format!("{}/api/v1/query", self.var("PROMETHEUS_URL")),
            [("query", query), ("time", &at.to_string())],
        )
        .expect("query URL");
        let answer: Value = self
            .http()
            .get(url)
            .send()
            .await
            .expect("Prometheus query")
            .json()
            .await
            .expect("JSON answer");
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
                (r["metric"].clone(), value.expect("a number"))
            })
            .collect()
    }

    /// A JWT the stack's gateway accepts (signed with the stack's key, as `stack.sh
    /// token` signs), carrying `tenant` in the claim `claim`, valid `ttl_seconds`.
    pub fn token(&self, claim: &str, tenant: &str, ttl_seconds: i64) -> String {
        let out = Command::new(runtime::binary_path("modelwatch-gateway"))
            .args(["token", "--key", self.var("JWT_KEY"), "--kid", "local"])
            .args(["--issuer", self.var("JWT_ISSUER")])
            .args(["--audience", self.var("JWT_AUDIENCE")])
            .args(["--claim", claim, "--tenant", tenant])
            .args(["--ttl-seconds", &ttl_seconds.to_string()])
            .output()
            .expect("the gateway binary signs tokens");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    }

    /// Sends the API Gateway `event` as the HTTP request it stands for, over HTTP
    /// through the stack's gateway with `token`; answers the response in the shape of
    /// a function's (`statusCode`, lower-case `headers`, `body` as text).
    pub async fn over_http(&self, event: &Value, token: Option<&str>) -> Value {
        let method = event["requestContext"]["http"]["method"]
            .as_str()
            .expect("method");
        let mut url = format!(
            "{}{}",
            self.var("API_URL"),
            event["rawPath"].as_str().expect("rawPath")
        );
        if let Some(query) = event["rawQueryString"].as_str().filter(|q| !q.is_empty()) {
            url = format!("{url}?{query}");
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http().request(method, url);
        for (name, value) in event["headers"].as_object().into_iter().flatten() {
            let skipped = ["host", "content-length", "authorization"];
            if let (false, Some(value)) = (skipped.contains(&name.as_str()), value.as_str()) {
                request = request.header(name, value);
            }
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = event["body"].as_str() {
            request = request.body(if event["isBase64Encoded"] == true {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("base64 body")
            } else {
                body.as_bytes().to_vec()
            });
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers: serde_json::Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.into()))
            })
            .collect();
        let body = response.text().await.expect("body");
        serde_json::json!({"statusCode": status, "headers": headers, "body": body})
    }

    /// Invokes `function` through the runtime emulator with `payload`, returning the
    /// function's answer. Panics when the invocation fails at the transport level.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Value {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.var("LAMBDA_ENDPOINT")
        );
        let response = self
            .http()
            .post(&url)
            .json(payload)
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoking {function} at {url}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("invocation answer body");
        assert!(
            status.is_success(),
            "invoking {function}: HTTP {status}: {text}"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{function} answered non-JSON ({e}): {text}"))
    }
}

/// Loads `events/<name>` from the repository.
pub fn event(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// An API Gateway HTTP API event (`events/<template>`) re-addressed to `tenant`.
pub fn api_event_for_tenant(template: &str, tenant: &str) -> Value {
    let mut event = event(template);
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = tenant.into();
    event
}

/// A tenant id no other test (in this or an earlier run) uses.
pub fn unique_tenant(test: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("t-{test}-{nanos:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The workspace root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs the reference script `script` (a path from the repository root) with the local
/// stack's Python (scikit-learn, numpy, scipy; installed by stack.sh), `input` as JSON
/// on its stdin; its stdout parsed as JSON. Panics, naming the script, on any failure.
pub fn python_reference(script: &str, input: &Value) -> Value {
    use std::io::Write;
    let python = repo_root().join("infra/local/.venv/bin/python");
    let script = repo_root().join(script);
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (installed by stack.sh): {e}", python.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("reference");
    assert!(output.status.success(), "{}", script.display());
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn stack_env_path() -> PathBuf {
    if let Ok(path) = std::env::var("MODELWATCH_STACK_ENV") {
        return PathBuf::from(path);
    }
    let run_dir = std::env::var("MODELWATCH_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("infra/local/.run"));
    run_dir.join("stack.env")
}

fn read_env_file(path: &Path) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// The components of `env`'s lane that do not accept a TCP connection.
fn missing(env: &HashMap<String, String>) -> Vec<String> {
    let lane = env.get("MODELWATCH_LANE").map(|l| Lane::parse(l));
    COMPONENTS
        .iter()
        .chain((lane == Some(Lane::LocalStack)).then_some(&LOCALSTACK))
        .filter_map(|(name, key)| match env.get(*key) {
            None => Some(format!("{name} (no {key} in stack.env)")),
            Some(url) if !answers(url) => Some(format!("{name} at {url}")),
            Some(_) => None,
        })
        .collect()
}

/// The host:port part of a URL.
fn authority(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
}

fn answers(url: &str) -> bool {
    let addrs: Vec<SocketAddr> = authority(url)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok())
}

fn start_stack() {
    let script = repo_root().join("infra/local/stack.sh");
    // The enclosing `cargo test` holds the lock on the default target directory, so the
    // functions started from here are built into their own.
    let status = Command::new("bash")
        .arg(&script)
        .arg("up")
        .env("CARGO_TARGET_DIR", repo_root().join("target/stack"))
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("running {} up: {e}", script.display()));
    assert!(
        status.success(),
        "`bash infra/local/stack.sh up` failed ({status}); the end-to-end tests need the local stack"
    );
}

/// An ingest route event (`events/ingest-batch.json`) for `tenant` carrying `body`.
pub fn ingest_event(tenant: &str, body: &[u8]) -> Value {
    event_with_body("ingest-batch.json", tenant, body)
}

/// The label batch `body` as API Gateway gives it to `ingest` for `tenant`
/// (`POST /api/v1/monitoring/actuals`, `events/ingest-actuals.json`).
pub fn actuals_event(tenant: &str, body: &[u8]) -> Value {
    event_with_body("ingest-actuals.json", tenant, body)
}

/// The route event `file` for `tenant`, carrying `body` (no `content-length`).
fn event_with_body(file: &str, tenant: &str, body: &[u8]) -> Value {
    let mut event = api_event_for_tenant(file, tenant);
    event["body"] = String::from_utf8_lossy(body).into_owned().into();
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.remove("content-length");
    }
    event
}

/// The batch body of `events/ingest-batch.json` with its event times moved to `now`
/// (keeping their offsets from the first), so it is inside the accepted time span.
pub fn sample_batch(now: DateTime<Utc>) -> Value {
    let event = event("ingest-batch.json");
    let mut batch: Value =
        serde_json::from_str(event["body"].as_str().expect("string body")).expect("JSON batch");
    let parse = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().expect("timestamp string"))
            .expect("RFC 3339")
            .with_timezone(&Utc)
    };
    let mut stamps: Vec<DateTime<Utc>> = Vec::new();
    for list in ["predictions", "resources"] {
        for r in batch[list].as_array().into_iter().flatten() {
            stamps.push(parse(&r["timestamp"]));
        }
    }
    let first = stamps.iter().min().copied().expect("a timestamped record");
    for list in ["predictions", "resources"] {
        for r in batch[list].as_array_mut().into_iter().flatten() {
            let shifted = now + (parse(&r["timestamp"]) - first);
            r["timestamp"] = shifted.to_rfc3339_opts(SecondsFormat::Millis, true).into();
        }
    }
    batch
}

/// One case of the bad-batch corpus (`tests/fixtures/bad_batches.json`).
#[derive(Debug)]
pub struct BadBatch {
    /// What is wrong.
    pub name: String,
    /// The HTTP status the ingest route must answer.
    pub status: u16,
    /// The field path the error must name.
    pub field: String,
    /// The request body.
    pub body: Vec<u8>,
}

/// The bad-batch corpus with its time placeholders resolved against `now`.
pub fn bad_batches(now: DateTime<Utc>) -> Vec<BadBatch> {
    let path = repo_root().join("tests/fixtures/bad_batches.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let corpus: Value = serde_json::from_str(&text).expect("corpus is JSON");
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let resolve = |s: &str| {
        s.replace("$NOW", &stamp(now))
            .replace("$OLD", &stamp(now - TimeDelta::days(8)))
            .replace("$FUTURE", &stamp(now + TimeDelta::minutes(10)))
    };
    corpus["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let mut body = match case.get("raw") {
                Some(raw) => {
                    let raw = resolve(raw.as_str().expect("raw is a string"));
                    match case.get("repeat") {
                        Some(repeat) => {
                            let item = repeat["item"].as_str().expect("repeat.item");
                            let count = repeat["count"].as_u64().expect("repeat.count");
                            raw.replace("$REPEAT", &vec![item; count as usize].join(","))
                        }
                        None => raw,
                    }
                }
                None => {
                    let mut body = case["body"].clone();
                    for list in ["predictions", "resources"] {
                        let repeat = format!("repeat_{list}");
                        if let Some(n) = case.get(&repeat).and_then(Value::as_u64) {
                            let first = body[list][0].clone();
                            body[list] = Value::Array(vec![first; n as usize]);
                        }
                    }
                    resolve(&body.to_string())
                }
            };
            if let Some(pad) = case.get("pad_bytes").and_then(Value::as_u64) {
                body.push_str(&" ".repeat(pad as usize));
            }
            BadBatch {
                name: case["name"].as_str().expect("name").to_owned(),
                status: case["status"].as_u64().expect("status") as u16,
                field: case["field"].as_str().expect("field").to_owned(),
                body: body.into_bytes(),
            }
        })
        .collect()
}

/// An API Gateway HTTP API event (payload 2.0, the format of
/// `events/api-get-models.json`) for `tenant` (`None`: without the tenant claim)
/// asking `method` `path` with the query parameters `query`.
pub fn api_request(
    tenant: Option<&str>,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Value {
    let mut event = event("api-get-models.json");
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    match tenant {
        Some(tenant) => claims["tenant_id"] = tenant.into(),
        None => {
            if let Some(claims) = claims.as_object_mut() {
                claims.remove("tenant_id");
            }
        }
    }
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    let proxy = path.strip_prefix("/api/v1/monitoring/").unwrap_or(path);
    event["pathParameters"] = serde_json::json!({ "proxy": proxy });
    let mut raw = url::form_urlencoded::Serializer::new(String::new());
    let mut params = serde_json::Map::new();
    for (name, value) in query {
        raw.append_pair(name, value);
        params.insert((*name).to_owned(), (*value).into());
    }
    event["rawQueryString"] = raw.finish().into();
    if !params.is_empty() {
        event["queryStringParameters"] = params.into();
    }
    event
}

/// `event` carrying `body`, declared as `content_type` (`None`: no `Content-Type`).
pub fn with_body(mut event: Value, content_type: Option<&str>, body: &str) -> Value {
    event["body"] = body.into();
    event["isBase64Encoded"] = false.into();
    if let Some(content_type) = content_type {
        event["headers"]["content-type"] = content_type.into();
    }
    event
}

/// The HTTP status and the parsed JSON body of an API Gateway proxy answer; panics,
/// showing the answer, when it has no status or its body is not JSON.
pub fn http_answer(answer: &Value) -> (u16, Value) {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or_else(|| panic!("no statusCode in {answer}"));
    let body = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_else(|| panic!("no JSON body in {answer}"));
    (status, body)
}
