//! Authentication of remote-write requests: the `PROMETHEUS_REMOTE_WRITE_AUTH`
//! setting ([`RemoteWriteAuth`]) and what it becomes at run time ([`Authorizer`]):
//! a fixed `Authorization` header (basic, bearer) or a SigV4 signature over the exact
//! body bytes (service `aps`, Amazon Managed Service for Prometheus).
//!
//! Secrets never appear in `Debug` output or error messages.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningError, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use super::secret::{SecretAuthorizer, SecretReadError};

/// The SigV4 service name of Amazon Managed Service for Prometheus.
pub const SIGV4_SERVICE: &str = "aps";

/// Cached credentials are refreshed this long before they expire.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How requests authenticate, as configured by `PROMETHEUS_REMOTE_WRITE_AUTH`:
///
/// | setting                     | value                                    |
/// |-----------------------------|------------------------------------------|
/// | empty or `none`             | [`RemoteWriteAuth::None`]                |
/// | `basic:<user>:<password>`   | [`RemoteWriteAuth::Basic`] (the password may contain `:`) |
/// | `bearer:<token>`            | [`RemoteWriteAuth::Bearer`]              |
/// | `sigv4` or `sigv4:<region>` | [`RemoteWriteAuth::SigV4`]               |
///
/// The scheme is case-insensitive; user, password and token are taken verbatim.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RemoteWriteAuth {
    /// No authentication.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user (non-empty, without `:`).
        user: String,
        /// The password (may be empty).
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token (non-empty).
        token: String,
    },
    /// AWS SigV4 with service `aps`, credentials from the AWS SDK configuration.
    SigV4 {
        /// The signing region; `None` means the SDK configuration's region.
        region: Option<String>,
    },
}

impl fmt::Debug for RemoteWriteAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
            Self::SigV4 { region } => f.debug_struct("SigV4").field("region", region).finish(),
        }
    }
}

/// Why a `PROMETHEUS_REMOTE_WRITE_AUTH` value was refused. Messages describe the
/// expected form and never repeat the value (it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthParseError {
    /// The part before the first `:` is not a known scheme.
    #[error(
        "unknown authentication scheme; expected `none`, `basic:<user>:<password>`, \
         `bearer:<token>`, `sigv4` or `sigv4:<region>`"
    )]
    UnknownScheme,
    /// `basic` without `<user>:<password>`.
    #[error("basic authentication must be `basic:<user>:<password>`")]
    BasicMissingPassword,
    /// `basic` with an empty user.
    #[error("basic authentication needs a non-empty user")]
    BasicEmptyUser,
    /// `bearer` without a token.
    #[error("bearer authentication must be `bearer:<token>` with a non-empty token")]
    BearerEmptyToken,
    /// `sigv4:` with an empty or malformed region.
    #[error("sigv4 region must be non-empty letters, digits and `-` (e.g. `sigv4:eu-west-1`)")]
    InvalidRegion,
    /// `none` followed by something.
    #[error("`none` takes no argument")]
    NoneWithArgument,
}

impl FromStr for RemoteWriteAuth {
    type Err = AuthParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(Self::None);
        }
        let (scheme, rest) = match s.split_once(':') {
            Some((scheme, rest)) => (scheme, Some(rest)),
            None => (s, None),
        };
        match scheme.trim().to_ascii_lowercase().as_str() {
            "none" => match rest {
                None => Ok(Self::None),
                Some(_) => Err(AuthParseError::NoneWithArgument),
            },
            "basic" => {
                let (user, password) = rest
                    .and_then(|r| r.split_once(':'))
                    .ok_or(AuthParseError::BasicMissingPassword)?;
                if user.is_empty() {
                    return Err(AuthParseError::BasicEmptyUser);
                }
                Ok(Self::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                })
            }
            "bearer" => match rest {
                Some(token) if !token.is_empty() => Ok(Self::Bearer {
                    token: token.to_owned(),
                }),
                _ => Err(AuthParseError::BearerEmptyToken),
            },
            "sigv4" => match rest.map(str::trim) {
                None => Ok(Self::SigV4 { region: None }),
                Some(region)
                    if !region.is_empty()
                        && region
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
                {
                    Ok(Self::SigV4 {
                        region: Some(region.to_owned()),
                    })
                }
                Some(_) => Err(AuthParseError::InvalidRegion),
            },
            _ => Err(AuthParseError::UnknownScheme),
        }
    }
}

