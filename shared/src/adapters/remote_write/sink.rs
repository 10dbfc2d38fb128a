//! The sink: [`RemoteWriteClient`], which turns a slice of [`Series`] into requests
//! (see [`super::request`]) and sends them one after the other through the HTTP
//! service (see [`super::service`]).
//!
//! Requests go out sequentially: remote-write has a single writer, and order within a
//! series is kept because a series never spans two requests. A rejected request does
//! not stop the others (their data may be fine); an unavailable receiver does (the
//! rest would fail the same way, and the next run resends everything).

use aws_config::SdkConfig;
use tracing::{info, warn};

use super::auth::{Authorizer, RemoteWriteAuth};
use super::error::{RemoteWriteError, RemoteWriteSetupError};
use super::request::{
    DEFAULT_MAX_SERIES_PER_REQUEST, Series, SkippedSeries, encode_requests, normalize,
};
use super::service::{RetryPolicy, Service};

/// What a write delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// HTTP requests delivered (2xx).
    pub requests: usize,
    /// Series delivered (after merging entries with the same label set).
    pub series: usize,
    /// Samples delivered.
    pub samples: usize,
    /// Series left out as invalid, with the reason (also logged).
    pub skipped: Vec<SkippedSeries>,
}

/// A Prometheus remote-write 1.0 client for one receiver. Build it once at cold start
/// and reuse it: it holds the HTTP connection pool and cached AWS credentials.
#[derive(Debug)]
pub struct RemoteWriteClient {
    service: Service,
    max_series_per_request: usize,
}

impl RemoteWriteClient {
    /// A client posting to `url` (e.g. `http://127.0.0.1:9090/api/v1/write`, or an
    /// Amazon Managed Service for Prometheus workspace's `.../api/v1/remote_write`)
    /// with `auth`; `sdk` supplies the region and credentials for
    /// [`RemoteWriteAuth::SigV4`] and is not used otherwise.
    pub fn new(
        url: &str,
        auth: &RemoteWriteAuth,
        sdk: &SdkConfig,
        policy: RetryPolicy,
    ) -> Result<Self, RemoteWriteSetupError> {
        let auth = Authorizer::new(auth, sdk).map_err(RemoteWriteSetupError::Auth)?;
        Self::with_authorizer(url, auth, policy)
    }

    /// A client posting to `url` with `auth` ready to use (e.g. a secret's).
    pub fn with_authorizer(
        url: &str,
        auth: Authorizer,
        policy: RetryPolicy,
    ) -> Result<Self, RemoteWriteSetupError> {
        Ok(Self {
            service: Service::new(url, auth, policy)?,
            max_series_per_request: DEFAULT_MAX_SERIES_PER_REQUEST,
        })
    }

    /// The receiver's URL without user info and query string (safe to log).
    pub fn endpoint(&self) -> &str {
        self.service.endpoint()
    }

    /// Caps the series per request (default
    /// [`DEFAULT_MAX_SERIES_PER_REQUEST`]; 0 counts as 1).
    pub fn with_max_series_per_request(mut self, max: usize) -> Self {
        self.max_series_per_request = max.max(1);
        self
    }

    /// Writes `series`: labels sorted with `__name__`, samples in time order, at most
    /// the configured number of series per request. Invalid series are skipped and
    /// reported in the [`WriteReport`]; nothing to send means no request.
    ///
    /// On error some requests may have been delivered; resending everything is safe
    /// because receivers ignore a sample identical to one they hold. The first
    /// rejection is returned after the remaining requests were tried; an unavailable
    /// receiver ends the write at once.
    pub async fn write(&self, series: &[Series]) -> Result<WriteReport, RemoteWriteError> {
        let normalized = normalize(series);
        for skipped in &normalized.skipped {
            warn!(
                index = skipped.index,
                metric = %skipped.name,
                problem = %skipped.problem,
                "series not written"
            );
        }
        let requests = encode_requests(normalized.series, self.max_series_per_request)
            .map_err(RemoteWriteError::Encode)?;
        let total = requests.len();
        let mut report = WriteReport {
            skipped: normalized.skipped,
            ..WriteReport::default()
        };
        let mut rejection = None;
        for request in requests {
            match self.service.send(&request.body).await {
                Ok(()) => {
                    report.requests += 1;
                    report.series += request.series;
                    report.samples += request.samples;
                }
                Err(error @ RemoteWriteError::Rejected { .. }) => {
                    rejection.get_or_insert(error);
                }
                Err(error) => {
                    warn!(
                        endpoint = %self.service.endpoint(),
                        delivered = report.requests,
                        total,
                        "remote write stopped"
                    );
                    return Err(error);
                }
            }
        }
        if let Some(error) = rejection {
            return Err(error);
        }
        info!(
            endpoint = %self.service.endpoint(),
            requests = report.requests,
            series = report.series,
            samples = report.samples,
            skipped = report.skipped.len(),
            "remote write delivered"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
