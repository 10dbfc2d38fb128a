//! The remote-write credential kept in Secrets Manager and read at run time
//! (`PROMETHEUS_REMOTE_WRITE_AUTH_SECRET`): nothing secret is in the function's
//! environment, and a rotated secret is picked up without a redeploy.
//!
//! The secret's value is a `PROMETHEUS_REMOTE_WRITE_AUTH` setting (`basic:…`,
//! `bearer:…`). It is read on the first write of a process — not before, so that
//! Secrets Manager being unreachable at a cold start delays only the export, never the
//! aggregation — and read again when the receiver refuses the credential (401/403),
//! at most once per refresh interval (default a minute), so a wrong secret cannot turn
//! every write into a Secrets Manager call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use tokio::sync::Mutex;

use super::auth::{AuthError, Authorizer, RemoteWriteAuth};

/// A boxed, sendable error.
pub type SecretReadError = Box<dyn std::error::Error + Send + Sync>;

/// What a secret's value is read from: Secrets Manager in a function, a fixed or
/// scripted value in tests.
pub trait SecretSource: Send + Sync {
    /// The secret's current value.
    fn read(&self) -> Pin<Box<dyn Future<Output = Result<String, SecretReadError>> + Send + '_>>;
}

/// A Secrets Manager secret, by name or ARN.
#[derive(Debug, Clone)]
pub struct SecretsManagerSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSecret {
    /// The secret `secret_id` (a name or an ARN) read with `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl SecretSource for SecretsManagerSecret {
    fn read(&self) -> Pin<Box<dyn Future<Output = Result<String, SecretReadError>> + Send + '_>> {
        Box::pin(async move {
            let output = self
                .client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .send()
                .await?;
            output
                .secret_string
                .ok_or_else(|| format!("secret {} has no SecretString", self.secret_id).into())
        })
    }
}

/// The credential as last read.
struct Loaded {
    auth: RemoteWriteAuth,
    authorizer: Arc<Authorizer>,
    read_at: Instant,
}

/// An [`Authorizer`] whose credential is a secret read at run time.
pub struct SecretAuthorizer {
    source: Arc<dyn SecretSource>,
    sdk: SdkConfig,
    refresh: Duration,
    loaded: Mutex<Option<Loaded>>,
}

impl fmt::Debug for SecretAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretAuthorizer")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl SecretAuthorizer {
    /// The credential of `source`, read again after a refusal at most once per
    /// `refresh`; `sdk` serves a secret that says `sigv4`.
    pub fn new(source: Arc<dyn SecretSource>, sdk: SdkConfig, refresh: Duration) -> Self {
        Self {
            source,
            sdk,
            refresh,
            loaded: Mutex::new(None),
        }
    }

    /// Reads and parses the secret.
    async fn read(&self) -> Result<Loaded, AuthError> {
        let value = self.source.read().await.map_err(AuthError::Secret)?;
        let auth: RemoteWriteAuth = value.parse().map_err(AuthError::SecretValue)?;
        let authorizer = Authorizer::new(&auth, &self.sdk).map_err(AuthError::SecretSetup)?;
        tracing::info!("remote-write credential read from Secrets Manager");
        Ok(Loaded {
            auth,
            authorizer: Arc::new(authorizer),
            read_at: Instant::now(),
        })
    }

    /// The current credential, read on first use.
    pub(super) async fn current(&self) -> Result<Arc<Authorizer>, AuthError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(loaded) = loaded.as_ref() {
            return Ok(Arc::clone(&loaded.authorizer));
        }
        let read = self.read().await?;
        let authorizer = Arc::clone(&read.authorizer);
        *loaded = Some(read);
        Ok(authorizer)
    }

    /// After the receiver refused the credential: reads the secret again unless it was
    /// read within the refresh interval; answers whether the credential changed (so
    /// that sending again may help). A failed read keeps the credential and answers
    /// `false`.
    pub(super) async fn refresh(&self) -> bool {
        let mut loaded = self.loaded.lock().await;
        if loaded
            .as_ref()
            .is_some_and(|loaded| loaded.read_at.elapsed() < self.refresh)
        {
            return false;
        }
        match self.read().await {
            Ok(read) => {
                let changed = loaded.as_ref().is_none_or(|old| old.auth != read.auth);
                *loaded = Some(read);
                changed
            }
            Err(err) => {
                tracing::warn!(error = %err, "the remote-write secret could not be read again");
                false
            }
        }
    }
}

