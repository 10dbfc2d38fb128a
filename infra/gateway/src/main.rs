//! The local stack's HTTP API (`infra/local/stack.sh up` starts it): what API Gateway
//! does in front of the functions in AWS, so that clients, `curl` and the contract
//! tests speak real HTTP to a local modelwatch.
//!
//! - the routes of the template's `HttpApi` events ([`routes`]: one source);
//! - the JWT authorizer ([`authorizer`]): RS256 against the stack's JWKS, issuer,
//!   audience, `nbf`/`exp`; `401 {"message":"Unauthorized"}` as API Gateway answers;
//! - each request handed to its function through the Lambda emulator's Invoke API as a
//!   payload 2.0 event ([`event`]), the function's answer returned as HTTP;
//! - API Gateway's limits: a body over 10 MB is `413`, a function that takes more than
//!   30 s is `504`, and a function that fails is `500`.
//!
//! ```text
//! modelwatch-gateway serve --template template.yaml --lambda-endpoint http://127.0.0.1:9001 \
//!     --jwks jwks.json --issuer https://modelwatch.local --audience modelwatch [--listen 127.0.0.1:3000]
//! modelwatch-gateway token --key key.pem --kid local --issuer … --audience … --tenant acme
//! ```

mod authorizer;
mod event;
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::authorizer::{Authorizer, TokenClaims, Unauthorized};
use crate::event::{Incoming, Routing};
use crate::routes::{Route, route_of, template_routes};

/// API Gateway's largest request body (HTTP API): 10 MB.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// API Gateway's integration timeout (HTTP API): 30 s.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

struct Gateway {
    routes: Vec<Route>,
    authorizer: Authorizer,
    lambda_endpoint: String,
    http: reqwest::Client,
    requests: AtomicU64,
}

impl Gateway {
    /// A gateway for `template`'s routes, checking tokens against `jwks` for
    /// `issuer`/`audience`, invoking functions at `lambda_endpoint` for at most
    /// `timeout`.
    fn new(
        template: &str,
        jwks: &str,
        issuer: &str,
        audience: &str,
        lambda_endpoint: &str,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        Ok(Self {
            routes: template_routes(template)?,
            authorizer: Authorizer::new(jwks, issuer, audience)?,
            lambda_endpoint: lambda_endpoint.trim_end_matches('/').to_owned(),
            http: modelwatch::tls::reqwest_client().timeout(timeout).build()?,
            requests: AtomicU64::new(0),
        })
    }

    /// Serves on `listener` until the process ends.
    async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::new(self));
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// `--name value` options of the command line.
fn options(args: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut options = BTreeMap::new();
    let mut rest = args.iter();
    while let Some(name) = rest.next() {
        let name = name
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {name:?}"))?;
        let value = rest
            .next()
            .ok_or_else(|| format!("--{name} needs a value"))?;
        options.insert(name.to_owned(), value.clone());
    }
    Ok(options)
}

fn required<'a>(options: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, Failure> {
    options
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("--{name} is required").into())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .ok_or("usage: modelwatch-gateway serve|token --option value …")?;
    let options = options(rest)?;
    match command.as_str() {
        "serve" => serve(&options).await,
        "token" => {
            let key = std::fs::read(required(&options, "key")?)?;
            let ttl = options.get("ttl-seconds").map_or(Ok(3600), |v| v.parse())?;
            let token = authorizer::token(
                &key,
                options.get("kid").map_or("local", String::as_str),
                &TokenClaims {
                    issuer: required(&options, "issuer")?,
                    audience: required(&options, "audience")?,
                    claim: options.get("claim").map_or("tenant_id", String::as_str),
                    tenant: required(&options, "tenant")?,
                    now: chrono::Utc::now().timestamp(),
                    ttl_seconds: ttl,
                },
            )?;
            println!("{token}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?} (serve or token)").into()),
    }
}

async fn serve(options: &BTreeMap<String, String>) -> Result<(), Failure> {
    let gateway = Gateway::new(
        &std::fs::read_to_string(required(options, "template")?)?,
        &std::fs::read_to_string(required(options, "jwks")?)?,
        required(options, "issuer")?,
        required(options, "audience")?,
        required(options, "lambda-endpoint")?,
        INTEGRATION_TIMEOUT,
    )?;
    let listen: SocketAddr = options
        .get("listen")
        .map_or("127.0.0.1:3000", String::as_str)
        .parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("modelwatch-gateway: serving the HTTP API on http://{listen}");
    gateway.serve(listener).await?;
    Ok(())
}

