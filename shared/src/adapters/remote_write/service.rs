//! The HTTP service: sends one encoded request, retrying as the [`RetryPolicy`] says.
//!
//! Which responses are retried is data ([`RETRYABLE_STATUSES`], read through
//! [`Disposition::of`]), as the remote-write 1.0 spec asks: 2xx is delivered; 5xx and
//! 429 are retried with exponential backoff for a bounded number of attempts; every
//! other status (other 4xx, and 3xx: redirects are not followed, a POST must not turn
//! into a GET) is a rejection that resending cannot fix, so its body is logged and the
//! request given up — except 401 and 403: the credential was refused, not the data, so
//! a credential read from a secret is read again (at most once per refresh interval)
//! and the request sent once more when it changed; otherwise the write stops and its
//! data waits for a later run ([`RemoteWriteError::Unauthorized`], retryable).
//! Transport failures (connect errors, timeouts) are retried like
//! 5xx. A `Retry-After` on a retryable response is honoured when it is within
//! [`RetryPolicy::max_retry_after`]; a longer one ends the attempts at once, leaving the
//! data to the next scheduled run instead of holding the Lambda invocation.
//!
//! There is no jitter: remote-write has one writer (`aggregate`, reserved concurrency
//! 1), so there is no herd to spread.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url, redirect};
use tracing::{debug, info, warn};

use super::auth::{AuthError, Authorizer};
use super::error::{AttemptError, RemoteWriteError, RemoteWriteSetupError};
use super::request::{
    CONTENT_ENCODING_SNAPPY, CONTENT_TYPE_PROTOBUF, HEADER_CONTENT_ENCODING, HEADER_CONTENT_TYPE,
    HEADER_REMOTE_WRITE_VERSION, HEADER_RETRY_AFTER, HEADER_USER_AGENT, REMOTE_WRITE_VERSION,
    USER_AGENT,
};

/// The statuses that are retried: 429 and every 5xx. Everything else that is not 2xx
/// is a rejection.
pub const RETRYABLE_STATUSES: [RangeInclusive<u16>; 2] = [429..=429, 500..=599];

/// At most this much of a response body is kept for logs and errors.
const MAX_BODY_BYTES: usize = 1024;
/// Upper bound of the TCP/TLS connect phase, within the attempt timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// 2xx: the receiver accepted the request.
    Delivered,
    /// One of [`RETRYABLE_STATUSES`]: try again after a backoff.
    Retry,
    /// Anything else: resending the same request cannot succeed.
    Reject,
}

impl Disposition {
    /// The disposition of a response status.
    pub fn of(status: StatusCode) -> Self {
        let code = status.as_u16();
        if status.is_success() {
            Self::Delivered
        } else if RETRYABLE_STATUSES.iter().any(|r| r.contains(&code)) {
            Self::Retry
        } else {
            Self::Reject
        }
    }
}

/// How hard to try one request. Defaults are small so one Lambda run stays short:
/// 3 attempts, 250 ms then 500 ms backoff, `Retry-After` honoured up to 5 s, 5 s per
/// attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Cap on the exponential delay.
    pub max_backoff: Duration,
    /// Longest `Retry-After` that is waited for; a longer one ends the attempts.
    pub max_retry_after: Duration,
    /// Timeout of one attempt (connect, send, response).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Exponential delay before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait before retry number `retry`, given the receiver's `Retry-After`:
    /// the longer of backoff and `Retry-After`, or `None` (give up now) when
    /// `Retry-After` exceeds [`RetryPolicy::max_retry_after`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait.max(self.backoff(retry))),
            None => Some(self.backoff(retry)),
        }
    }

    /// Attempts per request, at least 1.
    fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Sends encoded requests to one receiver.
pub(super) struct Service {
    http: reqwest::Client,
    url: Url,
    /// The URL without user info and query, for logs.
    endpoint: String,
    auth: Authorizer,
    policy: RetryPolicy,
}