/// Why an [`Authorizer`] could not be set up (at cold start).
#[derive(Debug, Error)]
pub enum AuthSetupError {
    /// SigV4 without a region in the setting or in the AWS configuration.
    #[error("sigv4 authentication needs a region (`sigv4:<region>` or AWS_REGION)")]
    NoRegion,
    /// SigV4 without a credentials provider in the AWS configuration.
    #[error("sigv4 authentication needs AWS credentials, and none are configured")]
    NoCredentialsProvider,
    /// A basic or bearer secret that cannot be a header value (control characters).
    #[error("the {scheme} credentials contain characters not allowed in an HTTP header")]
    InvalidHeaderValue {
        /// `basic` or `bearer`.
        scheme: &'static str,
    },
}

/// Why a request could not be authenticated (at send time).
#[derive(Debug, Error)]
pub enum AuthError {
    /// The credentials provider failed; often transient (retry on the next run).
    #[error("could not obtain AWS credentials to sign the request")]
    Credentials(#[source] CredentialsError),
    /// The request could not be signed: a bug or bad configuration, not transient.
    #[error("could not sign the request")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The credential's secret could not be read (Secrets Manager unreachable,
    /// throttled, access denied); retried on the next write.
    #[error("could not read the remote-write secret")]
    Secret(#[source] SecretReadError),
    /// The secret's value is not a `PROMETHEUS_REMOTE_WRITE_AUTH` setting (the value
    /// is not repeated).
    #[error("the remote-write secret's value is not a valid authentication setting")]
    SecretValue(#[source] AuthParseError),
    /// The secret's credential cannot be used (e.g. characters not allowed in a header).
    #[error("the remote-write secret's credential cannot be used")]
    SecretSetup(#[source] AuthSetupError),
}

/// [`RemoteWriteAuth`] ready to use: built once, applied to every request.
#[derive(Debug)]
pub enum Authorizer {
    /// Nothing to add.
    None,
    /// A fixed `Authorization` header (basic or bearer), marked sensitive.
    Header(HeaderValue),
    /// SigV4 signing with cached credentials.
    SigV4(SigV4Signer),
    /// A credential read at run time from a secret (boxed: it is the largest).
    Secret(Box<SecretAuthorizer>),
}

impl Authorizer {
    /// Builds the authorizer for `auth`; `sdk` supplies region and credentials for SigV4.
    pub fn new(auth: &RemoteWriteAuth, sdk: &SdkConfig) -> Result<Self, AuthSetupError> {
        Ok(match auth {
            RemoteWriteAuth::None => Self::None,
            RemoteWriteAuth::Basic { user, password } => {
                let encoded = base64_encode(format!("{user}:{password}").as_bytes());
                Self::Header(sensitive_header(&format!("Basic {encoded}"), "basic")?)
            }
            RemoteWriteAuth::Bearer { token } => {
                Self::Header(sensitive_header(&format!("Bearer {token}"), "bearer")?)
            }
            RemoteWriteAuth::SigV4 { region } => {
                let region = region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.as_ref().to_owned()))
                    .ok_or(AuthSetupError::NoRegion)?;
                let provider = sdk
                    .credentials_provider()
                    .ok_or(AuthSetupError::NoCredentialsProvider)?;
                Self::SigV4(SigV4Signer::new(provider, region))
            }
        })
    }

    /// Adds the authentication headers to `headers` for a POST of `body` to `url`.
    pub async fn apply(
        &self,
        url: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), AuthError> {
        match self {
            Self::None => Ok(()),
            Self::Header(value) => {
                headers.insert(AUTHORIZATION, value.clone());
                Ok(())
            }
            Self::SigV4(signer) => signer.sign(url, headers, body).await,
            Self::Secret(secret) => {
                let current = secret.current().await?;
                // Boxed: the credential read from the secret is never itself a secret,
                // but the compiler cannot know that.
                Box::pin(current.apply(url, headers, body)).await
            }
        }
    }

    /// After the receiver refused the credential (401/403): whether a newer one was
    /// found (only a secret's credential can change; see [`SecretAuthorizer::refresh`]).
    pub async fn refresh(&self) -> bool {
        match self {
            Self::Secret(secret) => secret.refresh().await,
            Self::None | Self::Header(_) | Self::SigV4(_) => false,
        }
    }
}

/// SigV4 signing for service `aps`, with credentials cached until shortly before
/// they expire (the SDK's credentials chain does not cache by itself).
pub struct SigV4Signer {
    provider: SharedCredentialsProvider,
    region: String,
    cached: Mutex<Option<Credentials>>,
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// A signer for `region` with credentials from `provider`.
    pub fn new(provider: SharedCredentialsProvider, region: String) -> Self {
        Self {
            provider,
            region,
            cached: Mutex::new(None),
        }
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Current credentials: cached ones unless they expire within the margin.
    async fn credentials(&self) -> Result<Credentials, AuthError> {
        let now = SystemTime::now();
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|expiry| expiry > now + CREDENTIALS_REFRESH_MARGIN)
        };
        {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
                return Ok(credentials.clone());
            }
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(AuthError::Credentials)?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(credentials.clone());
        Ok(credentials)
    }

    /// Signs a POST of `body` to `url` carrying `headers`, adding the signature headers
    /// (`authorization`, `x-amz-date`, and `x-amz-security-token` for session
    /// credentials) to `headers`.
    async fn sign(&self, url: &str, headers: &mut HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGV4_SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AuthError::Signing(Box::new(e)))?
            .into();
        let signed_headers: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            url,
            signed_headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(signing_error)?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(signing_error)?.into_parts();
        let (new_headers, _params) = instructions.into_parts();
        for header in new_headers {
            let name = HeaderName::from_bytes(header.name().as_bytes())
                .map_err(|e| AuthError::Signing(Box::new(e)))?;
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|e| AuthError::Signing(Box::new(e)))?;
            value.set_sensitive(header.sensitive());
            headers.insert(name, value);
        }
        Ok(())
    }
}

