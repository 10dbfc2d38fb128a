//! Signed webhook deliveries of alerts ([`HttpWebhookSender`]).
//!
//! Each delivery is a `POST` of the alert's JSON (the SNS message body) with:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `X-Modelwatch-Signature` | `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the subscription's secret>` |
//! | `X-Modelwatch-Subscription` | the subscription's id |
//! | `X-Modelwatch-Delivery` | `<alert_id>-<state>`: the same on every retry, for de-duplication |
//!
//! A receiver recomputes the HMAC over the raw body with the secret it was given once,
//! compares in constant time, and refuses a timestamp more than a few minutes old
//! (a replay). A 2xx is delivered; 429, 5xx and transport failures are tried again
//! (three attempts in all, 0.2 s then 0.4 s apart); any other status is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::redirect;
use sha2::Sha256;

use crate::ports::{ExportFailure, WebhookDelivery, WebhookSender};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-modelwatch-signature";
/// The subscription id header.
pub const SUBSCRIPTION_HEADER: &str = "x-modelwatch-subscription";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "x-modelwatch-delivery";

/// Attempts per delivery.
const ATTEMPTS: u32 = 3;
/// The wait before the second attempt (doubled before the third).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `X-Modelwatch-Signature` of `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// [`WebhookSender`] over HTTPS.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    http: reqwest::Client,
}

impl HttpWebhookSender {
    /// A sender with its own connection pool; redirects are not followed (a `POST`
    /// must not turn into a `GET` elsewhere).
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = crate::tls::reqwest_client()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(redirect::Policy::none())
            .build()?;
        Ok(Self { http })
    }

    /// One attempt: `Ok(true)` delivered, `Ok(false)` worth trying again.
    async fn attempt(&self, delivery: &WebhookDelivery<'_>) -> Result<bool, ExportFailure> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut signed =
            HeaderValue::try_from(signature(delivery.secret, timestamp, delivery.body))
                .map_err(|e| ExportFailure::Rejected(Box::new(e)))?;
        signed.set_sensitive(true);
        let response = self
            .http
            .post(delivery.url)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(SUBSCRIPTION_HEADER, delivery.subscription_id)
            .header(DELIVERY_HEADER, delivery.delivery_id)
            .body(delivery.body.to_vec())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => Ok(true),
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                Ok(false)
            }
            Ok(response) => Err(ExportFailure::Rejected(
                format!("the webhook answered HTTP {}", response.status().as_u16()).into(),
            )),
            Err(err) if err.is_builder() => Err(ExportFailure::Rejected(Box::new(err))),
            Err(_) => Ok(false),
        }
    }
}

impl WebhookSender for HttpWebhookSender {
    async fn deliver(&self, delivery: &WebhookDelivery<'_>) -> Result<(), ExportFailure> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            if self.attempt(delivery).await? {
                return Ok(());
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(ExportFailure::Unavailable(
            format!("the webhook failed {ATTEMPTS} attempts").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;

    /// What the test receiver got: each request's headers and body.
    type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

    /// A receiver answering `statuses` in turn (then 204), recording what it got.
    async fn receiver(statuses: Vec<u16>) -> (String, Received) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses));
        let state = (Arc::clone(&got), script);
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((got, script)): State<(Received, Arc<Mutex<Vec<u16>>>)>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        got.lock().expect("lock").push((headers, body.to_vec()));
                        let mut script = script.lock().expect("lock");
                        let status = if script.is_empty() {
                            204
                        } else {
                            script.remove(0)
                        };
                        StatusCode::from_u16(status).expect("status")
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (url, got)
    }

    fn delivery<'a>(url: &'a str, body: &'a [u8]) -> WebhookDelivery<'a> {
        WebhookDelivery {
            url,
            subscription_id: "webhook-0123",
            secret: "whsec_test",
            delivery_id: "a1-firing",
            body,
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_timestamp_and_the_body() {
        // An independent computation:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[tokio::test]
    async fn a_delivery_is_signed_and_retried_on_5xx_but_not_on_4xx() {
        let (url, got) = receiver(vec![503]).await;
        let sender = HttpWebhookSender::new().expect("client");
        sender
            .deliver(&delivery(&url, br#"{"alert_id":"a1"}"#))
            .await
            .expect("delivered on the second attempt");
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 2);
        let (headers, body) = &got[1];
        assert_eq!(body, br#"{"alert_id":"a1"}"#);
        assert_eq!(headers[DELIVERY_HEADER], "a1-firing");
        assert_eq!(headers[SUBSCRIPTION_HEADER], "webhook-0123");
        let signed = headers[SIGNATURE_HEADER].to_str().expect("ASCII");
        let timestamp: u64 = signed
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .and_then(|t| t.parse().ok())
            .expect("a timestamp");
        assert_eq!(signed, signature("whsec_test", timestamp, body));

        let (url, got) = receiver(vec![410]).await;
        let err = sender
            .deliver(&delivery(&url, b"{}"))
            .await
            .expect_err("refused");
        assert!(matches!(err, ExportFailure::Rejected(_)), "{err:?}");
        assert_eq!(got.lock().expect("lock").len(), 1, "not retried");

        let (url, got) = receiver(vec![500, 500, 500]).await;
        let err = sender
            .deliver(&delivery(&url, b"{}"))
            .await
            .expect_err("down");
        assert!(matches!(err, ExportFailure::Unavailable(_)), "{err:?}");
        assert_eq!(got.lock().expect("lock").len(), 3);
    }
}
