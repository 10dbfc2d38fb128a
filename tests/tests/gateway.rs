//! The local HTTP API over real HTTP (infra/gateway, started by `stack.sh up`): the
//! template's routes to the real functions, API Gateway's JWT authorizer and limits,
//! and the functions' own answers passed through unchanged.

use chrono::{DurationRound, TimeDelta, Utc};
use modelwatch_e2e::{Stack, unique_tenant};
use serde_json::{Value, json};

/// A token for `tenant` from the stack's key, valid `ttl` seconds.
fn token(stack: &Stack, tenant: &str, ttl: i64) -> String {
    stack.token("tenant_id", tenant, ttl)
}

/// Status, headers and JSON body of one HTTP call.
async fn call(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = stack
        .http()
        .request(method, format!("{}{path}", stack.var("API_URL")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn clients_speak_http_to_the_functions_through_the_authorizer() {
    let stack = Stack::get();
    let (tenant, other) = (unique_tenant("http"), unique_tenant("http-other"));
    let (token, other_token) = (token(stack, &tenant, 600), token(stack, &other, 600));
    let at = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .expect("minute")
        - TimeDelta::minutes(2);
    let batch = json!({"model_id": "m-http", "batch_id": "b-1", "task": "regression",
        "predictions": [{"timestamp": at.to_rfc3339(), "latency_ms": 8.0, "status": "ok",
                         "predicted": 1.0, "actual": 1.5}]});
    let post = |token: Option<String>, body: Vec<u8>| {
        let token = token.clone();
        async move {
            call(
                stack,
                reqwest::Method::POST,
                "/api/v1/monitoring/predictions",
                token.as_deref(),
                Some(body),
            )
            .await
        }
    };

    let (status, _, receipt) = post(Some(token.clone()), batch.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["accepted"], 1);
    let (status, _, again) = post(Some(token.clone()), batch.to_string().into_bytes()).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &json!(true)),
        "a retry counts once"
    );

    // The api function reads the tenant from the claims the authorizer passed.
    let (status, _, models) = call(
        stack,
        reqwest::Method::GET,
        "/api/v1/monitoring/models",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["models"][0]["model_id"], "m-http");
    let summary = "/api/v1/monitoring/performance/m-http?window=1h";
    let (status, _, body) = call(
        stack,
        reqwest::Method::GET,
        summary,
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(status, 404, "another tenant: {body}");
    assert_eq!(body["error"]["code"], "model_not_found");

    // API Gateway's answers: no token, a bad one, an expired one.
    let (status, _, body) = call(
        stack,
        reqwest::Method::GET,
        "/api/v1/monitoring/models",
        None,
        None,
    )
    .await;
    assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
    for bad in ["not.a.jwt".to_owned(), self::token(stack, &tenant, -60)] {
        let (status, headers, _) = call(
            stack,
            reqwest::Method::GET,
            "/api/v1/monitoring/models",
            Some(&bad),
            None,
        )
        .await;
        assert_eq!(status, 401);
        let challenge = headers["www-authenticate"].to_str().expect("ASCII");
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    let (status, _, body) = call(
        stack,
        reqwest::Method::GET,
        "/elsewhere",
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, body), (404, json!({"message": "Not Found"})));

    // The catch-all route: the api's own 404 and 405, in its error shape.
    let (status, _, body) = call(
        stack,
        reqwest::Method::GET,
        "/api/v1/monitoring/nothing",
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, _, body) = call(
        stack,
        reqwest::Method::DELETE,
        "/api/v1/monitoring/models",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed"))
    );

    // Over API Gateway's 10 MB: refused by the gateway before any function.
    let large = vec![b' '; 10 * 1024 * 1024 + 1];
    let (status, _, _) = post(Some(token), large).await;
    assert_eq!(status, 413);
}