fn signing_error(e: SigningError) -> AuthError {
    AuthError::Signing(Box::new(e))
}

/// A header value marked sensitive (kept out of debug logs by `http`).
fn sensitive_header(value: &str, scheme: &'static str) -> Result<HeaderValue, AuthSetupError> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| AuthSetupError::InvalidHeaderValue { scheme })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Standard base64 with padding (RFC 4648), for the basic credentials.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 0x3f]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::Region;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("", RemoteWriteAuth::None),
            ("  ", RemoteWriteAuth::None),
            ("none", RemoteWriteAuth::None),
            ("NONE", RemoteWriteAuth::None),
            (
                "basic:alice:s3:cr:et",
                RemoteWriteAuth::Basic {
                    user: "alice".into(),
                    password: "s3:cr:et".into(),
                },
            ),
            (
                "basic:alice:",
                RemoteWriteAuth::Basic {
                    user: "alice".into(),
                    password: String::new(),
                },
            ),
            (
                "bearer:tok:en",
                RemoteWriteAuth::Bearer {
                    token: "tok:en".into(),
                },
            ),
            ("sigv4", RemoteWriteAuth::SigV4 { region: None }),
            (
                "SigV4:eu-west-1",
                RemoteWriteAuth::SigV4 {
                    region: Some("eu-west-1".into()),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<RemoteWriteAuth>(), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn refuses_malformed_values_without_echoing_them() {
        let cases = [
            ("hunter2", AuthParseError::UnknownScheme),
            ("token:hunter2", AuthParseError::UnknownScheme),
            ("basic:alice", AuthParseError::BasicMissingPassword),
            ("basic", AuthParseError::BasicMissingPassword),
            ("basic::hunter2", AuthParseError::BasicEmptyUser),
            ("bearer:", AuthParseError::BearerEmptyToken),
            ("bearer", AuthParseError::BearerEmptyToken),
            ("sigv4:", AuthParseError::InvalidRegion),
            ("sigv4:eu west", AuthParseError::InvalidRegion),
            ("none:hunter2", AuthParseError::NoneWithArgument),
        ];
        for (input, expected) in cases {
            let err = input.parse::<RemoteWriteAuth>().unwrap_err();
            assert_eq!(err, expected, "{input:?}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let basic: RemoteWriteAuth = "basic:alice:hunter2".parse().unwrap();
        let bearer: RemoteWriteAuth = "bearer:hunter2".parse().unwrap();
        for auth in [basic, bearer] {
            let shown = format!("{auth:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
            // The ready-to-use header is marked sensitive and not shown either.
            let authorizer = Authorizer::new(&auth, &SdkConfig::builder().build()).unwrap();
            let shown = format!("{authorizer:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("aHVudGVyMg"),
                "{shown}"
            );
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    fn sdk(region: Option<&str>, credentials: bool) -> SdkConfig {
        let mut builder = SdkConfig::builder().region(region.map(|r| Region::new(r.to_owned())));
        if credentials {
            builder = builder.credentials_provider(SharedCredentialsProvider::new(
                Credentials::new("AKIDEXAMPLE", "SECRETEXAMPLE", None, None, "test"),
            ));
        }
        builder.build()
    }

    #[test]
    fn sigv4_needs_a_region_and_credentials() {
        let sigv4 = RemoteWriteAuth::SigV4 { region: None };
        assert!(matches!(
            Authorizer::new(&sigv4, &sdk(None, true)),
            Err(AuthSetupError::NoRegion)
        ));
        assert!(matches!(
            Authorizer::new(&sigv4, &sdk(Some("us-east-1"), false)),
            Err(AuthSetupError::NoCredentialsProvider)
        ));
        let Ok(Authorizer::SigV4(signer)) = Authorizer::new(
            &RemoteWriteAuth::SigV4 {
                region: Some("eu-west-1".into()),
            },
            &sdk(Some("us-east-1"), true),
        ) else {
            panic!("expected a SigV4 authorizer");
        };
        assert_eq!(signer.region(), "eu-west-1");
    }

    #[tokio::test]
    async fn basic_and_bearer_set_the_authorization_header() {
        let sdk = sdk(None, false);
        let basic = Authorizer::new(&"basic:aladdin:open sesame".parse().unwrap(), &sdk).unwrap();
        let mut headers = HeaderMap::new();
        basic.apply("http://x/", &mut headers, b"").await.unwrap();
        assert_eq!(headers[AUTHORIZATION], "Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(headers[AUTHORIZATION].is_sensitive());

        let bearer = Authorizer::new(&"bearer:abc.def".parse().unwrap(), &sdk).unwrap();
        let mut headers = HeaderMap::new();
        bearer.apply("http://x/", &mut headers, b"").await.unwrap();
        assert_eq!(headers[AUTHORIZATION], "Bearer abc.def");
    }

    #[tokio::test]
    async fn sigv4_signs_for_aps() {
        let auth = Authorizer::new(
            &RemoteWriteAuth::SigV4 { region: None },
            &sdk(Some("us-west-2"), true),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-protobuf"),
        );
        auth.apply(
            "https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
            &mut headers,
            b"body",
        )
        .await
        .unwrap();
        let authorization = headers[AUTHORIZATION].to_str().unwrap();
        let date = headers["x-amz-date"].to_str().unwrap();
        assert!(
            authorization.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-west-2/aps/aws4_request, ",
                &date[..8]
            )),
            "{authorization}"
        );
        assert!(authorization.contains("SignedHeaders=content-type;host;x-amz-date"));
        assert!(!authorization.contains("SECRETEXAMPLE"));
    }
}
