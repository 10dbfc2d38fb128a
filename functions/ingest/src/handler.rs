//! Maps an API Gateway request to the ingest service and its answer to HTTP:
//! `POST /api/v1/monitoring/actuals` takes a label batch, any other route this
//! function is given (`POST /api/v1/monitoring/predictions`) a prediction batch.

use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use modelwatch::edge::{
    error_response, json_response, missing_tenant, non_json_content_type, quota_exceeded,
    store_failure, tenant_of, unsupported_media_type,
};
use modelwatch::ingest::{BatchRejection, IngestError, IngestService};
use modelwatch::ports::{LabelStore, ModelRegistry, PartialStore, PredictionArchive};
use serde_json::json;
use tracing::Instrument;

/// The ingest function's dependencies, built once at cold start.
pub struct Ingest<R, P, A, L> {
    /// The ingest service.
    pub service: IngestService<R, P, A, L>,
    /// The JWT claim naming the tenant.
    pub tenant_claim: String,
}

/// The path of the label route.
const ACTUALS_PATH: &str = "/api/v1/monitoring/actuals";

impl<R, P, A, L> Ingest<R, P, A, L>
where
    R: ModelRegistry,
    P: PartialStore,
    A: PredictionArchive,
    L: LabelStore,
{
    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        if request.method() != Method::POST {
            return Ok(error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route allows POST",
                json!({"allowed": ["POST"]}),
            ));
        }
        let Some(tenant) = tenant_of(&request, &self.tenant_claim) else {
            return Ok(missing_tenant(&self.tenant_claim));
        };
        if let Some(content_type) = non_json_content_type(&request) {
            return Ok(unsupported_media_type(&content_type));
        }
        let (body, now) = (request.body().as_ref(), Utc::now());
        // Every log line of the request names its tenant (beside the runtime's
        // request id).
        let span = tracing::info_span!("request", tenant = %tenant);
        let answered = async {
            if request.uri().path().ends_with(ACTUALS_PATH) {
                let answered = self.service.ingest_actuals(&tenant, body, now).await;
                answered.map(|receipt| json_response(StatusCode::ACCEPTED, &receipt))
            } else {
                let answered = self.service.ingest(&tenant, body, now).await;
                answered.map(|receipt| json_response(StatusCode::ACCEPTED, &receipt))
            }
        }
        .instrument(span)
        .await;
        Ok(answered.unwrap_or_else(refusal))
    }
}

