//! Routes an API Gateway request to the domain and maps the answer to HTTP.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use modelwatch::edge::{error_response, json_response, missing_tenant, tenant_of};
use modelwatch::ports::{ModelRegistry, RegisteredModel};
use serde::Serialize;

/// The API's dependencies, built once at cold start.
pub struct Api<R> {
    /// The model registry.
    pub registry: R,
    /// The JWT claim naming the tenant.
    pub tenant_claim: String,
}

#[derive(Serialize)]
struct ModelList {
    models: Vec<RegisteredModel>,
}

impl<R: ModelRegistry> Api<R> {
    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        let Some(tenant) = tenant_of(&request, &self.tenant_claim) else {
            return Ok(missing_tenant(&self.tenant_claim));
        };
        let path = request.uri().path().trim_end_matches('/');
        Ok(match (request.method(), path) {
            (&Method::GET, "/api/v1/monitoring/models") => {
                match self.registry.list_models(&tenant).await {
                    Ok(models) => json_response(StatusCode::OK, &ModelList { models }),
                    Err(err) => {
                        tracing::error!(error = %err, source = ?std::error::Error::source(&err), "listing models failed");
                        error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "the model registry is temporarily unavailable; retry later",
                            serde_json::Value::Null,
                        )
                    }
                }
            }
            (_, "/api/v1/monitoring/models") => error_response(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use modelwatch::adapters::memory::MemoryModelRegistry;
    use modelwatch::domain::Task;
    use modelwatch::ids::{ModelId, TenantId};

    fn request(method: &str, path: &str, tenant: Option<&str>) -> Request {
        let claims = tenant.map_or(
            serde_json::json!({}),
            |t| serde_json::json!({"tenant_id": t}),
        );
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
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

    fn api_with(models: &[(&str, &str)]) -> Api<MemoryModelRegistry> {
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
            tenant_claim: "tenant_id".into(),
        }
    }

    async fn call(api: &Api<MemoryModelRegistry>, req: Request) -> (StatusCode, serde_json::Value) {
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
}