/// A secret whose value a test sets, for this module's and the client's tests.
#[cfg(test)]
pub(super) mod scripted {
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A secret whose value a test sets; counts its reads.
    pub struct Scripted {
        value: StdMutex<Result<String, String>>,
        reads: AtomicUsize,
    }

    impl Default for Scripted {
        fn default() -> Self {
            Self {
                value: StdMutex::new(Err("no value set".into())),
                reads: AtomicUsize::new(0),
            }
        }
    }

    impl Scripted {
        /// The value (or the error) the next reads answer.
        pub fn set(&self, value: Result<&str, &str>) {
            *self.value.lock().expect("lock") = value.map(str::to_owned).map_err(str::to_owned);
        }

        /// Reads so far.
        pub fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl SecretSource for Scripted {
        fn read(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<String, SecretReadError>> + Send + '_>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let value = self.value.lock().expect("lock").clone();
            Box::pin(async move { value.map_err(Into::into) })
        }
    }

    /// An authorizer of `source`'s value, read again at most once per `refresh`.
    pub fn authorizer(source: &Arc<Scripted>, refresh: Duration) -> SecretAuthorizer {
        let source: Arc<dyn SecretSource> = Arc::clone(source) as Arc<dyn SecretSource>;
        SecretAuthorizer::new(source, SdkConfig::builder().build(), refresh)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{AUTHORIZATION, HeaderMap};

    use super::scripted::{Scripted, authorizer};
    use super::*;

    async fn header(authorizer: &SecretAuthorizer) -> String {
        let mut headers = HeaderMap::new();
        authorizer
            .current()
            .await
            .expect("a credential")
            .apply("http://receiver/api/v1/write", &mut headers, b"")
            .await
            .expect("applied");
        headers[AUTHORIZATION].to_str().expect("ASCII").to_owned()
    }

    #[tokio::test]
    async fn read_once_then_again_only_after_a_refusal_and_the_interval() {
        let source = Arc::new(Scripted::default());
        source.set(Ok("bearer:first"));
        let secret = authorizer(&source, Duration::from_millis(50));
        assert_eq!(header(&secret).await, "Bearer first");
        assert_eq!(header(&secret).await, "Bearer first");
        assert_eq!(source.reads(), 1, "read on first use only");

        source.set(Ok("bearer:second"));
        assert!(
            !secret.refresh().await,
            "within the interval: not read again"
        );
        assert_eq!(source.reads(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(secret.refresh().await, "rotated: changed");
        assert_eq!(header(&secret).await, "Bearer second");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!secret.refresh().await, "read again, but the same");
        assert_eq!(source.reads(), 3);
    }

    #[tokio::test]
    async fn a_failed_or_malformed_read_is_an_error_that_never_shows_the_value() {
        let source = Arc::new(Scripted::default());
        source.set(Err("AccessDeniedException"));
        let secret = authorizer(&source, Duration::from_millis(1));
        let err = secret.current().await.expect_err("unreadable");
        assert!(matches!(err, AuthError::Secret(_)), "{err:?}");

        source.set(Ok("hunter2"));
        let err = secret.current().await.expect_err("not a setting");
        assert!(matches!(err, AuthError::SecretValue(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));

        source.set(Ok("basic:alice:pw"));
        assert_eq!(header(&secret).await, "Basic YWxpY2U6cHc=");
        source.set(Err("throttled"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            !secret.refresh().await,
            "a failed read keeps the credential"
        );
        assert_eq!(header(&secret).await, "Basic YWxpY2U6cHc=");
    }
}