/// The HTTP answer to a batch that was not accepted.
fn refusal(err: IngestError) -> Response<Body> {
    match err {
        IngestError::Rejected(BatchRejection::TooLarge(problem)) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("{} {}", problem.field, problem.reason),
            json!({"problems": [problem]}),
        ),
        IngestError::Rejected(BatchRejection::Invalid {
            problems,
            truncated,
        }) => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "the batch was refused and nothing of it was stored; see details.problems",
            json!({"problems": problems, "truncated": truncated}),
        ),
        IngestError::TaskConflict(conflict) => error_response(
            StatusCode::CONFLICT,
            "task_conflict",
            &conflict.to_string(),
            serde_json::Value::Null,
        ),
        conflict @ IngestError::BatchConflict { .. } => error_response(
            StatusCode::CONFLICT,
            "batch_id_reused",
            &conflict.to_string(),
            serde_json::Value::Null,
        ),
        IngestError::OverQuota(over) => quota_exceeded(&over),
        IngestError::Store(err) => store_failure(
            &err,
            "batch not stored",
            "storage is temporarily unavailable; retry the same batch (it will count once)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::adapters::memory::{MemoryLabelStore, MemoryModelRegistry, MemoryPartialStore};
    use modelwatch::testing::{NoArchive, memory_ingest};
    use serde_json::Value;

    /// The real-format sample event, changed by `edit`.
    fn request(edit: impl FnOnce(&mut Value)) -> Request {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/ingest-batch.json")).expect("event");
        edit(&mut event);
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
    }

    fn ingest() -> Ingest<MemoryModelRegistry, MemoryPartialStore, NoArchive, MemoryLabelStore> {
        Ingest {
            service: memory_ingest(),
            tenant_claim: "tenant_id".into(),
        }
    }

    async fn call(request: Request) -> (StatusCode, Value) {
        let response = ingest().handle(request).await.expect("handler answers");
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
            other => panic!("unexpected body {other:?}"),
        };
        (response.status(), body)
    }

    #[tokio::test]
    async fn a_tenant_over_a_quota_gets_429_naming_it_with_retry_after() {
        use modelwatch::domain::{Quota, QuotaLimits};
        let one_of = |quota: Quota| QuotaLimits {
            predictions_per_minute: if quota == Quota::PredictionsPerMinute {
                1
            } else {
                1000
            },
            models_per_tenant: if quota == Quota::ModelsPerTenant {
                0
            } else {
                1000
            },
            ..QuotaLimits::default()
        };
        for (quota, most_seconds) in [
            (Quota::PredictionsPerMinute, 60),
            (Quota::ModelsPerTenant, 60),
        ] {
            let mut ingest = ingest();
            ingest.service.quotas = modelwatch::ingest::IngestQuotas::new(one_of(quota));
            let response = ingest
                .handle(request(|_| {}))
                .await
                .expect("handler answers");
            assert_eq!(
                response.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "{quota:?}"
            );
            let seconds: u64 = response.headers()["retry-after"]
                .to_str()
                .expect("ASCII")
                .parse()
                .expect("seconds");
            assert!((1..=most_seconds).contains(&seconds), "{seconds}");
            let Body::Text(text) = response.body() else {
                panic!("a JSON body");
            };
            let body: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(body["error"]["code"], "quota_exceeded");
            assert_eq!(body["error"]["details"]["quota"], quota.name());
            assert_eq!(body["error"]["details"]["limit"], one_of(quota).of(quota));
            assert_eq!(body["error"]["details"]["retry_after_seconds"], seconds);
        }
    }

    std::thread_local! {
        /// The log lines of the test thread, while it captures them.
        static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    }

    /// A log sink writing into the calling thread's [`CAPTURED`] buffer, if any.
    struct ThreadSink;

    impl std::io::Write for ThreadSink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with_borrow_mut(|captured| {
                if let Some(captured) = captured {
                    captured.extend_from_slice(bytes);
                }
            });
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_log_line_of_a_request_names_its_tenant() {
        // The functions' JSON format (`telemetry::init`) as the global subscriber, as in
        // a function: a thread-local one would race the other tests' threads for the
        // callsites' interest and could miss the request's span.
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_writer(|| ThreadSink)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        });
        CAPTURED.set(Some(Vec::new()));
        let (status, _) = call(request(|_| {})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let logged = String::from_utf8(CAPTURED.take().unwrap_or_default()).expect("UTF-8");
        let lines: Vec<Value> = logged
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        assert!(!lines.is_empty(), "the accepted batch is logged");
        for line in &lines {
            let spans = line["spans"]
                .as_array()
                .unwrap_or_else(|| panic!("no spans: {line}"));
            assert!(
                spans
                    .iter()
                    .any(|s| s["name"] == "request" && s["tenant"] == "tenant-demo"),
                "{line}"
            );
        }
    }

    #[tokio::test]
    async fn only_post_is_allowed() {
        let (status, body) = call(request(|e| {
            e["requestContext"]["http"]["method"] = "GET".into()
        }))
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["details"]["allowed"][0], "POST");
    }

    #[tokio::test]
    async fn a_request_without_the_tenant_claim_is_refused() {
        let (status, body) = call(request(|e| {
            e["requestContext"]["authorizer"]["jwt"]["claims"]
                .as_object_mut()
                .expect("claims")
                .remove("tenant_id");
        }))
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_by_content_type_is_refused() {
        let (status, body) = call(request(|e| {
            e["headers"]["content-type"] = "text/csv".into()
        }))
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["error"]["details"]["content_type"], "text/csv");
    }

    #[tokio::test]
    async fn the_actuals_route_takes_a_label_batch() {
        let service = ingest();
        let labels = |e: &mut Value| {
            e["rawPath"] = "/api/v1/monitoring/actuals".into();
            e["requestContext"]["http"]["path"] = "/api/v1/monitoring/actuals".into();
            e["body"] = serde_json::json!({"model_id": "fraud-v1", "batch_id": "labels-1",
                "actuals": [{"prediction_id": "p-1", "actual": 1}]})
            .to_string()
            .into();
        };
        let response = service.handle(request(labels)).await.expect("answer");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let Body::Text(text) = response.body() else {
            panic!("text body")
        };
        let body: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(body["pending"]["sample"][0], "p-1");
        assert_eq!(body["accepted"], 1);
        let (status, body) = call(request(|e| {
            labels(e);
            e["body"] = r#"{"model_id": "m", "batch_id": "b", "actuals": [{"actual": 1}]}"#.into();
        }))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"]["details"]["problems"][0]["field"],
            "actuals[0].prediction_id"
        );
    }

    #[tokio::test]
    async fn an_invalid_batch_lists_its_problems() {
        let (status, body) = call(request(|e| e["body"] = r#"{"model_id":"m"}"#.into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_batch");
        let fields: Vec<&str> = body["error"]["details"]["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["field"].as_str())
            .collect();
        assert_eq!(fields, ["batch_id", "task", "predictions"]);
        assert_eq!(body["error"]["details"]["truncated"], false);
    }
}
