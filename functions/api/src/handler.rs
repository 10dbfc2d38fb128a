//! Routes an API Gateway request to the domain and maps the answer to HTTP.

use chrono::{TimeDelta, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use modelwatch::edge::{error_response, json_response, missing_tenant, tenant_of};
use modelwatch::error::StoreError;
use modelwatch::ids::{ModelId, TenantId};
use modelwatch::ports::{ModelRegistry, ModelSettingsStore, RegisteredModel, RollupStore};
use modelwatch::summary::{SummaryError, SummaryQuery, SummaryService, WindowReader};
use serde::Serialize;

/// The models route.
const MODELS_PATH: &str = "/api/v1/monitoring/models";
/// The prefix of the performance summary route, followed by the model id.
const PERFORMANCE_PREFIX: &str = "/api/v1/monitoring/performance/";

/// The API's dependencies, built once at cold start.
pub struct Api<R, S, M> {
    /// The model registry.
    pub registry: R,
    /// The rollups.
    pub rollups: S,
    /// How long minute rollups are kept after their start.
    pub minute_retention: TimeDelta,
    /// Baselines, rules and trends.
    pub settings: M,
    /// The JWT claim naming the tenant.
    pub tenant_claim: String,
}

#[derive(Serialize)]
struct ModelList {
    models: Vec<RegisteredModel>,
}

impl<R: ModelRegistry, S: RollupStore, M: ModelSettingsStore> Api<R, S, M> {
    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        let Some(tenant) = tenant_of(&request, &self.tenant_claim) else {
            return Ok(missing_tenant(&self.tenant_claim));
        };
        let path = request.uri().path().trim_end_matches('/');
        let summary_of = path
            .strip_prefix(PERFORMANCE_PREFIX)
            .filter(|rest| !rest.is_empty() && !rest.contains('/'));
        Ok(match (request.method(), path, summary_of) {
            (&Method::GET, MODELS_PATH, _) => match self.registry.list_models(&tenant).await {
                Ok(models) => json_response(StatusCode::OK, &ModelList { models }),
                Err(err) => store_failure(&err, "listing models failed"),
            },
            (&Method::GET, _, Some(model)) => self.summary(&request, &tenant, model).await,
            (_, MODELS_PATH, _) | (_, _, Some(_)) => error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route allows GET",
                serde_json::json!({"allowed": ["GET"]}),
            ),
            _ => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
                serde_json::json!({"path": path}),
            ),
        })
    }

    /// `GET /api/v1/monitoring/performance/{model_id}`.
    async fn summary(&self, request: &Request, tenant: &TenantId, model: &str) -> Response<Body> {
        let params = request.query_string_parameters();
        let query = match SummaryQuery::parse(params.iter()) {
            Ok(query) => query,
            Err(invalid) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    &invalid.to_string(),
                    &invalid,
                );
            }
        };
        let service = SummaryService {
            registry: &self.registry,
            window: WindowReader {
                rollups: &self.rollups,
                minute_retention: self.minute_retention,
            },
            settings: &self.settings,
        };
        // An id that cannot be stored names no model.
        let answer = match ModelId::parse(model) {
            Ok(model_id) => service.summary(tenant, &model_id, query, Utc::now()).await,
            Err(_) => Err(SummaryError::UnknownModel),
        };
        match answer {
            Ok(summary) => json_response(StatusCode::OK, &summary),
            Err(SummaryError::UnknownModel) => error_response(
                StatusCode::NOT_FOUND,
                "model_not_found",
                "no such model",
                serde_json::json!({"model_id": model}),
            ),
            Err(SummaryError::Store(err)) => store_failure(&err, "performance summary failed"),
        }
    }
}