/// Shows the endpoint only: the URL may carry credentials.
impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, before the retry decision.
enum Attempt {
    Delivered,
    Failed {
        error: AttemptError,
        retry_after: Option<Duration>,
    },
}

impl Service {
    /// A service posting to `url` (http or https).
    pub(super) fn new(
        url: &str,
        auth: Authorizer,
        policy: RetryPolicy,
    ) -> Result<Self, RemoteWriteSetupError> {
        let url = Url::parse(url).map_err(RemoteWriteSetupError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(RemoteWriteSetupError::UnsupportedUrl);
        }
        let http = crate::tls::reqwest_client()
            .timeout(policy.attempt_timeout)
            .connect_timeout(policy.attempt_timeout.min(MAX_CONNECT_TIMEOUT))
            .redirect(redirect::Policy::none())
            .build()
            .map_err(RemoteWriteSetupError::Http)?;
        let endpoint = redacted(&url);
        Ok(Self {
            http,
            url,
            endpoint,
            auth,
            policy,
        })
    }

    /// The receiver's URL without user info and query string.
    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one body, retrying per the policy; a refused credential (401/403) is
    /// sent once more when the authorizer finds a newer one (a rotated secret).
    pub(super) async fn send(&self, body: &[u8]) -> Result<(), RemoteWriteError> {
        let attempts = self.policy.attempts();
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            let outcome = match self.attempt(body).await {
                Err(RemoteWriteError::Rejected {
                    endpoint,
                    status: status @ (401 | 403),
                    body: answer,
                }) => {
                    if !refreshed && self.auth.refresh().await {
                        refreshed = true;
                        info!(endpoint = %self.endpoint, "credential refused; sending again with the secret's new one");
                        continue;
                    }
                    // The data is fine, the credential is not: kept for the next run,
                    // which a fixed credential delivers.
                    return Err(RemoteWriteError::Unauthorized {
                        endpoint,
                        status,
                        body: answer,
                    });
                }
                outcome => outcome?,
            };
            let (error, retry_after) = match outcome {
                Attempt::Delivered => return Ok(()),
                Attempt::Failed { error, retry_after } => (error, retry_after),
            };
            let delay = if attempt < attempts {
                self.policy.delay(attempt, retry_after)
            } else {
                None
            };
            let Some(delay) = delay else {
                return Err(RemoteWriteError::Unavailable {
                    endpoint: self.endpoint.clone(),
                    attempts: attempt,
                    source: error,
                });
            };
            warn!(
                endpoint = %self.endpoint,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "remote write failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt. `Err` only for failures that must not be retried.
    async fn attempt(&self, body: &[u8]) -> Result<Attempt, RemoteWriteError> {
        let mut headers = base_headers();
        match self.auth.apply(self.url.as_str(), &mut headers, body).await {
            Ok(()) => {}
            // The credentials provider or Secrets Manager may be briefly unavailable:
            // retry like a 5xx.
            Err(AuthError::Credentials(source)) => {
                return Ok(Attempt::Failed {
                    error: AttemptError::Credentials(source),
                    retry_after: None,
                });
            }
            Err(AuthError::Secret(source)) => {
                return Ok(Attempt::Failed {
                    error: AttemptError::Secret(source),
                    retry_after: None,
                });
            }
            Err(error) => return Err(RemoteWriteError::Auth(error)),
        }
        let request = self
            .http
            .post(self.url.clone())
            .headers(headers)
            .body(body.to_vec())
            .build()
            .map_err(RemoteWriteError::Request)?;
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(source) if source.is_builder() => return Err(RemoteWriteError::Request(source)),
            Err(source) => {
                return Ok(Attempt::Failed {
                    error: AttemptError::Transport(source),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        match Disposition::of(status) {
            Disposition::Delivered => {
                debug!(endpoint = %self.endpoint, status = status.as_u16(), "remote write delivered");
                Ok(Attempt::Delivered)
            }
            Disposition::Retry => {
                let retry_after = retry_after(response.headers(), SystemTime::now());
                let body = read_body(response).await;
                Ok(Attempt::Failed {
                    error: AttemptError::Status {
                        status: status.as_u16(),
                        body,
                    },
                    retry_after,
                })
            }
            Disposition::Reject => {
                let body = read_body(response).await;
                warn!(
                    endpoint = %self.endpoint,
                    status = status.as_u16(),
                    body = %body,
                    "remote write rejected, not retrying"
                );
                Err(RemoteWriteError::Rejected {
                    endpoint: self.endpoint.clone(),
                    status: status.as_u16(),
                    body,
                })
            }
        }
    }
}

/// The headers every request carries (before authentication).
fn base_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(
        HEADER_CONTENT_ENCODING,
        HeaderValue::from_static(CONTENT_ENCODING_SNAPPY),
    );
    headers.insert(
        HEADER_CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_PROTOBUF),
    );
    headers.insert(HEADER_USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(
        HEADER_REMOTE_WRITE_VERSION,
        HeaderValue::from_static(REMOTE_WRITE_VERSION),
    );
    headers
}

/// The `Retry-After` of a response: delay-seconds or an HTTP date (relative to `now`).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(HEADER_RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Up to [`MAX_BODY_BYTES`] of a response body, as text.
async fn read_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                debug!(%error, "could not read the whole response body");
                truncated = true;
                break;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&bytes).trim_end().to_owned();
    if truncated {
        text.push('…');
    }
    text
}

/// `url` without user info, query and fragment (they may carry secrets).
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    // Cannot fail for http(s) URLs with a host, which `Service::new` checked.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_dispositions() {
        let cases = [
            (200, Disposition::Delivered),
            (204, Disposition::Delivered),
            (301, Disposition::Reject),
            (400, Disposition::Reject),
            (401, Disposition::Reject),
            (403, Disposition::Reject),
            (404, Disposition::Reject),
            (413, Disposition::Reject),
            (428, Disposition::Reject),
            (429, Disposition::Retry),
            (500, Disposition::Retry),
            (502, Disposition::Retry),
            (503, Disposition::Retry),
            (599, Disposition::Retry),
        ];
        for (code, expected) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(Disposition::of(status), expected, "{code}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let delays: Vec<u128> = (1..=5).map(|r| policy.backoff(r).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff(200), Duration::from_millis(350));
    }

    #[test]
    fn retry_after_is_honoured_within_its_bound() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        // Never shorter than the backoff.
        assert_eq!(
            policy.delay(1, Some(Duration::ZERO)),
            Some(policy.backoff(1))
        );
        // Longer than the bound: give up now, the next run retries.
        assert_eq!(policy.delay(1, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let header = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER_RETRY_AFTER, HeaderValue::from_static(v));
            headers
        };
        assert_eq!(retry_after(&header("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&header("Sun, 06 Nov 1994 08:49:40 GMT"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&header("Sun, 06 Nov 1994 08:49:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&header("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn endpoint_for_logs_hides_credentials_and_query() {
        let url = Url::parse("https://user:pw@example.com:8443/api/v1/write?token=abc").unwrap();
        assert_eq!(redacted(&url), "https://example.com:8443/api/v1/write");
    }

    #[test]
    fn debug_output_hides_url_credentials() {
        let service = Service::new(
            "https://user:hunter2@example.com/api/v1/write?token=hunter2",
            Authorizer::None,
            RetryPolicy::default(),
        )
        .unwrap();
        let shown = format!("{service:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("https://example.com/api/v1/write"),
            "{shown}"
        );
    }

    #[test]
    fn refuses_urls_it_cannot_post_to() {
        for url in ["not a url", "ftp://example.com/x", "unix:/tmp/sock"] {
            assert!(
                Service::new(url, Authorizer::None, RetryPolicy::default()).is_err(),
                "{url}"
            );
        }
    }
}
