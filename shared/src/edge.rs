//! The HTTP edge shared by the `ingest` and `api` functions: who is calling (the
//! tenant, from the JWT authorizer), the one JSON error shape every route answers,
//! the JSON content-type check of request bodies, the answer to a request over a quota
//! and the answer to a failed store.

use lambda_http::http::header::{CONTENT_TYPE, RETRY_AFTER};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::domain::OverQuota;
use crate::domain::ids::TenantId;
use crate::error::StoreError;

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

/// Whether a `Content-Type` names JSON: `application/json`, any case, any parameters.
pub fn is_json(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    })
}

/// The `Content-Type` of a request whose body is declared as something other than
/// JSON (`"(not text)"` when the header is not text); `None` when it is JSON or not
/// declared (a body without `Content-Type` is read as JSON).
pub fn non_json_content_type(request: &Request) -> Option<String> {
    let content_type = request.headers().get(CONTENT_TYPE)?;
    (!is_json(content_type)).then(|| content_type.to_str().unwrap_or("(not text)").to_owned())
}

/// 415 for a body declared as `content_type`, which is not JSON.
pub fn unsupported_media_type(content_type: &str) -> Response<Body> {
    error_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be application/json",
        serde_json::json!({ "content_type": content_type }),
    )
}

/// `response` with `Retry-After: seconds`.
pub fn retry_after(mut response: Response<Body>, seconds: u64) -> Response<Body> {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 429 `quota_exceeded` for a request over one of its tenant's quotas: the details
/// name the quota, its limit and what was requested, and `Retry-After` says when to
/// try again.
pub fn quota_exceeded(over: &OverQuota) -> Response<Body> {
    let response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        &over.to_string(),
        serde_json::json!({
            "quota": over.quota.name(),
            "limit": over.limit,
            "requested": over.requested,
            "retry_after_seconds": over.retry_after_seconds,
        }),
    );
    retry_after(response, over.retry_after_seconds)
}

/// The answer to a failed store. The error and its source chain go to the log under
/// `what`; the caller gets no internal detail: 503 with `Retry-After` and
/// `retry_message` when the store is unavailable (retrying helps), 500 otherwise.
pub fn store_failure(err: &StoreError, what: &str, retry_message: &str) -> Response<Body> {
    tracing::error!(error = %err, source = ?std::error::Error::source(err), "{what}");
    match err {
        StoreError::Unavailable { .. } => {
            let response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                retry_message,
                serde_json::Value::Null,
            );
            retry_after(response, 1)
        }
        StoreError::Internal { .. } | StoreError::Corrupt { .. } => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            serde_json::Value::Null,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Body>) -> serde_json::Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).expect("JSON"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
        ] {
            assert!(is_json(&HeaderValue::from_static(json)), "{json}");
        }
        for other in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!is_json(&HeaderValue::from_static(other)), "{other}");
        }
    }

    #[test]
    fn store_failures_hide_their_detail() {
        let source = || -> crate::error::BoxError { "table modelwatch-secret-name: boom".into() };
        let unavailable = store_failure(
            &StoreError::Unavailable {
                operation: "read",
                source: source(),
            },
            "reading failed",
            "retry later",
        );
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[RETRY_AFTER], "1");
        assert_eq!(body(&unavailable)["error"]["message"], "retry later");
        let internal = store_failure(
            &StoreError::Internal {
                operation: "read",
                source: source(),
            },
            "reading failed",
            "retry later",
        );
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        for response in [&unavailable, &internal] {
            let text = body(response).to_string();
            assert!(!text.contains("secret") && !text.contains("boom"), "{text}");
        }
    }
}
