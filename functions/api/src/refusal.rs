//! Why a request is not answered with its resource, and the response for each
//! reason, all in the one JSON error shape (`modelwatch::edge::error_response`).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Response};
use modelwatch::domain::OverQuota;
use modelwatch::domain::alerting::Problems;
use modelwatch::edge::{
    error_response, missing_tenant, quota_exceeded, store_failure, unsupported_media_type,
};
use modelwatch::error::StoreError;
use modelwatch::query::InvalidParameter;
use serde_json::json;

/// A request the API refuses, or could not answer.
#[derive(Debug)]
pub enum Refusal {
    /// 401: no tenant claim from the authorizer (the claim's name).
    NoTenant(String),
    /// 404: no route has this path.
    NoRoute(String),
    /// 405: the route does not answer this method.
    Method(&'static [Method]),
    /// 400: a query parameter is unknown, repeated or invalid.
    Parameter(InvalidParameter),
    /// 404: the tenant has no such model (also when another tenant has one).
    UnknownModel(String),
    /// 415: the body is declared as something other than JSON (its content type).
    MediaType(String),
    /// 413: the body is larger than the limit (its size and the limit, bytes).
    TooLarge {
        /// The body's size.
        size: usize,
        /// The largest accepted.
        limit: usize,
    },
    /// 400: the body is not JSON, or not a valid document for the route.
    Body(Problems),
    /// 429: the body is over one of the tenant's quotas; nothing was stored.
    OverQuota(OverQuota),
    /// 5xx: a store failed (logged; no detail reaches the caller).
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<InvalidParameter> for Refusal {
    fn from(invalid: InvalidParameter) -> Self {
        Self::Parameter(invalid)
    }
}

impl Refusal {
    /// The HTTP answer.
    pub fn into_response(self) -> Response<Body> {
        match self {
            Self::NoTenant(claim) => missing_tenant(&claim),
            Self::NoRoute(path) => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
                json!({"path": path}),
            ),
            Self::Method(allowed) => {
                let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("this route allows {}", allowed.join(", ")),
                    json!({"allowed": allowed}),
                )
            }
            Self::Parameter(invalid) => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &invalid.to_string(),
                &invalid,
            ),
            Self::UnknownModel(model_id) => error_response(
                StatusCode::NOT_FOUND,
                "model_not_found",
                "no such model",
                json!({"model_id": model_id}),
            ),
            Self::MediaType(content_type) => unsupported_media_type(&content_type),
            Self::TooLarge { size, limit } => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body is {size} bytes; the limit is {limit} bytes"),
                json!({"size": size, "limit": limit}),
            ),
            Self::Body(problems) => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body was refused and nothing was stored; see details.problems",
                json!({"problems": problems}),
            ),
            Self::OverQuota(over) => quota_exceeded(&over),
            Self::Store(err) => store_failure(
                &err,
                "answering a request failed",
                "the monitoring store is temporarily unavailable; retry later",
            ),
        }
    }
}
