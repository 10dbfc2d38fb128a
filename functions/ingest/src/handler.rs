//! Maps an API Gateway request to the ingest service and its answer to HTTP.

use chrono::Utc;
use lambda_http::http::header::{CONTENT_TYPE, RETRY_AFTER};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use modelwatch::edge::{error_response, json_response, missing_tenant, tenant_of};
use modelwatch::error::StoreError;
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
        if let Some(content_type) = request.headers().get(CONTENT_TYPE)
            && !is_json(content_type)
        {
            return Ok(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
                json!({"content_type": content_type.to_str().unwrap_or("(not text)")}),
            ));
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
                    archive_rejected = receipt.timestream.rejected.len(),
                    "batch accepted"
                );
                json_response(StatusCode::ACCEPTED, &receipt)
            }
            Err(err) => refusal(err),
        };
        Ok(answer)
    }
}

fn is_json(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    })
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
        IngestError::Store(err) => {
            tracing::error!(error = %err, source = ?std::error::Error::source(&err), "batch not stored");
            match err {
                StoreError::Unavailable { .. } => {
                    let mut response = error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "storage is temporarily unavailable; retry the same batch (it will count once)",
                        serde_json::Value::Null,
                    );
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    response
                }
                StoreError::Internal { .. } | StoreError::Corrupt { .. } => error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                    serde_json::Value::Null,
                ),
            }
        }
    }
}
