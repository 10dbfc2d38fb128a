//! A Lambda Runtime API of our own, for tests that need a function process with
//! settings of its own (e.g. Timestream switched off) or a network path they can cut
//! (an outage of the AWS emulator for that one process). The real binary is started
//! with `AWS_LAMBDA_RUNTIME_API` pointing here and polls for events exactly as it does
//! in Lambda; cargo-lambda's emulator serves the stack-wide functions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{Stack, repo_root};

/// What the function answered to one event.
pub type Answer = Result<Value, Value>;

struct Pending {
    events: Mutex<mpsc::Receiver<(Value, oneshot::Sender<Answer>)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A function binary served by this module's Runtime API; killed on drop.
pub struct LocalFunction {
    name: String,
    child: Child,
    events: mpsc::Sender<(Value, oneshot::Sender<Answer>)>,
}

impl LocalFunction {
    /// Starts `target/debug/<name>` with the stack's function environment, changed by
    /// `overrides` (a `None` value removes the variable).
    pub async fn start(stack: &Stack, name: &str, overrides: &[(&str, Option<&str>)]) -> Self {
        let binary = binary_path(name);
        assert!(
            binary.exists(),
            "{} is missing: build the functions first (`cargo build --workspace --bins`, done by `infra/local/stack.sh up`)",
            binary.display()
        );
        let (events, receiver) = mpsc::channel(1);
        let pending = Arc::new(Pending {
            events: Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(pending);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let addr = listener.local_addr().expect("runtime API address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut command = Command::new(&binary);
        command
            .envs(stack.function_env())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (key, value) in overrides {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Self {
            name: name.to_owned(),
            child,
            events,
        }
    }

    /// Sends `event` and waits for the answer; `Err` carries the function's error.
    pub async fn invoke(&mut self, event: &Value) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.events
            .send((event.clone(), reply))
            .await
            .expect("runtime API is serving");
        tokio::select! {
            answer = answer => answer.expect("the runtime API answers every invocation"),
            status = self.child.wait() => panic!("{} exited ({status:?}) before answering", self.name),
            () = tokio::time::sleep(Duration::from_secs(120)) => panic!("{} did not answer within 120 s", self.name),
        }
    }
}

async fn next_event(State(pending): State<Arc<Pending>>) -> impl IntoResponse {
    let Some((event, reply)) = pending.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let id = format!(
        "req-{}",
        pending
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    pending.waiting.lock().await.insert(id.clone(), reply);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 120_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let header = |v: String| HeaderValue::from_str(&v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", header(id));
    headers.insert("lambda-runtime-deadline-ms", header(deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:123456789012:function:local".into()),
    );
    headers.insert("content-type", header("application/json".into()));
    (StatusCode::OK, headers, Bytes::from(event.to_string()))
}

async fn deliver(pending: &Pending, id: &str, answer: Answer) -> StatusCode {
    match pending.waiting.lock().await.remove(id) {
        Some(reply) => {
            let _ = reply.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(
    State(pending): State<Arc<Pending>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    deliver(&pending, &id, Ok(json_or_text(&body))).await
}

async fn fail(
    State(pending): State<Arc<Pending>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    deliver(&pending, &id, Err(json_or_text(&body))).await
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

/// Where cargo put the workspace binary `name` (debug build).
pub fn binary_path(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join(name)
}
