use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::*;
use crate::adapters::remote_write::proto::WriteRequest;
use crate::adapters::remote_write::{AttemptError, RemoteWriteError};

/// A scripted answer of the test receiver.
#[derive(Clone)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
    body: &'static str,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
        body: "",
    }
}

/// What the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("missing header {name}"))
    }

    /// The body decoded as a receiver does: snappy block format, then protobuf.
    fn decode(&self) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&self.body)
            .expect("snappy block format");
        WriteRequest::decode(&raw).expect("a WriteRequest")
    }
}

/// A remote-write receiver on 127.0.0.1 answering from a script (then 200).
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    always: Arc<Mutex<Option<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> (Self, String) {
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.into())),
            ..Receiver::default()
        };
        let app = Router::new()
            .route("/api/v1/write", post(handle))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, format!("http://{addr}/api/v1/write"))
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn handle(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    rx.received.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let next = rx.script.lock().unwrap().pop_front();
    let reply = next
        .or_else(|| rx.always.lock().unwrap().clone())
        .unwrap_or_else(|| reply(204));
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(after) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(2),
    }
}

fn no_aws() -> SdkConfig {
    SdkConfig::builder().build()
}

fn client(url: &str, auth: &str) -> RemoteWriteClient {
    RemoteWriteClient::new(url, &auth.parse().unwrap(), &no_aws(), fast_policy()).unwrap()
}

fn two_series() -> Vec<Series> {
    vec![
        Series::new(
            "ml_model_latency_seconds",
            [
                ("tenant_id", "t1"),
                ("model_id", "m1"),
                ("quantile", "0.99"),
            ],
        )
        .with_sample(1_700_000_120_000, 0.250)
        .with_sample(1_700_000_060_000, 0.125),
        Series::new(
            "ml_model_predictions_total",
            [("status", "success"), ("model_id", "m1")],
        )
        .with_sample(1_700_000_060_000, 42.0),
    ]
}

#[tokio::test]
async fn delivers_with_the_spec_headers_and_body() {
    let (rx, url) = Receiver::start(vec![]).await;
    let report = client(&url, "").write(&two_series()).await.unwrap();
    assert_eq!((report.requests, report.series, report.samples), (1, 2, 3));

    let received = rx.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.header("content-encoding"), "snappy");
    assert_eq!(got.header("content-type"), "application/x-protobuf");
    assert_eq!(got.header("x-prometheus-remote-write-version"), "0.1.0");
    assert_eq!(
        got.header("user-agent"),
        format!("modelwatch/{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(got.headers.get("authorization").is_none());

    let request = got.decode();
    assert_eq!(request.timeseries.len(), 2);
    let latency = &request.timeseries[0];
    let labels: Vec<(&str, &str)> = latency
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("__name__", "ml_model_latency_seconds"),
            ("model_id", "m1"),
            ("quantile", "0.99"),
            ("tenant_id", "t1"),
        ]
    );
    let samples: Vec<(i64, f64)> = latency
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(
        samples,
        [(1_700_000_060_000, 0.125), (1_700_000_120_000, 0.250)]
    );
    let counter = &request.timeseries[1];
    assert_eq!(counter.labels[0].value, "ml_model_predictions_total");
    assert_eq!(counter.labels[2].name, "status");
    assert_eq!(counter.samples[0].value, 42.0);
}

