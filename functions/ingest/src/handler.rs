//! Maps an API Gateway request to the ingest service and its answer to HTTP.

use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use modelwatch::edge::{
    error_response, json_response, missing_tenant, non_json_content_type, store_failure, tenant_of,
    unsupported_media_type,
};
use modelwatch::ingest::{BatchRejection, IngestError, IngestService};
use modelwatch::ports::{ModelRegistry, PartialStore, PredictionArchive};
use serde_json::json;

/// The ingest function's dependencies, built once at cold start.
pub struct Ingest<R, P, A> {
    /// The ingest service.
    pub service: IngestService<R, P, A>,
    /// The JWT claim naming the tenant.
    pub tenant_claim: String,
}

impl<R, P, A> Ingest<R, P, A>
where
    R: ModelRegistry,
    P: PartialStore,
    A: PredictionArchive,
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
        let answer = match self
            .service
            .ingest(&tenant, request.body().as_ref(), Utc::now())
            .await
        {
            Ok(receipt) => {
                tracing::info!(
                    %tenant,
                    batch_id = %receipt.batch_id,
                    accepted = receipt.accepted,
                    duplicate = receipt.duplicate,
                    archive_rejected = receipt.timestream.rejected_count,
                    "batch accepted"
                );
                json_response(StatusCode::ACCEPTED, &receipt)
            }
            Err(err) => refusal(err),
        };
        Ok(answer)
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
    use modelwatch::adapters::memory::{MemoryModelRegistry, MemoryPartialStore};
    use modelwatch::testing::{NoArchive, memory_ingest};
    use serde_json::Value;

    /// The real-format sample event, changed by `edit`.
    fn request(edit: impl FnOnce(&mut Value)) -> Request {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/ingest-batch.json")).expect("event");
        edit(&mut event);
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
    }

    fn ingest() -> Ingest<MemoryModelRegistry, MemoryPartialStore, NoArchive> {
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
