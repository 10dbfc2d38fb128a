//! The HTTP edge shared by the `ingest` and `api` functions: who is calling (the
//! tenant, from the JWT authorizer) and the one JSON error shape every route answers.

use lambda_http::http::{StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::ids::TenantId;

/// The tenant named by the JWT authorizer's `claim`, or `None` when the request
/// carries no such (valid) claim. The body is never consulted.
pub fn tenant_of(request: &Request, claim: &str) -> Option<TenantId> {
    let context = request.request_context_ref()?;
    let jwt = context.authorizer()?.jwt.as_ref()?;
    TenantId::parse(jwt.claims.get(claim)?).ok()
}

/// The error body every route answers with: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize)]
struct ErrorBody<'a, D: Serialize> {
    error: ErrorFields<'a, D>,
}

#[derive(Debug, Serialize)]
struct ErrorFields<'a, D: Serialize> {
    code: &'a str,
    message: &'a str,
    details: D,
}

/// A JSON response with `status` and `body`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(err) => {
            tracing::error!(error = %err, "response body failed to serialize");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"code":"internal","message":"internal error","details":null}}"#
                    .to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("static header value"),
    );
    response
}

/// An error response in the one JSON error shape. `message` is safe to show the
/// caller; internal detail belongs in the log, not here.
pub fn error_response<D: Serialize>(
    status: StatusCode,
    code: &str,
    message: &str,
    details: D,
) -> Response<Body> {
    json_response(
        status,
        &ErrorBody {
            error: ErrorFields {
                code,
                message,
                details,
            },
        },
    )
}

/// 401 for a request without a usable tenant claim (the authorizer should have
/// stopped it; answering instead of guessing keeps tenants apart).
pub fn missing_tenant(claim: &str) -> Response<Body> {
    error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &format!("the request carries no valid `{claim}` claim from the JWT authorizer"),
        serde_json::Value::Null,
    )
}