#[tokio::test]
async fn a_500_is_retried_and_then_succeeds() {
    let (rx, url) = Receiver::start(vec![reply(500), reply(200)]).await;
    let report = client(&url, "").write(&two_series()).await.unwrap();
    assert_eq!(report.requests, 1);
    let received = rx.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].body, received[1].body,
        "the same body is resent"
    );
    assert_eq!(received[1].decode().timeseries.len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let (rx, url) = Receiver::start(vec![Reply {
        status: 429,
        retry_after: Some("1"),
        body: "slow down",
    }])
    .await;
    let started = Instant::now();
    client(&url, "").write(&two_series()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_with_backoff() {
    let (rx, url) = Receiver::start(vec![reply(429), reply(429), reply(200)]).await;
    client(&url, "").write(&two_series()).await.unwrap();
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn a_retry_after_beyond_the_bound_ends_the_attempts() {
    let (rx, url) = Receiver::start(vec![Reply {
        status: 429,
        retry_after: Some("3600"),
        body: "",
    }])
    .await;
    let err = client(&url, "").write(&two_series()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        matches!(err, RemoteWriteError::Unavailable { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test]
async fn a_400_is_not_retried_and_the_error_carries_the_body() {
    let (rx, url) = Receiver::start(vec![Reply {
        status: 400,
        retry_after: None,
        body: "out of order sample\n",
    }])
    .await;
    let err = client(&url, "").write(&two_series()).await.unwrap_err();
    assert!(!err.is_retryable());
    let RemoteWriteError::Rejected { status, body, .. } = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert_eq!((*status, body.as_str()), (400, "out of order sample"));
    assert!(err.to_string().contains("out of order sample"));
    assert_eq!(rx.received().len(), 1, "not retried");
}

#[tokio::test]
async fn a_refused_credential_is_not_retried_now_but_kept_for_the_next_run() {
    for status in [401, 403] {
        let (rx, url) = Receiver::start(vec![reply(status)]).await;
        let err = client(&url, "bearer:wrong")
            .write(&two_series())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RemoteWriteError::Unauthorized { status: s, .. } if s == status),
            "{status}: {err:?}"
        );
        assert!(err.is_retryable(), "the data is fine: {err}");
        assert_eq!(rx.received().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn other_4xx_and_redirects_are_not_retried() {
    for status in [404, 413, 307] {
        let (rx, url) = Receiver::start(vec![reply(status)]).await;
        let err = client(&url, "").write(&two_series()).await.unwrap_err();
        assert!(
            matches!(err, RemoteWriteError::Rejected { status: s, .. } if s == status),
            "{status}: {err:?}"
        );
        assert_eq!(rx.received().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_persistent_503_is_unavailable_after_max_attempts() {
    let (rx, url) = Receiver::start(vec![]).await;
    *rx.always.lock().unwrap() = Some(Reply {
        status: 503,
        retry_after: None,
        body: "down for maintenance",
    });
    let err = client(&url, "").write(&two_series()).await.unwrap_err();
    let RemoteWriteError::Unavailable {
        attempts,
        source: AttemptError::Status { status, body },
        ..
    } = &err
    else {
        panic!("expected Unavailable with a status, got {err:?}");
    };
    assert_eq!(
        (*attempts, *status, body.as_str()),
        (3, 503, "down for maintenance")
    );
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn an_unreachable_receiver_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(&format!("http://{addr}/api/v1/write"), "")
        .write(&two_series())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteWriteError::Unavailable {
                attempts: 3,
                source: AttemptError::Transport(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn large_writes_become_several_requests() {
    let (rx, url) = Receiver::start(vec![]).await;
    let series: Vec<Series> = (0..5)
        .map(|i| {
            Series::new("ml_model_accuracy", [("model_id", format!("m{i}"))])
                .with_sample(1_000, 0.5)
        })
        .collect();
    let report = client(&url, "")
        .with_max_series_per_request(2)
        .write(&series)
        .await
        .unwrap();
    assert_eq!((report.requests, report.series), (3, 5));
    let per_request: Vec<usize> = rx
        .received()
        .iter()
        .map(|r| r.decode().timeseries.len())
        .collect();
    assert_eq!(per_request, [2, 2, 1]);
}

#[tokio::test]
async fn a_rejected_request_does_not_stop_the_others() {
    let (rx, url) = Receiver::start(vec![reply(400)]).await;
    let series: Vec<Series> = (0..3)
        .map(|i| {
            Series::new("ml_model_accuracy", [("model_id", format!("m{i}"))])
                .with_sample(1_000, 0.5)
        })
        .collect();
    let err = client(&url, "")
        .with_max_series_per_request(1)
        .write(&series)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RemoteWriteError::Rejected { status: 400, .. }
    ));
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn invalid_series_are_skipped_and_nothing_left_sends_nothing() {
    let (rx, url) = Receiver::start(vec![]).await;
    let report = client(&url, "")
        .write(&[Series::new("bad name", [("a", "b")]).with_sample(1, 1.0)])
        .await
        .unwrap();
    assert_eq!(report.requests, 0);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        client(&url, "")
            .write(&[])
            .await
            .unwrap()
            .skipped
            .is_empty()
    );
    assert!(rx.received().is_empty());
}

#[tokio::test]
async fn basic_and_bearer_credentials_are_sent() {
    let (rx, url) = Receiver::start(vec![]).await;
    client(&url, "basic:alice:pa:ss")
        .write(&two_series())
        .await
        .unwrap();
    client(&url, "bearer:t0ken")
        .write(&two_series())
        .await
        .unwrap();
    let received = rx.received();
    // base64("alice:pa:ss")
    assert_eq!(
        received[0].header("authorization"),
        "Basic YWxpY2U6cGE6c3M="
    );
    assert_eq!(received[1].header("authorization"), "Bearer t0ken");
}

#[tokio::test]
async fn a_refused_credential_is_sent_once_more_after_the_secret_rotated() {
    use crate::adapters::remote_write::secret::scripted::{Scripted, authorizer};
    let (rx, url) = Receiver::start(vec![reply(401), reply(401)]).await;
    let source = Arc::new(Scripted::default());
    source.set(Ok("bearer:old"));
    let secret = Authorizer::Secret(Box::new(authorizer(&source, Duration::ZERO)));
    let client = RemoteWriteClient::with_authorizer(&url, secret, fast_policy()).expect("client");
    // Rotated between the first read and the write: refused, read again, sent again.
    client
        .write(&two_series())
        .await
        .expect_err("refused before the rotation is known");
    source.set(Ok("bearer:new"));
    let report = client.write(&two_series()).await.expect("delivered");
    assert_eq!(report.requests, 1);
    let sent: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("authorization").to_owned())
        .collect();
    assert_eq!(sent, ["Bearer old", "Bearer old", "Bearer new"]);
    // The first refusal read the secret again (unchanged: not resent); the second read
    // found the new one.
    assert_eq!(source.reads(), 3);
}

#[tokio::test]
async fn a_refused_credential_is_not_read_again_within_the_interval() {
    use crate::adapters::remote_write::secret::scripted::{Scripted, authorizer};
    let (rx, url) = Receiver::start(vec![reply(403), reply(403)]).await;
    let source = Arc::new(Scripted::default());
    source.set(Ok("bearer:old"));
    let secret = Authorizer::Secret(Box::new(authorizer(&source, Duration::from_secs(60))));
    let client = RemoteWriteClient::with_authorizer(&url, secret, fast_policy()).expect("client");
    source.set(Ok("bearer:new"));
    for _ in 0..2 {
        let err = client.write(&two_series()).await.expect_err("refused");
        assert!(format!("{err:?}").contains("403"), "{err:?}");
    }
    assert_eq!(rx.received().len(), 2, "no resend");
    assert_eq!(source.reads(), 1, "read once in the minute");
}

#[tokio::test]
async fn sigv4_signs_each_request_for_aps() {
    let (rx, url) = Receiver::start(vec![reply(503)]).await;
    let sdk = SdkConfig::builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST",
            "SECRETTEST",
            Some("SESSIONTEST".into()),
            None,
            "test",
        )))
        .build();
    let client =
        RemoteWriteClient::new(&url, &"sigv4".parse().unwrap(), &sdk, fast_policy()).unwrap();
    client.write(&two_series()).await.unwrap();

    let received = rx.received();
    assert_eq!(received.len(), 2);
    for got in &received {
        let authorization = got.header("authorization");
        let date = got.header("x-amz-date");
        assert!(
            authorization.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/eu-west-1/aps/aws4_request, SignedHeaders=",
                &date[..8]
            )),
            "{authorization}"
        );
        for signed in [
            "content-encoding",
            "content-type",
            "host",
            "x-amz-date",
            "x-prometheus-remote-write-version",
        ] {
            assert!(
                authorization.contains(signed),
                "{signed} not signed: {authorization}"
            );
        }
        assert_eq!(got.header("x-amz-security-token"), "SESSIONTEST");
        // Still a normal remote-write body.
        assert_eq!(got.decode().timeseries.len(), 2);
    }
}

#[test]
fn setup_errors_do_not_echo_the_url() {
    let err = RemoteWriteClient::new(
        "ftp://user:hunter2@example.com/",
        &RemoteWriteAuth::None,
        &no_aws(),
        RetryPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RemoteWriteSetupError::UnsupportedUrl));
    assert!(!err.to_string().contains("hunter2"));
    let err = RemoteWriteClient::new(
        "http://127.0.0.1/",
        &RemoteWriteAuth::SigV4 { region: None },
        &no_aws(),
        RetryPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RemoteWriteSetupError::Auth(_)));
}