/// API Gateway's own error body.
fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let path = parts.uri.path();
    let method = parts.method.as_str();
    let Some(matched) = route_of(&gateway.routes, method, path) else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let claims = match gateway
        .authorizer
        .claims(headers.get("authorization").map(String::as_str))
    {
        Ok(claims) => claims,
        Err(refused) => return unauthorized(&refused),
    };
    let request_id = format!(
        "local-{}",
        gateway.requests.fetch_add(1, Ordering::Relaxed) + 1
    );
    let route_key = matched.route.key();
    let incoming = Incoming {
        method,
        path,
        query: parts.uri.query().unwrap_or_default(),
        headers,
        body: &body,
        source_ip: peer.ip().to_string(),
    };
    let routing = Routing {
        route_key: &route_key,
        path_parameters: &matched.parameters,
        claims: &claims,
        request_id: &request_id,
        now: chrono::Utc::now(),
    };
    invoke(
        &gateway,
        &matched.route.function,
        &event::event(&incoming, &routing),
    )
    .await
}

/// 401 as API Gateway's JWT authorizer answers it.
fn unauthorized(refused: &Unauthorized) -> Response {
    let mut response = gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    if let Unauthorized::Invalid(reason) = refused {
        let challenge = format!(
            "Bearer scope=\"\" error=\"invalid_token\" error_description=\"{}\"",
            reason.replace('"', "'")
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
    }
    response
}

/// Invokes `function` with `event` and answers its result as HTTP.
async fn invoke(gateway: &Gateway, function: &str, event: &serde_json::Value) -> Response {
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        gateway.lambda_endpoint
    );
    let sent = gateway.http.post(&url).json(event).send().await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(err) if err.is_timeout() => {
            return gateway_error(StatusCode::GATEWAY_TIMEOUT, "Service Unavailable");
        }
        Err(_) => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let failed =
        reply.headers().contains_key("x-amz-function-error") || !reply.status().is_success();
    let Ok(result) = reply.json::<serde_json::Value>().await else {
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if failed {
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let answer = event::answer(&result);
    let mut response = Response::new(Body::from(Bytes::from(answer.body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::tests::{JWKS, PRIVATE_PEM};

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    /// A gateway on a free port in front of `lambda` (a fake Invoke API), with
    /// `timeout`; its URL.
    async fn gateway(lambda: axum::Router, timeout: Duration) -> String {
        let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let lambda_url = format!("http://{}", lambda_listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(lambda_listener, lambda).await });
        let gateway = Gateway::new(
            TEMPLATE,
            JWKS,
            "https://modelwatch.local",
            "modelwatch",
            &lambda_url,
            timeout,
        )
        .expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(gateway.serve(listener));
        url
    }

    fn token() -> String {
        let claims = TokenClaims {
            issuer: "https://modelwatch.local",
            audience: "modelwatch",
            claim: "tenant_id",
            tenant: "acme",
            now: chrono::Utc::now().timestamp(),
            ttl_seconds: 600,
        };
        authorizer::token(PRIVATE_PEM.as_bytes(), "test", &claims).expect("token")
    }

    async fn get(url: &str) -> reqwest::Response {
        modelwatch::tls::reqwest_client()
            .build()
            .expect("HTTP client builds")
            .get(format!("{url}/api/v1/monitoring/models"))
            .bearer_auth(token())
            .send()
            .await
            .expect("an answer")
    }

    #[tokio::test]
    async fn a_function_slower_than_the_integration_timeout_is_504_and_a_failed_one_500() {
        let slow = axum::Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        });
        let url = gateway(slow, Duration::from_millis(300)).await;
        let answer = get(&url).await;
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);

        let failing = axum::Router::new().fallback(|| async {
            (
                [("x-amz-function-error", "Unhandled")],
                r#"{"errorMessage": "panic"}"#,
            )
        });
        let url = gateway(failing, Duration::from_secs(5)).await;
        let answer = get(&url).await;
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            answer.text().await.expect("body"),
            r#"{"message":"Internal Server Error"}"#
        );
    }

    #[tokio::test]
    async fn the_event_reaches_the_routed_function_and_its_answer_the_client() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let lambda = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded
                    .lock()
                    .expect("lock")
                    .push((uri.path().to_owned(), body));
                r#"{"statusCode": 418, "headers": {"x-answer": "teapot"}, "body": "{\"ok\":true}"}"#
            }
        });
        let url = gateway(lambda, Duration::from_secs(5)).await;
        let answer = get(&url).await;
        assert_eq!(answer.status().as_u16(), 418);
        assert_eq!(answer.headers()["x-answer"], "teapot");
        let seen = seen.lock().expect("lock").clone();
        let (path, event) = &seen[0];
        assert_eq!(path, "/2015-03-31/functions/api/invocations");
        let event: serde_json::Value = serde_json::from_str(event).expect("JSON event");
        assert_eq!(event["routeKey"], "GET /api/v1/monitoring/models");
        assert_eq!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"],
            "acme"
        );
    }
}