/// 503 for a failed store: the error and its source go to the log, not the caller.
fn store_failure(err: &StoreError, what: &str) -> Response<Body> {
    tracing::error!(error = %err, source = ?std::error::Error::source(err), "{what}");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the monitoring store is temporarily unavailable; retry later",
        serde_json::Value::Null,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use modelwatch::adapters::memory::{
        MemoryModelRegistry, MemoryModelSettings, MemoryRollupStore,
    };
    use modelwatch::domain::Task;

    fn request(method: &str, path: &str, tenant: Option<&str>) -> Request {
        request_with_query(method, path, &[], tenant)
    }

    fn request_with_query(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        tenant: Option<&str>,
    ) -> Request {
        let claims = tenant.map_or(
            serde_json::json!({}),
            |t| serde_json::json!({"tenant_id": t}),
        );
        let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params: serde_json::Map<String, serde_json::Value> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path,
            "rawQueryString": raw_query.join("&"), "queryStringParameters": params,
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
                "domainPrefix": "example", "requestId": "r", "routeKey": "$default",
                "stage": "$default", "time": "28/Nov/2026:10:15:00 +0000", "timeEpoch": 1764324900000_i64,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            }
        });
        lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway v2 event")
    }

    type MemoryApi = Api<MemoryModelRegistry, MemoryRollupStore, MemoryModelSettings>;

    fn api_with(models: &[(&str, &str)]) -> MemoryApi {
        let registry = MemoryModelRegistry::default();
        let seen = DateTime::from_timestamp_millis(1_764_324_899_120).expect("time");
        for (tenant, model) in models {
            registry.insert(RegisteredModel {
                tenant: TenantId::parse(tenant).expect("tenant"),
                model_id: ModelId::parse(model).expect("model"),
                task: Task::Regression,
                first_seen: seen,
                last_seen: seen,
                latest_version: None,
            });
        }
        Api {
            registry,
            rollups: MemoryRollupStore::default(),
            minute_retention: TimeDelta::days(8),
            settings: MemoryModelSettings::default(),
            tenant_claim: "tenant_id".into(),
        }
    }

    async fn call(api: &MemoryApi, req: Request) -> (StatusCode, serde_json::Value) {
        let response = api.handle(req).await.expect("handler answers");
        let body = match response.body() {
            Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
            other => panic!("unexpected body {other:?}"),
        };
        (response.status(), body)
    }

    #[tokio::test]
    async fn lists_only_the_callers_models() {
        let api = api_with(&[("a", "m1"), ("a", "m2"), ("b", "m3")]);
        let (status, body) =
            call(&api, request("GET", "/api/v1/monitoring/models", Some("a"))).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = body["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["model_id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["m1", "m2"]);
    }

    #[tokio::test]
    async fn errors_use_the_one_json_shape() {
        let api = api_with(&[]);
        let (status, body) = call(&api, request("GET", "/api/v1/monitoring/models", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, body) = call(
            &api,
            request("DELETE", "/api/v1/monitoring/models", Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["details"]["allowed"][0], "GET");
        let (status, body) = call(&api, request("GET", "/api/v1/nothing", Some("a"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }

    const SUMMARY: &str = "/api/v1/monitoring/performance/m1";

    #[tokio::test]
    async fn invalid_summary_parameters_are_400_naming_the_allowed_values() {
        let api = api_with(&[("a", "m1")]);
        /// The query, the parameter the answer must name, and its allowed values.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
        let cases: [Case; 4] = [
            (
                &[("window", "2h")],
                "window",
                &["1h", "6h", "24h", "7d", "30d"],
            ),
            (
                &[("granularity", "week")],
                "granularity",
                &["minute", "hour", "day"],
            ),
            (
                &[("window", "7d"), ("granularity", "minute")],
                "granularity",
                &["hour", "day"],
            ),
            (
                &[("window", "1h"), ("limit", "5")],
                "limit",
                &["window", "granularity"],
            ),
        ];
        for (query, parameter, allowed) in cases {
            let (status, body) =
                call(&api, request_with_query("GET", SUMMARY, query, Some("a"))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
            assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
            assert_eq!(body["error"]["details"]["parameter"], parameter, "{body}");
            assert_eq!(
                body["error"]["details"]["allowed"],
                serde_json::json!(allowed),
                "{body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(parameter)),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn another_tenants_model_is_404_like_a_missing_one() {
        let api = api_with(&[("a", "m1")]);
        for (tenant, path) in [
            ("b", SUMMARY),
            ("a", "/api/v1/monitoring/performance/missing"),
            ("a", "/api/v1/monitoring/performance/bad%23id"),
        ] {
            let (status, body) = call(&api, request("GET", path, Some(tenant))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{tenant} {path}: {body}");
            assert_eq!(body["error"]["code"], "model_not_found", "{body}");
        }
        let (status, _) = call(&api, request("POST", SUMMARY, Some("a"))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn a_summary_has_the_spec_shape() {
        let api = api_with(&[("a", "m1")]);
        let (status, body) = call(
            &api,
            request_with_query("GET", SUMMARY, &[("window", "6h")], Some("a")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Key sets: the field order of a JSON object carries no meaning.
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            keys.sort();
            keys
        };
        let sorted = |names: &[&str]| -> Vec<String> {
            let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            names.sort();
            names
        };
        assert_eq!(
            keys(&body),
            sorted(&[
                "model_id",
                "window",
                "granularity",
                "quality_metrics",
                "serving_metrics",
                "resource_metrics",
                "sample_count",
                "labeled_count",
                "series"
            ])
        );
        assert_eq!(body["model_id"], "m1");
        assert_eq!(body["window"], "6h");
        assert_eq!(body["granularity"], "minute");
        assert_eq!(
            keys(&body["quality_metrics"]),
            sorted(&["rmse", "mae", "mape"])
        );
        assert_eq!(
            body["quality_metrics"]["rmse"],
            serde_json::json!({"current": null, "baseline": null, "trend": null})
        );
        assert_eq!(
            keys(&body["serving_metrics"]),
            sorted(&[
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
                "throughput_rps",
                "error_rate",
                "queue_depth"
            ])
        );
        assert_eq!(
            keys(&body["resource_metrics"]),
            sorted(&[
                "cpu_utilization",
                "memory_utilization",
                "gpu_utilization",
                "model_cache_hit_rate"
            ])
        );
        assert_eq!(body["sample_count"], 0);
        let series = body["series"].as_array().expect("series");
        assert!((360..=361).contains(&series.len()), "{}", series.len());
        let point = &series[0];
        assert!(
            point["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with(":00Z")),
            "{point}"
        );
        assert_eq!(point["rmse"], serde_json::Value::Null);
        assert_eq!(point["sample_count"], 0);
        assert_eq!(keys(point).len(), 16, "{point}");
    }
}
