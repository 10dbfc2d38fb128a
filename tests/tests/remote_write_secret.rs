//! End to end: the Prometheus remote-write credential is read at run time from the
//! emulator's Secrets Manager (`PROMETHEUS_REMOTE_WRITE_AUTH_SECRET`; nothing secret
//! in the function's environment), and a rotated secret is picked up by the running
//! `aggregate` process after the receiver's `401`, without a restart or a redeploy.
//!
//! The receiver is a second real Prometheus that demands basic auth (its web
//! configuration holds the bcrypt hash of the current password, and Prometheus reads
//! that file on every request, so rotating it takes effect at once).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch_e2e::runtime::LocalFunction;
use modelwatch_e2e::{Stack, event, ingest_event, unique_tenant};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const USER: &str = "modelwatch";

/// A Prometheus on a free port whose web configuration requires basic auth; killed
/// on drop, its files removed.
struct GuardedPrometheus {
    _child: Child,
    dir: PathBuf,
    url: String,
}

impl GuardedPrometheus {
    async fn start(password: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("modelwatch-{}", unique_tenant("prom")));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        std::fs::write(
            dir.join("prometheus.yml"),
            "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n",
        )
        .expect("prometheus.yml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let prometheus = Self {
            _child: Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--web.config.file={}",
                    dir.join("web.yml").display()
                ))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("prometheus is installed by infra/local/stack.sh"),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        prometheus.accept(password);
        let client = modelwatch::tls::reqwest_client()
            .build()
            .expect("HTTP client builds");
        for _ in 0..120 {
            let ready = client
                .get(format!("{}/-/ready", prometheus.url))
                .basic_auth(USER, Some(password))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the guarded Prometheus did not become ready");
    }

    /// From now on only `password` is accepted.
    fn accept(&self, password: &str) {
        // Cost 4, the lowest: the hash guards a test's throwaway password.
        let hash = bcrypt::hash_with_salt(password, 4, *b"modelwatch-salt!")
            .expect("bcrypt")
            .to_string();
        let web = format!("basic_auth_users:\n  {USER}: {hash}\n");
        write_atomically(&self.dir.join("web.yml"), &web);
    }

    /// The status of a query with `password`, and its result.
    async fn query(&self, password: &str, query: &str) -> (u16, Value) {
        let url =
            url::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", query)])
                .expect("query URL");
        let response = modelwatch::tls::reqwest_client()
            .build()
            .expect("HTTP client builds")
            .get(url)
            .basic_auth(USER, Some(password))
            .send()
            .await
            .expect("query");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body["data"]["result"].clone())
    }
}

impl Drop for GuardedPrometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `text` to `path` by renaming a sibling, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write");
    std::fs::rename(&partial, path).expect("rename");
}

/// A regression batch of `model` at `at`.
fn batch(model: &str, at: DateTime<Utc>) -> Vec<u8> {
    json!({"model_id": model, "batch_id": format!("b-{model}"), "task": "regression",
           "predictions": [{"timestamp": at.to_rfc3339(), "latency_ms": 7.0, "status": "ok",
                            "predicted": 1.0, "actual": 1.25}]})
    .to_string()
    .into_bytes()
}

/// Ingests `model`'s batch, runs `aggregate` once in `function`, and answers its
/// Prometheus export's outcome.
async fn ingest_and_aggregate(
    stack: &Stack,
    function: &mut LocalFunction,
    tenant: &str,
    model: &str,
) -> Value {
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute") - TimeDelta::minutes(2);
    let answer = stack
        .invoke(
            "ingest",
            &ingest_event(tenant, &batch(model, minute + TimeDelta::seconds(5))),
        )
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = function.invoke(&trigger).await.expect("the run succeeds");
    report["exports"]
        .as_array()
        .and_then(|exports| exports.iter().find(|e| e["exporter"] == "prometheus"))
        .map(|e| e["outcome"].clone())
        .unwrap_or_else(|| panic!("no prometheus export in {report}"))
}

#[tokio::test]
async fn the_credential_is_read_from_secrets_manager_and_a_rotation_is_picked_up_after_a_401() {
    let stack = Stack::get();
    let tenant = unique_tenant("secret");
    let (first, second) = (format!("first-{tenant}"), format!("second-{tenant}"));
    let receiver = GuardedPrometheus::start(&first).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk_config().await);
    let name = format!("modelwatch/{tenant}/remote-write");
    let created = secrets
        .create_secret()
        .name(&name)
        .secret_string(format!("basic:{USER}:{first}"))
        .send()
        .await
        .expect("secret created");
    let arn = created.arn().expect("an ARN").to_owned();

    // The function is given the secret's ARN, never its value.
    let write_url = format!("{}/api/v1/write", receiver.url);
    let mut aggregate = LocalFunction::start(
        stack,
        "aggregate",
        &[
            ("PROMETHEUS_REMOTE_WRITE_URL", Some(&write_url)),
            ("PROMETHEUS_REMOTE_WRITE_AUTH", None),
            ("PROMETHEUS_REMOTE_WRITE_AUTH_SECRET", Some(&arn)),
            ("PROMETHEUS_REMOTE_WRITE_SECRET_REFRESH_SECONDS", Some("1")),
        ],
    )
    .await;
    let outcome = ingest_and_aggregate(stack, &mut aggregate, &tenant, "m-before").await;
    assert_eq!(outcome, "delivered");
    let series = |model: &str| format!("count({{tenant_id=\"{tenant}\", model_id=\"{model}\"}})");
    let (status, found) = receiver.query(&first, &series("m-before")).await;
    assert_eq!(status, 200);
    assert!(!found.as_array().is_some_and(Vec::is_empty), "{found}");

    // Rotate: the receiver takes only the new password, the secret holds it.
    receiver.accept(&second);
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(format!("basic:{USER}:{second}"))
        .send()
        .await
        .expect("secret rotated");
    let (status, _) = receiver.query(&first, &series("m-before")).await;
    assert_eq!(status, 401, "the old password is refused now");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The same process: its cached credential is refused, it reads the secret again
    // and sends again.
    let outcome = ingest_and_aggregate(stack, &mut aggregate, &tenant, "m-after").await;
    assert_eq!(outcome, "delivered");
    let (status, found) = receiver.query(&second, &series("m-after")).await;
    assert_eq!(status, 200);
    assert!(!found.as_array().is_some_and(Vec::is_empty), "{found}");
}
