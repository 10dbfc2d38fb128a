//! API Gateway's HTTP API payload format 2.0, both ways: the event a function is
//! invoked with, and the HTTP answer made of what it returns.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// What the gateway knows of one request.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    /// The method.
    pub method: &'a str,
    /// The path, as sent.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// Headers, names lower-cased; repeated ones joined with `,`.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: &'a [u8],
    /// The caller's address.
    pub source_ip: String,
}

/// The route key, the path parameters and the authorizer's claims.
#[derive(Debug, Clone)]
pub struct Routing<'a> {
    /// e.g. `POST /api/v1/monitoring/predictions`.
    pub route_key: &'a str,
    /// `{name}` → value.
    pub path_parameters: &'a BTreeMap<String, String>,
    /// The JWT's claims, as strings.
    pub claims: &'a BTreeMap<String, String>,
    /// The request id (`requestContext.requestId`).
    pub request_id: &'a str,
    /// The time of the request.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Whether a body of `content_type` travels as text (else base64, as API Gateway does).
fn is_text(content_type: Option<&String>) -> bool {
    content_type.is_none_or(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/")
            || t.contains("json")
            || t.contains("xml")
            || t.contains("x-www-form-urlencoded")
    })
}

/// The payload 2.0 event of `request` routed as `routing`.
pub fn event(request: &Incoming<'_>, routing: &Routing<'_>) -> Value {
    let mut query = Map::new();
    for (name, value) in url_pairs(request.query) {
        match query.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(name, Value::String(value));
            }
        }
    }
    let text = is_text(request.headers.get("content-type"));
    let body = if request.body.is_empty() {
        Value::Null
    } else if text {
        Value::String(String::from_utf8_lossy(request.body).into_owned())
    } else {
        Value::String(STANDARD.encode(request.body))
    };
    json!({
        "version": "2.0",
        "routeKey": routing.route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": request.headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "pathParameters": if routing.path_parameters.is_empty() { Value::Null } else { json!(routing.path_parameters) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.headers.get("host").cloned().unwrap_or_default(),
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": routing.request_id,
            "routeKey": routing.route_key,
            "stage": "$default",
            "time": routing.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": routing.now.timestamp_millis(),
            "authorizer": { "jwt": { "claims": routing.claims, "scopes": Value::Null } },
        },
        "body": body,
        "isBase64Encoded": !request.body.is_empty() && !text,
    })
}

/// The name/value pairs of a query string, percent-decoded.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Percent-decoding (`+` is a space, as in forms); a `%` not followed by two hex
/// digits stays as it is.
fn decode(text: &str) -> String {
    let hex = |byte: u8| {
        char::from(byte)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A function's answer as an HTTP response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The answer of a function's result: a payload 2.0 response object (`statusCode`,
/// `headers`, `body`, `isBase64Encoded`), or — as API Gateway does for anything else
/// — a 200 with the result as JSON.
pub fn answer(result: &Value) -> Answer {
    let Some(status) = result.get("statusCode").and_then(Value::as_u64) else {
        return Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: result.to_string().into_bytes(),
        };
    };
    let headers = result["headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let text = result["body"].as_str().unwrap_or_default();
    let body = if result["isBase64Encoded"].as_bool() == Some(true) {
        STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    Answer {
        status: u16::try_from(status).unwrap_or(502),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_what_api_gateway_passes() {
        let headers = BTreeMap::from([
            ("content-type".to_owned(), "application/json".to_owned()),
            ("host".to_owned(), "127.0.0.1:3000".to_owned()),
        ]);
        let request = Incoming {
            method: "GET",
            path: "/api/v1/monitoring/performance/m-1",
            query: "window=1h&granularity=minute&x=a%2Cb&x=c",
            headers,
            body: b"",
            source_ip: "127.0.0.1".into(),
        };
        let parameters = BTreeMap::from([("model_id".to_owned(), "m-1".to_owned())]);
        let claims = BTreeMap::from([("tenant_id".to_owned(), "acme".to_owned())]);
        let routing = Routing {
            route_key: "GET /api/v1/monitoring/performance/{model_id}",
            path_parameters: &parameters,
            claims: &claims,
            request_id: "r-1",
            now: chrono::Utc::now(),
        };
        let event = event(&request, &routing);
        assert_eq!(event["queryStringParameters"]["window"], "1h");
        assert_eq!(
            event["queryStringParameters"]["x"], "a,b,c",
            "repeated: joined with commas"
        );
        assert_eq!(event["pathParameters"]["model_id"], "m-1");
        assert_eq!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"],
            "acme"
        );
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert_eq!(event["body"], Value::Null);
        let binary = Incoming {
            body: &[0, 159, 146, 150],
            headers: BTreeMap::from([(
                "content-type".to_owned(),
                "application/octet-stream".to_owned(),
            )]),
            ..request
        };
        let event = super::event(&binary, &routing);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AJ+Slg==");
    }

    #[test]
    fn a_function_result_becomes_the_http_answer() {
        let proxied =
            answer(&json!({"statusCode": 429, "headers": {"retry-after": "7"}, "body": "{}"}));
        assert_eq!(proxied.status, 429);
        assert_eq!(
            proxied.headers,
            vec![("retry-after".to_owned(), "7".to_owned())]
        );
        let bare = answer(&json!({"plain": true}));
        assert_eq!(
            (bare.status, bare.body),
            (200, br#"{"plain":true}"#.to_vec())
        );
        assert_eq!(decode("a%20b+c%zz"), "a b c%zz");
    }
}
