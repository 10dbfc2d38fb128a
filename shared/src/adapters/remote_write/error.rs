//! Errors of the remote-write client: setting it up ([`RemoteWriteSetupError`], at
//! cold start), writing ([`RemoteWriteError`], split into retryable and rejected) and
//! a single failed attempt ([`AttemptError`], the source of an unavailable receiver).

use aws_credential_types::provider::error::CredentialsError;
use thiserror::Error;

use super::auth::{AuthError, AuthParseError, AuthSetupError};
use super::request::EncodeError;
use super::secret::SecretReadError;

/// Why the client could not be built. Messages never repeat the URL (it may carry
/// credentials) or the authentication setting.
#[derive(Debug, Error)]
pub enum RemoteWriteSetupError {
    /// The URL does not parse.
    #[error("the remote-write URL is not a valid URL")]
    InvalidUrl(#[source] url::ParseError),
    /// Not an `http`/`https` URL with a host.
    #[error("the remote-write URL must be an http or https URL with a host")]
    UnsupportedUrl,
    /// `PROMETHEUS_REMOTE_WRITE_AUTH` does not parse (the value is not repeated: it may
    /// hold a secret).
    #[error("environment variable PROMETHEUS_REMOTE_WRITE_AUTH is invalid")]
    AuthSetting(#[source] AuthParseError),
    /// The authentication cannot be set up.
    #[error("the remote-write authentication cannot be set up")]
    Auth(#[source] AuthSetupError),
    /// The HTTP client could not be built (TLS set-up).
    #[error("the remote-write HTTP client cannot be built")]
    Http(#[source] reqwest::Error),
}

/// Why a write did not deliver everything.
#[derive(Debug, Error)]
pub enum RemoteWriteError {
    /// The receiver kept failing (5xx, 429, timeouts, connection errors) through all
    /// attempts, or asked to wait longer than the policy allows. Retryable: the caller
    /// resends on its next scheduled run (receivers ignore identical duplicates).
    #[error("remote-write receiver {endpoint} unavailable after {attempts} attempt(s)")]
    Unavailable {
        /// The receiver (without credentials or query).
        endpoint: String,
        /// Attempts made for the request that failed.
        attempts: u32,
        /// How the last attempt failed.
        #[source]
        source: AttemptError,
    },
    /// The receiver refused a request with a status other than 2xx, 401, 403, 429 and
    /// 5xx. Not retryable: the same data would be refused again.
    #[error("remote-write receiver {endpoint} rejected a request with HTTP {status}: {body}")]
    Rejected {
        /// The receiver (without credentials or query).
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most 1 KiB).
        body: String,
    },
    /// The receiver refused the credential (401/403), and no newer one was found.
    /// Retryable: the data is fine, and a corrected credential delivers it on a later
    /// run.
    #[error("remote-write receiver {endpoint} refused the credential with HTTP {status}: {body}")]
    Unauthorized {
        /// The receiver (without credentials or query).
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most 1 KiB).
        body: String,
    },
    /// The request could not be signed (not a credentials outage, which is
    /// [`RemoteWriteError::Unavailable`]). Not retryable.
    #[error("remote-write request could not be authenticated")]
    Auth(#[source] AuthError),
    /// The body could not be compressed. Not retryable.
    #[error("remote-write request could not be encoded")]
    Encode(#[source] EncodeError),
    /// The HTTP request could not be built. Not retryable.
    #[error("remote-write request could not be built")]
    Request(#[source] reqwest::Error),
}

impl RemoteWriteError {
    /// Whether resending the same data later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Unauthorized { .. })
    }
}

/// How one attempt failed in a way that may pass on retry.
#[derive(Debug, Error)]
pub enum AttemptError {
    /// A retryable status (5xx or 429).
    #[error("HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most 1 KiB).
        body: String,
    },
    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// The AWS credentials provider failed (SigV4).
    #[error("AWS credentials unavailable")]
    Credentials(#[source] CredentialsError),
    /// The credential's secret could not be read.
    #[error("remote-write secret unavailable")]
    Secret(#[source] SecretReadError),
}
